import pytest
import torch

from vit_tutorial.attention import MultiHeadSelfAttention, SelfAttention, attend


def test_single_head_shapes_rows_and_permutation_equivariance():
    torch.manual_seed(0)
    attn = SelfAttention(16, 8)
    x = torch.randn(2, 10, 16)
    out, weights = attn(x, return_attention=True)
    assert out.shape == (2, 10, 8) and weights.shape == (2, 10, 10)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 10))
    perm = torch.randperm(10)
    torch.testing.assert_close(attn(x[:, perm]), out[:, perm], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dim,heads", [(32, 4), (48, 3), (16, 1)])
def test_multi_head_fused_equals_explicit(dim, heads):
    torch.manual_seed(0)
    mhsa = MultiHeadSelfAttention(dim, heads).eval()
    x = torch.randn(3, 17, dim)
    fused = mhsa(x)
    explicit, weights = mhsa(x, return_attention=True)
    assert fused.shape == (3, 17, dim) and weights.shape == (3, heads, 17, 17)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, heads, 17))
    mhsa.fused = False
    torch.testing.assert_close(mhsa(x), explicit)


def test_multi_head_permutation_equivariance_without_positions():
    torch.manual_seed(1)
    mhsa = MultiHeadSelfAttention(32, 4).eval()
    x = torch.randn(2, 9, 32)
    perm = torch.randperm(9)
    torch.testing.assert_close(mhsa(x[:, perm]), mhsa(x)[:, perm], atol=1e-5, rtol=1e-5)


def test_head_split_follows_timm_layout():
    torch.manual_seed(0)
    mhsa = MultiHeadSelfAttention(12, 3)
    x = torch.randn(1, 5, 12)
    q, k, v = mhsa.split_heads(x)
    full = mhsa.qkv(x)  # (1, 5, 36): [q | k | v], head h owns rows h*4:(h+1)*4 of each
    torch.testing.assert_close(q[0, 1], full[0, :, 4:8])
    torch.testing.assert_close(k[0, 2], full[0, :, 12 + 8:12 + 12])
    torch.testing.assert_close(v[0, 0], full[0, :, 24:28])


def test_attend_matches_torch_multihead_attention():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ours = MultiHeadSelfAttention(16, 4).eval()
    with torch.no_grad():
        ours.qkv.weight.copy_(mha.in_proj_weight)
        ours.qkv.bias.copy_(mha.in_proj_bias)
        ours.proj.weight.copy_(mha.out_proj.weight)
        ours.proj.bias.copy_(mha.out_proj.bias)
    x = torch.randn(2, 7, 16)
    expected, w = mha(x, x, x, need_weights=True, average_attn_weights=False)
    got, ours_w = ours(x, return_attention=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_w, w, atol=1e-6, rtol=1e-5)


def test_attend_returns_weights_only_when_asked():
    q = k = v = torch.randn(1, 2, 4, 8)
    out, w = attend(q, k, v)
    assert w is None and out.shape == (1, 2, 4, 8)
    out2, w2 = attend(q, k, v, need_weights=True)
    torch.testing.assert_close(out, out2, atol=1e-6, rtol=1e-5)
    assert w2.shape == (1, 2, 4, 4)


def test_dim_not_divisible_by_heads_raises():
    with pytest.raises(ValueError, match="not divisible by heads"):
        MultiHeadSelfAttention(30, 4)
