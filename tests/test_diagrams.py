"""Every architecture diagram draws, and writes the sizes of the model it is given (so it matches the code)."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vit_tutorial import cait, convit, diagrams, mixer, vit  # noqa: E402


def texts(fig: Figure) -> str:
    fig.canvas.draw()  # errors that only appear when drawing
    return " | ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_vit_diagram_shows_the_config():
    config = vit.ViTConfig(image_size=56, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=4, heads=2)
    words = texts(diagrams.vit(config))
    assert "56 x 56 pixels" in words and "8 x 8 = 64 patches" in words and "D = 32" in words and "pre-norm block x 4" in words
    assert "class token" in words and "(64 + 1) x D" in words
    assert "pre-norm block x L" in texts(diagrams.vit())  # without a config: the symbols


@pytest.mark.parametrize("draw, words", [
    (lambda: diagrams.block(), ["LayerNorm", "multi-head self-attention", "never normalised"]),
    (lambda: diagrams.block(post_norm=True), ["then LayerNorm", "every output passes a LayerNorm"]),
    (lambda: diagrams.block(layer_scale=True), ["LayerScale"]),
    (lambda: diagrams.deit(vit.ViTConfig(depth=3)), ["distillation token", "blocks x 3", "teacher"]),
    (lambda: diagrams.gpsa(), ["content attention", "positional attention", "sigmoid(lambda)"]),
    (lambda: diagrams.convit(convit.ConViTConfig(depth=4, local_up_to_layer=3)), ["GPSA x 3", "blocks x 1", "class token"]),
    (lambda: diagrams.cait(cait.CaiTConfig(depth=3, depth_token_only=1)), ["blocks x 3", "class-attention blocks x 1", "unchanged"]),
    (lambda: diagrams.mixer(mixer.MixerConfig()), ["token-mixing MLP", "channel-mixing MLP"]),
])
def test_each_diagram_draws_its_parts(draw, words):
    drawn = texts(draw())
    for w in words:
        assert w in drawn, (w, drawn)
