"""Every plot draws on small random inputs and returns a Figure with the expected axes."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vit_tutorial import analysis, charts, plots, tokens  # noqa: E402


def drawn(fig: Figure, n_axes: int) -> Figure:
    """Render the figure (catches errors that only appear when drawing) and count its axes."""
    assert isinstance(fig, Figure)
    assert fig.number in matplotlib.pyplot.get_fignums()  # managed by pyplot: plt.show() shows it
    fig.canvas.draw()
    assert len(fig.axes) == n_axes
    return fig


@pytest.mark.parametrize(
    "image",
    [torch.rand(3, 16, 16), torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8), torch.randn(16, 16), torch.rand(1, 16, 16)],
    ids=["float-rgb", "uint8-rgb", "normalised-gray", "one-channel"],
)
def test_patch_grid_and_sequence(image):
    drawn(plots.patch_grid(image, 4), 1)
    drawn(plots.patch_sequence(image, 4), 16)
    drawn(plots.patch_sequence(image, 4, max_patches=5), 5)


def test_patch_grid_rejects_patch_size_that_does_not_divide():
    with pytest.raises(ValueError, match="not divisible"):
        plots.patch_grid(torch.rand(3, 16, 16), 5)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plots.patch_grid(torch.rand(5, 16, 16), 4)


def test_heatmaps():
    attn = torch.rand(5, 5).softmax(-1)
    fig = drawn(plots.attention_heatmap(attn, labels=["cls", "1", "2", "3", "4"]), 2)  # + colour bar
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cls", "1", "2", "3", "4"]
    assert len(fig.axes[0].texts) == 25  # annotated cells
    drawn(plots.attention_heatmap(torch.rand(1, 17).softmax(-1)), 2)  # class attention: one query
    drawn(charts.heatmap(torch.rand(3, 4), ["a", "b", "c", "d"], ["l1", "l2", "l3"], "gates", "magma"), 2)
    with pytest.raises(ValueError, match="one label per"):
        charts.heatmap(torch.rand(3, 4), xlabels=["a"])


def test_attention_maps_and_rollout():
    image = torch.rand(3, 16, 16)
    maps = torch.rand(4, 4, 4)
    fig = drawn(plots.attention_maps(image, maps, titles=[f"head {h}" for h in range(4)]), 6)  # image + 4 + colour bar
    assert fig.axes[-1].get_ylabel() == "attention / uniform"
    drawn(plots.attention_maps(None, maps), 5)
    attn = [torch.rand(1, 2, 17, 17).softmax(-1) for _ in range(3)]
    row = analysis.rollout(attn)[0, 0]  # (17,)
    drawn(plots.rollout_map(image, row, prefix=1), 3)
    drawn(plots.rollout_map(image, analysis.token_grid(row, prefix=1)), 3)
    with pytest.raises(ValueError, match="titles"):
        plots.attention_maps(image, maps, titles=["one"])


def test_attention_maps_share_one_scale_relative_to_uniform_and_mark_the_query():
    uniform = torch.full((4, 4), 1 / 16)
    peaked = torch.zeros(4, 4)
    peaked[1, 2] = 1.0
    fig = drawn(plots.attention_maps(None, torch.stack([uniform, peaked]), titles=["u", "p"], query=6), 3)
    a, b = (ax.images[0] for ax in fig.axes[:2])
    assert a.norm is b.norm and a.norm.vcenter == 1.0 and a.norm.vmax == pytest.approx(16.0)  # one scale, in units of 1/N
    assert a.get_array().max() == pytest.approx(1.0) and b.get_array().max() == pytest.approx(16.0)
    assert a.get_interpolation() == "nearest"  # patch cells, not smoothed
    assert "entropy 1.00" in fig.axes[0].get_title() and "entropy 0.00" in fig.axes[1].get_title()
    assert len(fig.axes[0].patches) == 1 and len(fig.axes[1].patches) == 1  # the query patch, outlined
    fig = drawn(plots.attention_maps(None, torch.stack([uniform, peaked]), query=[0, None]), 3)
    assert len(fig.axes[0].patches) == 1 and len(fig.axes[1].patches) == 0
    with pytest.raises(ValueError, match="query"):
        plots.attention_maps(None, torch.stack([uniform, peaked]), query=16)


def test_attention_distance():
    d = torch.rand(6, 4) * 10
    fig = drawn(charts.attention_distance(d, grid=4, patch_size=4), 1)
    assert len(fig.axes[0].collections) == 1 and len(fig.axes[0].collections[0].get_offsets()) == 24
    fig = drawn(charts.attention_distance({"ViT": d, "ConViT": d / 2}), 1)
    assert len(fig.axes[0].collections) == 2


def test_position_similarity_grid():
    sim = analysis.position_similarity(tokens.sincos_2d(4, 16))
    fig = drawn(plots.position_similarity_grid(sim, 4), 2)  # mosaic + colour bar
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (4 * 5 - 1, 4 * 5 - 1)  # 4 x 4 tiles with one-pixel gaps
    # tile (row 2, col 1) is patch 2 * 4 + 1; its pixel (3, 0) is the similarity to patch 3 * 4 + 0
    assert mosaic[5 * 2 + 3, 5 * 1 + 0] == pytest.approx(float(sim[2 * 4 + 1, 3 * 4 + 0]))
    with pytest.raises(ValueError, match="grid=3"):
        plots.position_similarity_grid(sim, 3)


class FakeHistory:
    def as_dict(self):
        return {"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, 0.5], "test_loss": [2.1, 1.5, 1.2],
                "train_acc": [0.3, 0.6, 0.8], "test_acc": [0.2, None, 0.7]}


def test_curves_single_and_many():
    fig = drawn(charts.curves(FakeHistory()), 2)
    assert len(fig.axes[0].lines) == 2  # train and test loss
    fig = drawn(charts.curves({"ViT": FakeHistory(), "CNN": FakeHistory().as_dict()}), 2)
    assert len(fig.axes[1].lines) == 4
    drawn(charts.curves(FakeHistory().as_dict(), metrics=("loss",)), 1)
    fig = drawn(charts.curves(FakeHistory()), 2)
    assert len(fig.axes[1].lines[1].get_xdata()) == 2  # the epoch without a test accuracy is skipped


def test_curves_take_the_training_history():
    from vit_tutorial.train import History

    h = History()
    for epoch in (1, 2):
        h.append(epoch=epoch, train_loss=1.0 / epoch, train_acc=0.5, test_loss=None, test_acc=None, lr=0.1,
                 seconds=1.0, images_per_s=10.0)
    fig = drawn(charts.curves(h, metrics=("loss", "acc", "lr")), 3)
    assert [len(ax.lines) for ax in fig.axes] == [1, 1, 1]  # never evaluated: no test lines


def test_image_grid():
    drawn(plots.image_grid(torch.rand(5, 1, 8, 8), labels=list(range(5)), ncols=3), 5)
    with pytest.raises(ValueError, match="labels"):
        plots.image_grid(torch.rand(2, 3, 8, 8), labels=[1])


@pytest.fixture(autouse=True)
def _close_figures():
    """Each plot opens a pyplot figure (so notebooks show it); close them between tests."""
    yield
    matplotlib.pyplot.close("all")
