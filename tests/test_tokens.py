import math

import pytest
import torch

from vit_tutorial import tokens
from vit_tutorial.tokens import (
    PatchEmbed, PositionEmbedding, check_patch_grid, patchify, prepend_tokens, sincos_1d, sincos_2d, unpatchify,
)


@pytest.mark.parametrize("c,size,p", [(3, 32, 4), (1, 28, 7), (3, 224, 16)])
def test_patchify_shape_and_exact_round_trip(c, size, p):
    x = torch.randn(2, c, size, size)
    patches = patchify(x, p)
    assert patches.shape == (2, (size // p) ** 2, p * p * c)
    assert torch.equal(unpatchify(patches, p, c), x)


def test_patchify_is_row_major():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(x, 2)
    # patch 1 is the top-right 2x2 block, patch 2 the bottom-left one
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]
    assert patches[0, 2].tolist() == [8.0, 9.0, 12.0, 13.0]


@pytest.mark.parametrize("c,size,p,d", [(3, 32, 4, 24), (1, 28, 7, 16)])
def test_patch_embed_equals_linear_on_flattened_patches(c, size, p, d):
    embed = PatchEmbed(size, p, c, d)
    x = torch.randn(3, c, size, size)
    linear = embed.as_linear()
    torch.testing.assert_close(embed(x), linear(patchify(x, p)), atol=1e-5, rtol=1e-5)
    assert embed(x).shape == (3, (size // p) ** 2, d)


def test_bad_patch_size_and_input_raise_value_error():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        check_patch_grid(30, 7)
    with pytest.raises(ValueError, match="not divisible"):
        PatchEmbed(30, 7, 1, 8)
    embed = PatchEmbed(28, 7, 1, 8)
    with pytest.raises(ValueError, match="expected images of shape"):
        embed(torch.randn(2, 3, 28, 28))  # wrong channels
    with pytest.raises(ValueError, match="expected images of shape"):
        embed(torch.randn(2, 1, 32, 32))  # wrong size
    with pytest.raises(ValueError):
        patchify(torch.randn(1, 3, 30, 30), 7)
    with pytest.raises(ValueError):
        unpatchify(torch.randn(1, 5, 48), 4, 3)


def test_sincos_1d_matches_the_formula():
    table = sincos_1d(10, 8)
    assert table.shape == (10, 8)
    pos, i = 7, 2
    freq = 10000 ** (-i / 4)
    assert math.isclose(table[pos, i].item(), math.sin(pos * freq), abs_tol=1e-6)
    assert math.isclose(table[pos, 4 + i].item(), math.cos(pos * freq), abs_tol=1e-6)
    with pytest.raises(ValueError):
        sincos_1d(4, 7)


def test_sincos_2d_rows_and_columns():
    table = sincos_2d(4, 16)
    assert table.shape == (16, 16)
    # tokens in the same row share the first half (row code), the same column the second half
    torch.testing.assert_close(table[4 * 1 + 0, :8], table[4 * 1 + 3, :8])
    torch.testing.assert_close(table[4 * 0 + 2, 8:], table[4 * 3 + 2, 8:])
    assert len({tuple(r.tolist()) for r in table}) == 16  # every position distinct
    with pytest.raises(ValueError):
        sincos_2d(4, 6)


def test_position_embedding_kinds():
    learned = PositionEmbedding(16, 8, "learned", prefix=1)
    assert learned.weight.shape == (1, 17, 8) and learned.weight.requires_grad
    fixed = PositionEmbedding(16, 8, "sincos", prefix=1)
    assert "weight" not in fixed.state_dict()
    x = torch.zeros(2, 17, 8)
    torch.testing.assert_close(fixed(x)[0, 1:], sincos_2d(4, 8))
    assert torch.equal(fixed(x)[0, 0], torch.zeros(8))
    with pytest.raises(ValueError):
        PositionEmbedding(16, 8, "rotary")


def test_prepend_tokens_order():
    x = torch.zeros(2, 3, 4)
    cls, dist = torch.ones(1, 1, 4), torch.full((1, 1, 4), 2.0)
    out = prepend_tokens(x, cls, dist)
    assert out.shape == (2, 5, 4)
    assert out[:, 0].eq(1).all() and out[:, 1].eq(2).all() and out[:, 2:].eq(0).all()


def test_resized_sincos_interpolates_within_the_trained_range_or_extends_past_it():
    pos = tokens.PositionEmbedding(64, 32, "sincos", prefix=1)
    same = tokens.resized(pos, 8)
    assert torch.allclose(same.weight, pos.weight, atol=1e-6)  # the same grid: the same table
    wide = tokens.resized(pos, 12)  # positions 0, 7/11, ..., 7: corners keep their codes
    assert wide.weight.shape == (1, 1 + 144, 32) and torch.equal(wide.weight[0, 0], torch.zeros(32))
    assert torch.allclose(wide.weight[0, 1], pos.weight[0, 1], atol=1e-6)  # patch (0, 0)
    assert torch.allclose(wide.weight[0, -1], pos.weight[0, -1], atol=1e-5)  # patch (11, 11) sits where (7, 7) did
    extended = tokens.resized(pos, 12, mode="extend")  # the formula continued: (0..7) as before, then new ones
    grid = extended.weight[0, 1:].reshape(12, 12, 32)
    assert torch.allclose(grid[:8, :8].reshape(64, 32), pos.weight[0, 1:], atol=1e-6)


def test_resized_learned_table_is_bicubic_and_keeps_the_prefix():
    pos = tokens.PositionEmbedding(16, 8, "learned", prefix=2)
    wide = tokens.resized(pos, 8)
    assert wide.weight.shape == (1, 2 + 64, 8) and torch.equal(wide.weight[0, :2], pos.weight[0, :2])
    flat = torch.nn.functional.interpolate(pos.weight[0, 2:].T.reshape(1, 8, 4, 4), size=(8, 8), mode="bicubic")
    assert torch.allclose(wide.weight[0, 2:], flat.reshape(8, 64).T, atol=1e-6)
    with pytest.raises(ValueError, match="no rows for positions past"):
        tokens.resized(pos, 8, mode="extend")
    with pytest.raises(ValueError, match="unknown mode"):
        tokens.resized(pos, 8, mode="stretch")
