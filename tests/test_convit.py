"""ConViT: GPSA's relative positions, local init, gates, fast path, recording, timm equivalence."""
import math

import pytest
import torch

from vit_tutorial.analysis import mean_attention_distance, record_attention
from vit_tutorial.convit import GPSA, ConViT, ConViTConfig, kernel_offsets, relative_positions, square_grid

SMALL = dict(image_size=28, patch_size=4, in_channels=1, num_classes=10, dim=48, depth=3, heads=4,
             mlp_ratio=2.0, local_up_to_layer=2)


def randomise_gpsa(layer: GPSA) -> None:
    """Move the gates and positional projection away from their init, so that no term is trivial."""
    with torch.no_grad():
        layer.gating_param.normal_()
        layer.pos_proj.bias.normal_()
        layer.pos_proj.weight.add_(0.3 * torch.randn_like(layer.pos_proj.weight))


def test_relative_positions_follow_the_grid():
    rel = relative_positions(3)  # tokens 0..8, token = row * 3 + col
    assert rel.shape == (9, 9, 3)
    # query token 0 (row 0, col 0) to key token 5 (row 1, col 2): dx = 2, dy = 1
    assert rel[0, 5].tolist() == [2.0, 1.0, 5.0]
    assert rel[5, 0].tolist() == [-2.0, -1.0, 5.0]
    assert torch.all(rel.diagonal(dim1=0, dim2=1) == 0)


def test_kernel_offsets_are_a_k_by_k_neighbourhood():
    offsets = kernel_offsets(9)
    assert {tuple(o) for o in offsets.tolist()} == {(dx, dy) for dx in (-1.0, 0.0, 1.0) for dy in (-1.0, 0.0, 1.0)}
    assert set(kernel_offsets(4).flatten().tolist()) == {-0.5, 0.5}
    assert kernel_offsets(3).tolist() == [[0.0, 0.0]] and len(kernel_offsets(6)) == 4


@pytest.mark.parametrize("heads", [9, 16])
def test_each_head_starts_peaked_at_its_offset(heads):
    """Odd kernels have integer offsets: the central query's positional argmax is exactly there."""
    layer = GPSA(heads * 4, heads, num_patches=81, locality_strength=1.0)
    pos = layer.positional_attention()  # (H, N, N)
    q = layer.central_query()
    peak = layer.rel[q, pos[:, q].argmax(-1), :2]  # (H, 2) (dx, dy) of each head's strongest key
    k = math.isqrt(heads)
    if k % 2:
        torch.testing.assert_close(peak, kernel_offsets(heads))
    centres, _ = layer.kernel_centres_and_spread()
    torch.testing.assert_close(centres, kernel_offsets(heads), atol=1e-4, rtol=0)


@pytest.mark.parametrize("heads", [3, 6])
def test_heads_that_are_not_a_square_work_like_timm(heads):
    """k = isqrt(H) heads get offsets, the rest keep their small random row (times alpha)."""
    from timm.models.convit import GPSA as TimmGPSA

    alpha = 2.0
    ours, theirs = GPSA(heads * 8, heads, 49, locality_strength=alpha), TimmGPSA(heads * 8, heads, locality_strength=alpha)
    start = torch.randn(heads, 3) * 0.02
    for layer in (ours, theirs):
        with torch.no_grad():
            layer.pos_proj.weight.copy_(start)
        layer.local_init()
    torch.testing.assert_close(ours.pos_proj.weight, theirs.pos_proj.weight, rtol=0, atol=0)
    k2 = math.isqrt(heads) ** 2
    torch.testing.assert_close(ours.pos_proj.weight[k2:], alpha * start[k2:])
    centres, _ = ours.kernel_centres_and_spread()
    torch.testing.assert_close(centres[:k2], kernel_offsets(heads), atol=1e-3, rtol=0)
    x = torch.randn(2, 49, heads * 8)
    assert ours(x).shape == x.shape


def test_gates_start_at_sigmoid_one_and_mix_the_two_attentions():
    layer = GPSA(32, 4, 49)
    torch.testing.assert_close(layer.gates(), torch.full((4,), 1 / (1 + math.exp(-1))))
    with torch.no_grad():
        layer.qk.weight.zero_()  # content attention becomes uniform: 1 / N
    _, attn = layer(torch.randn(2, 49, 32), return_attention=True)
    g = layer.gates()[:, None, None]
    expected = (1 - g) / 49 + g * layer.positional_attention()
    torch.testing.assert_close(attn, expected.expand(2, -1, -1, -1))


def test_locality_strength_sharpens_the_kernel():
    spreads, peaks = [], []
    for alpha in (1.0, 3.0):
        layer = GPSA(36, 9, 49, locality_strength=alpha)
        _, spread = layer.kernel_centres_and_spread()
        spreads.append(spread)
        peaks.append(layer.kernel_maps().flatten(1).max(-1).values)
    assert torch.all(spreads[1] < spreads[0]) and torch.all(peaks[1] > peaks[0])
    # a score -alpha d^2 gives a discrete Gaussian: the centre head's spread is known in closed form
    d2 = relative_positions(7)[24, :, 2]  # central query of a 7x7 grid
    for alpha, spread in zip((1.0, 3.0), spreads):
        w = torch.softmax(-alpha * d2, 0)
        torch.testing.assert_close(spread[4], (w * d2).sum().sqrt())


def test_shared_positional_attention_equals_the_per_image_formula():
    torch.manual_seed(0)
    layer = GPSA(32, 4, 49)
    randomise_gpsa(layer)
    x = torch.randn(3, 49, 32)
    _, attn = layer(x, return_attention=True)
    # timm's way, image by image: project (B, N, N, 3) positions, softmax per image, mix, renormalise
    b, h = 3, 4
    pos = layer.pos_proj(layer.rel[None].expand(b, -1, -1, -1)).permute(0, 3, 1, 2).softmax(-1)  # (B, H, N, N)
    q, k = layer.qk(x).reshape(b, 49, 2, h, 8).permute(2, 0, 3, 1, 4)
    content = (q @ k.transpose(-2, -1) * 8**-0.5).softmax(-1)
    g = torch.sigmoid(layer.gating_param).view(1, -1, 1, 1)
    mixed = (1 - g) * content + g * pos
    torch.testing.assert_close(attn, mixed / mixed.sum(-1, keepdim=True))
    # the renormalisation is a no-op: both softmaxes, hence their convex mix, already sum to 1
    torch.testing.assert_close(mixed.sum(-1), torch.ones(b, h, 49), atol=1e-6, rtol=0)


@pytest.mark.parametrize("heads,qkv_bias", [(4, False), (3, True), (9, False)])
def test_fused_path_equals_explicit_path(heads, qkv_bias):
    torch.manual_seed(1)
    layer = GPSA(heads * 8, heads, 64, qkv_bias=qkv_bias).eval()
    randomise_gpsa(layer)
    x = torch.randn(2, 64, heads * 8)
    fused = layer(x)
    explicit, attn = layer(x, return_attention=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, heads, 64))
    layer.fused = False
    torch.testing.assert_close(layer(x), explicit)


def test_record_attention_shapes_and_rows():
    torch.manual_seed(0)
    model = ConViT(**SMALL).eval()
    x = torch.randn(2, 1, 28, 28)
    plain = model(x)
    with record_attention(model) as maps:
        recorded = model(x)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-5)
    assert [m.shape for m in maps] == [(2, 4, 49, 49)] * 2 + [(2, 4, 50, 50)]
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))


def test_model_gates_config_round_trip_and_training_step():
    torch.manual_seed(0)
    model = ConViT(ConViTConfig(**SMALL, drop_path=0.1))
    assert model.gates().shape == (2, 4)
    torch.testing.assert_close(model.gates(), torch.full((2, 4), torch.sigmoid(torch.tensor(1.0)).item()))
    rebuilt = ConViT(**model.config.to_dict())
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), model(x))
    assert not any("rel" in k for k in model.state_dict())  # positions are rebuilt, not stored
    model.train()
    model(x).logsumexp(-1).mean().backward()
    assert model.blocks[0].attn.gating_param.grad.abs().sum() > 0
    assert model.blocks[0].attn.pos_proj.weight.grad.abs().sum() > 0


def test_nonlocality_is_mean_attention_distance_in_patches():
    """ConViT's nonlocality, sum_nm dist(n, m) A[h, n, m] / N averaged over images, is
    `analysis.mean_attention_distance` with patch_size 1 on GPSA maps (no class token)."""
    grid = 4
    attn = torch.rand(2, 3, 16, 16).softmax(-1)
    expected = torch.zeros(3)
    for h in range(3):
        for n in range(16):
            for m in range(16):
                d = math.dist(divmod(n, grid), divmod(m, grid))
                expected[h] += d * attn[:, h, n, m].mean() / 16
    torch.testing.assert_close(mean_attention_distance(attn, grid, patch_size=1), expected)
    # local init: the head looking at its own position is the least nonlocal, the corners the most
    layer = GPSA(36, 9, 49, locality_strength=2.0)
    distance = mean_attention_distance(layer.positional_attention()[None], 7, patch_size=1)  # (H,)
    assert distance.argmin() == 4 and distance.argmax() in (0, 2, 6, 8)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="square grid"):
        square_grid(50)
    with pytest.raises(ValueError, match="square grid"):
        GPSA(32, 4, num_patches=50)
    with pytest.raises(ValueError, match="50 tokens"):
        GPSA(32, 4, 49)(torch.randn(1, 50, 32))
    with pytest.raises(ValueError, match="local_up_to_layer"):
        ConViTConfig(**dict(SMALL, local_up_to_layer=3))
    with pytest.raises(ValueError, match="locality_strength"):
        ConViTConfig(**dict(SMALL, locality_strength=-1.0))
    with pytest.raises(ValueError, match="not divisible by heads"):
        ConViTConfig(**dict(SMALL, heads=5))
    with pytest.raises(ValueError, match="expected images"):
        ConViT(**SMALL)(torch.randn(1, 1, 28, 32))


# --- timm equivalence ------------------------------------------------------------------------


def _check_logits(ours, theirs, x):
    ours.eval(), theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(SMALL, heads=3, qkv_bias=True),
        dict(SMALL, dim=48, heads=6, depth=2, local_up_to_layer=1, locality_strength=2.0),
        dict(SMALL, image_size=32, in_channels=3, local_up_to_layer=0),
    ],
)
def test_timm_round_trip_small(kwargs):
    from vit_tutorial.timm_compat import from_timm, to_timm

    torch.manual_seed(0)
    ours = ConViT(**kwargs)
    for layer in ours.gpsa_layers():
        randomise_gpsa(layer)
    theirs = to_timm(ours)
    assert type(theirs).__name__ == "ConVit"
    x = torch.randn(2, kwargs["in_channels"], kwargs["image_size"], kwargs["image_size"])
    _check_logits(ours, theirs, x)
    back = from_timm(theirs)
    assert back.config == ours.config
    _check_logits(back, theirs, x)


def test_timm_convit_tiny():
    import timm

    from vit_tutorial.timm_compat import from_timm, to_timm

    torch.manual_seed(0)
    theirs = timm.create_model("convit_tiny", pretrained=False)
    for block in theirs.blocks[: theirs.local_up_to_layer]:
        randomise_gpsa(block.attn)
    ours = from_timm(theirs)
    assert ours.config == ConViTConfig()  # our defaults are ConViT-Tiny
    x = torch.randn(1, 3, 224, 224)
    _check_logits(ours, theirs, x)
    _check_logits(ours, to_timm(ours), x)


def test_content_distance_recovers_the_content_softmax_from_the_mixed_map():
    from einops import rearrange
    from torch.utils.data import TensorDataset

    from vit_tutorial import measures

    torch.manual_seed(0)
    model = ConViT(image_size=28, in_channels=1, num_classes=10, patch_size=7, dim=36, depth=2, heads=9,
                   mlp_ratio=2.0, local_up_to_layer=1).eval()
    with torch.no_grad():
        model.gpsa_layers()[0].gating_param.normal_()  # gates between 0 and 1, different per head
    x = torch.randn(6, 1, 28, 28)
    images = TensorDataset(x, torch.zeros(6, dtype=torch.long))  # what measures reads of a test set
    seen = []
    hook = model.gpsa_layers()[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    got = torch.tensor(measures.content_distance(model, images))  # (1, 9)
    hook.remove()
    layer = model.gpsa_layers()[0]
    with torch.no_grad():
        q, k = rearrange(layer.qk(seen[0]), "b n (two h d) -> two b h n d", two=2, h=9)  # (B, H, N, hd)
        content = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)  # (B, H, N, N)
    want = mean_attention_distance(content, 4, 7, prefix=0)[None]  # (1, H)
    assert got.shape == (1, 9)
    assert torch.allclose(got, want, atol=1e-3)
    # and it is not the mixed map's distance: the positional half is local, the content half is not
    mixed = torch.tensor(measures.attention_distance(model, images)[0])
    assert not torch.allclose(got[0], mixed, atol=1e-2)
    assert measures.content_distance(torch.nn.Linear(2, 2), images) is None
