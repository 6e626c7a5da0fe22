import pytest
import torch

from vit_tutorial.blocks import MLP, Block, DropPath, LayerScale, drop_path_rates, layer_scale_init


def test_mlp_and_block_shapes():
    x = torch.randn(2, 5, 16)
    assert MLP(16, 32)(x).shape == (2, 5, 16)
    block = Block(16, 4, mlp_ratio=2.0)
    assert block(x).shape == (2, 5, 16)
    assert block.mlp.fc1.out_features == 32


def test_block_is_pre_norm_residual():
    torch.manual_seed(0)
    block = Block(8, 2).eval()
    x = torch.randn(1, 3, 8)
    y = x + block.attn(block.norm1(x))
    expected = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(block(x), expected)


def test_layer_scale_init_and_rule():
    ls = LayerScale(6, 1e-4)
    assert torch.equal(ls.gamma, torch.full((6,), 1e-4))
    assert (layer_scale_init(12), layer_scale_init(24), layer_scale_init(36)) == (0.1, 1e-5, 1e-6)
    block = Block(8, 2, init_values=0.1)
    assert torch.equal(block.ls1.gamma, torch.full((8,), 0.1))


def test_drop_path_identity_in_eval_and_per_sample_in_training():
    torch.manual_seed(0)
    dp = DropPath(0.25)
    x = torch.ones(4000, 3, 2)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    per_sample = y.flatten(1)
    # each sample is either dropped entirely (0) or kept and scaled by 1/(1-p)
    values = per_sample.unique()
    assert len(values) == 2 and values[0] == 0 and abs(values[1].item() - 1 / 0.75) < 1e-6
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    kept = (per_sample[:, 0] > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.03 and abs(y.mean().item() - 1.0) < 0.05
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_drop_path_rates_grow_linearly():
    rates = drop_path_rates(0.1, 5)
    assert rates[0] == 0.0 and abs(rates[-1] - 0.1) < 1e-12
    assert all(abs((b - a) - 0.025) < 1e-12 for a, b in zip(rates, rates[1:]))
