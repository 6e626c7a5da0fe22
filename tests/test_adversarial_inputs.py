"""Adversarial inputs to the models and to the analyses: the error says what to pass instead."""
import threading

import numpy as np
import pytest
import torch

from vit_tutorial import ViT, analysis
from vit_tutorial.cait import CaiT, mix_heads
from vit_tutorial.cnn import ResNet
from vit_tutorial.convit import ConViT
from vit_tutorial.deit import DistilledViT

SMALL = dict(image_size=16, patch_size=4, in_channels=1, num_classes=3, dim=16, depth=2, heads=2, mlp_ratio=2.0)
MODELS = {
    "vit": lambda: ViT(**SMALL), "deit": lambda: DistilledViT(**SMALL), "convit": lambda: ConViT(**SMALL, local_up_to_layer=1),
    "cait": lambda: CaiT(**SMALL), "cnn": lambda: ResNet(in_channels=1, num_classes=3, width=4, blocks=(1, 1)),
}
GOOD = torch.randn(2, 1, 16, 16)
# (what is passed, words of the error)
BAD_INPUTS = {
    "uint8": ((GOOD * 50).clamp(0, 255).to(torch.uint8), "got uint8 images (raw pixels?): the model takes normalised float32"),
    "int64": (GOOD.long(), "got int64 images (raw pixels?)"),
    "float64": (GOOD.double(), "got float64 images, but the model computes in float32: convert them with x.to(torch.float32)"),
    "numpy": (GOOD.numpy(), "expected images as a torch.Tensor (B, C, H, W), got a ndarray"),
    "list": (GOOD.tolist(), "expected images as a torch.Tensor (B, C, H, W), got a list"),
    "meta device": (GOOD.to("meta"), "the images are on meta but the model is on cpu: move them with x.to('cpu')"),
}


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_wrong_images_say_what_to_pass(kind, case):
    x, words = BAD_INPUTS[case]
    with pytest.raises(ValueError) as err:
        MODELS[kind]().eval()(x)
    assert words in str(err.value)


@pytest.mark.parametrize("kind", MODELS)
def test_the_right_images_still_pass(kind):
    assert MODELS[kind]().eval()(GOOD).shape == (2, 3)


# --- analyses: maps that are not rows of probabilities ----------------------------------------
def _maps(n=1 + 16, seed=0):
    return torch.randn(2, 2, n, n, generator=torch.Generator().manual_seed(seed)).softmax(-1)


def _mixed():  # what CaiT's talking heads used to record: a signed mix of softmax maps
    a = _maps()
    return torch.einsum("gh,bhnm->bgnm", torch.tensor([[1.5, -0.5], [-0.4, 1.2]]), a)


NOT_PROBABILITIES = {
    "negative entries": (_mixed(), "entries down to -"),
    "rows summing to 2": (_maps() * 2, "rows summing to 2 .. 2"),
    "NaN": (_maps().masked_fill(torch.eye(17, dtype=torch.bool), float("nan")), "NaN or inf"),
    "raw scores": (torch.randn(2, 2, 17, 17), "not rows of attention probabilities"),
}
MEASURES = {
    "rollout": lambda m: analysis.rollout([m, m]),
    "cls_attention": lambda m: analysis.cls_attention(m, prefix=1),
    "mean_attention_distance": lambda m: analysis.mean_attention_distance(m, grid=4, patch_size=4, prefix=1),
}


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("case", NOT_PROBABILITIES)
def test_analyses_refuse_maps_that_are_not_probabilities(measure, case):
    maps, words = NOT_PROBABILITIES[case]
    with pytest.raises(ValueError) as err:
        MEASURES[measure](maps)
    assert words in str(err.value) and "before the second head mix" in str(err.value)
    MEASURES[measure](_maps())  # the control: softmax maps of the same shape are measured


def test_cait_records_maps_that_every_analysis_accepts():
    torch.manual_seed(0)
    model = CaiT(**SMALL).eval()
    with torch.no_grad():
        for block in model.blocks:  # sharp maps and a strong, signed second mix: its output is no probability
            block.attn.qkv.weight.normal_(0, 1.0)
            block.attn.proj_w.weight.copy_(torch.tensor([[2.0, -1.0], [-1.0, 2.0]]))
        with analysis.record_attention(model) as maps:
            model(GOOD)
    patches, cls = maps[: model.config.depth], maps[model.config.depth:]
    for m in patches:
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 2, 16))
        assert (m >= 0).all()
    assert analysis.rollout(patches).shape == (2, 16, 16)
    assert analysis.mean_attention_distance(patches, grid=4, patch_size=4, prefix=0).shape == (2, 2)
    assert analysis.cls_attention(cls, prefix=1).shape == (2, 2, 2, 4, 4)
    mixed = mix_heads(patches[0], model.blocks[0].attn.proj_w).detach()  # what multiplies the values
    with pytest.raises(ValueError, match="not rows of attention probabilities"):
        analysis.mean_attention_distance(mixed, grid=4, patch_size=4)


def test_position_similarity_refuses_the_raw_table_with_its_class_token_row():
    model = ViT(**SMALL)
    with pytest.raises(ValueError, match="17 rows minus prefix=0 leaves 17 rows, not a square grid.*prefix=1"):
        analysis.position_similarity(model.pos_embed.weight)
    assert analysis.position_similarity(model.pos_embed.weight, prefix=1).shape == (16, 16)
    assert analysis.position_similarity(model.pos_embed).shape == (16, 16)


# --- record_attention closed out of order, or from two threads ---------------------------------
def _recording(model):
    return all(not layer.needs_weights for layer in analysis.attention_layers(model))


def test_recordings_closed_out_of_order_leave_nothing_recording():
    model = ViT(**SMALL).eval()
    first, second = analysis.record_attention(model), analysis.record_attention(model)
    a, b = first.__enter__(), second.__enter__()
    model(GOOD)
    first.__exit__(None, None, None)  # closed before the one opened after it
    model(GOOD)
    second.__exit__(None, None, None)
    model(GOOD)
    assert (len(a), len(b)) == (2, 4) and _recording(model)


def test_recordings_from_two_threads_each_get_their_own_maps_and_end_cleanly():
    model, barrier, sizes = ViT(**SMALL).eval(), threading.Barrier(2), {}

    def record(name, batch):
        with analysis.record_attention(model) as maps:
            barrier.wait()  # both recordings open at once
            with torch.no_grad():
                model(torch.randn(batch, 1, 16, 16))
            barrier.wait()
        sizes[name] = [m.shape[0] for m in maps]

    threads = [threading.Thread(target=record, args=(n, b)) for n, b in (("a", 1), ("b", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sizes == {"a": [1, 1], "b": [3, 3]} and _recording(model)


def test_numpy_model_input_error_is_not_a_raw_attribute_error():
    with pytest.raises(ValueError, match="got a ndarray"):
        ViT(**SMALL)(np.zeros((1, 1, 16, 16), np.float32))
