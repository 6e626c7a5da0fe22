"""Analysis measures: rollout, class attention on the grid, mean attention distance, position similarity."""
import math

import pytest
import torch

from vit_tutorial import ViT, tokens
from vit_tutorial.analysis import (
    cls_attention,
    mean_attention_distance,
    patch_distances,
    position_similarity,
    record_attention,
    rollout,
    token_grid,
)


def random_maps(layers=3, b=2, h=4, n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, n, generator=g).softmax(-1) for _ in range(layers)]


# --- rollout -------------------------------------------------------------------------------
def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.allclose(rollout([eye, eye, eye]), torch.eye(5).expand(2, 5, 5))


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_rows_are_distributions(fusion):
    r = rollout(random_maps(), head_fusion=fusion)
    assert r.shape == (2, 10, 10)
    assert (r >= 0).all()
    assert torch.allclose(r.sum(-1), torch.ones(2, 10), atol=1e-5)


def test_rollout_matches_hand_computation_for_two_layers():
    a1, a2 = random_maps(layers=2, b=1, h=2, n=4)
    eye = torch.eye(4)
    step = [(a.mean(1)[0] + eye) / 2 for a in (a1, a2)]  # rows of A + I sum to 2
    assert torch.allclose(rollout([a1, a2])[0], step[1] @ step[0], atol=1e-6)


def test_rollout_rejects_mixed_shapes_and_unknown_fusion():
    with pytest.raises(ValueError, match="one shape"):
        rollout(random_maps(layers=1, n=5) + random_maps(layers=1, n=6))
    with pytest.raises(ValueError, match="head_fusion"):
        rollout(random_maps(), head_fusion="median")
    with pytest.raises(ValueError, match="no attention maps"):
        rollout([])


# --- class attention on the grid -----------------------------------------------------------------
def test_cls_attention_shapes_and_values():
    maps = random_maps(layers=3, b=2, h=4, n=1 + 9)
    grids = cls_attention(maps)
    assert grids.shape == (3, 2, 4, 3, 3)
    assert torch.equal(grids[1, 0, 2].flatten(), maps[1][0, 2, 0, 1:])  # row-major patch order
    assert cls_attention(maps[0]).shape == (2, 4, 3, 3)


def test_cls_attention_for_distillation_token_and_class_attention():
    deit = random_maps(layers=1, n=2 + 16)[0]
    assert torch.equal(cls_attention(deit, prefix=2, query=1)[0, 0].flatten(), deit[0, 0, 1, 2:])
    cait = torch.rand(2, 4, 1, 1 + 16).softmax(-1)  # CaiT class attention: one query
    assert cls_attention([cait, cait], prefix=1).shape == (2, 2, 4, 4, 4)


def test_cls_attention_bad_prefix_or_query():
    with pytest.raises(ValueError, match="not a square grid"):
        cls_attention(random_maps(layers=1, n=16)[0], prefix=1)  # 15 patches
    with pytest.raises(ValueError, match="not a prefix token"):
        cls_attention(random_maps(layers=1, n=17)[0], prefix=1, query=1)
    with pytest.raises(ValueError, match="B, heads, queries, keys"):
        cls_attention(torch.rand(4, 10, 10))


def test_token_grid_drops_prefix():
    values = torch.arange(2 + 6 * 6).float()
    assert torch.equal(token_grid(values, prefix=2)[1, 0], values[2 + 6])


# --- mean attention distance --------------------------------------------------------------------
def test_patch_distances_are_pixel_distances_between_centres():
    d = patch_distances(3, patch_size=4)
    assert d.shape == (9, 9)
    assert d[0, 1] == 4 and d[0, 3] == 4  # right and down neighbours
    assert torch.isclose(d[0, 8], torch.tensor(math.hypot(8, 8)))
    assert torch.equal(d, d.T) and (d.diagonal() == 0).all()


def test_attention_to_itself_has_distance_zero():
    attn = torch.eye(16).expand(2, 3, 16, 16)
    assert torch.equal(mean_attention_distance(attn, grid=4, patch_size=8), torch.zeros(3))


def horizontal_neighbours(grid: int) -> tuple[torch.Tensor, float]:
    """Each query splits its attention evenly over its left and right neighbours (one if at an edge).

    The expected distance is derived by hand: every query looks exactly one patch away,
    so the mean distance is one patch width whatever the grid.
    """
    n = grid * grid
    attn = torch.zeros(n, n)
    for r in range(grid):
        for c in range(grid):
            keys = [r * grid + cc for cc in (c - 1, c + 1) if 0 <= cc < grid]
            attn[r * grid + c, keys] = 1 / len(keys)
    return attn, 1.0


def test_horizontal_neighbours_are_one_patch_away():
    attn, patches_away = horizontal_neighbours(grid=5)
    d = mean_attention_distance(attn.expand(2, 3, 25, 25), grid=5, patch_size=7)
    assert torch.allclose(d, torch.full((3,), 7 * patches_away))


def test_known_mixture_matches_hand_computed_value():
    # 1 x 3 is not square, so use a 2 x 2 grid: query 0 puts 1/2 on itself, 1/4 right, 1/4 diagonal.
    attn = torch.zeros(1, 1, 4, 4)
    attn[0, 0, 0] = torch.tensor([0.5, 0.25, 0.0, 0.25])
    attn[0, 0, 1:] = torch.eye(4)[1:]  # others look at themselves: distance 0
    expected = (0.25 * 10 + 0.25 * 10 * math.sqrt(2)) / 4  # patch size 10, averaged over 4 queries
    assert torch.isclose(mean_attention_distance(attn, grid=2, patch_size=10)[0], torch.tensor(expected))


def test_prefix_tokens_are_excluded_and_patch_part_renormalised():
    patch_attn, _ = horizontal_neighbours(grid=4)  # (16, 16), distance one patch
    attn = torch.zeros(1, 2, 17, 17)
    attn[:, :, 0] = 1 / 17  # class token query: ignored
    attn[:, 0, 1:, 0], attn[:, 0, 1:, 1:] = 0.5, 0.5 * patch_attn  # head 0: half to the class token
    attn[:, 1, 1:, 1:] = patch_attn
    d = mean_attention_distance(attn, grid=4, patch_size=3, prefix=1)
    assert torch.allclose(d, torch.tensor([3.0, 3.0]))
    raw = mean_attention_distance(attn, grid=4, patch_size=3, prefix=1, renormalize=False)
    assert torch.allclose(raw, torch.tensor([1.5, 3.0]))
    assert torch.allclose(mean_attention_distance(attn, grid=4, patch_size=3, prefix=None), d)


def test_mean_distance_of_layers_and_grid_mismatch():
    maps = random_maps(layers=3, b=2, h=4, n=1 + 9)
    d = mean_attention_distance(maps, grid=3, patch_size=2, prefix=1)
    assert d.shape == (3, 4)
    assert (d > 0).all() and (d <= patch_distances(3, 2).max()).all()
    with pytest.raises(ValueError, match="do not fit grid=4"):
        mean_attention_distance(maps, grid=4, patch_size=2, prefix=1)
    with pytest.raises(ValueError, match="do not fit"):
        mean_attention_distance(torch.rand(1, 2, 1, 10).softmax(-1), grid=3, patch_size=2, prefix=1)  # class attention


# --- position similarity ------------------------------------------------------------------------
def test_sincos_similarity_is_symmetric_with_unit_diagonal():
    table = tokens.sincos_2d(5, 32)
    sim = position_similarity(table)
    assert sim.shape == (25, 25)
    assert torch.allclose(sim.diagonal(), torch.ones(25), atol=1e-6)
    assert torch.allclose(sim, sim.T, atol=1e-6)
    assert sim[12, 13] > sim[12, 14]  # nearer patches are more alike


def test_position_similarity_drops_prefix_from_table_and_module():
    embed = tokens.PositionEmbedding(16, 8, prefix=1)
    sim = position_similarity(embed)
    assert sim.shape == (16, 16)
    assert torch.allclose(sim, position_similarity(embed.weight, prefix=1))
    with pytest.raises(ValueError, match="position table"):
        position_similarity(torch.rand(2, 17, 8))


def test_measures_run_on_a_recorded_vit():
    model = ViT(image_size=16, patch_size=4, in_channels=1, num_classes=3, dim=16, depth=2, heads=2).eval()
    with torch.no_grad(), record_attention(model) as maps:
        model(torch.randn(2, 1, 16, 16))
    assert rollout(maps).shape == (2, 17, 17)
    assert cls_attention(maps).shape == (2, 2, 2, 4, 4)
    assert mean_attention_distance(maps, grid=4, patch_size=4, prefix=1).shape == (2, 2)
    assert position_similarity(model.pos_embed).shape == (16, 16)


def test_attention_distance_over_chosen_queries():
    import torch
    from vit_tutorial import analysis

    grid = 4
    a = torch.zeros(1, 1, 16, 16)
    a[0, 0, :, 0] = 1.0  # every query looks at patch (0, 0)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = True  # only the query at (0, 0): distance 0
    assert analysis.mean_attention_distance(a, grid, 7, queries=mask).item() == 0.0
    mask[0, 3, 3] = True  # and the far corner: 7 * sqrt(18) px
    assert abs(analysis.mean_attention_distance(a, grid, 7, queries=mask).item() - 7 * 18 ** 0.5 / 2) < 1e-5
    import pytest
    with pytest.raises(ValueError, match="bool mask"):
        analysis.mean_attention_distance(a, grid, 7, queries=torch.zeros(1, 4, 4, dtype=torch.bool))
