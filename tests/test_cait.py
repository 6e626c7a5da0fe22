"""CaiT: talking heads, class attention that leaves the patches alone, LayerScale, timm weights."""
import pytest
import timm
import torch
from timm.models.vision_transformer import Attention as TimmAttention

from vit_tutorial.analysis import record_attention
from vit_tutorial.attention import MultiHeadSelfAttention
from vit_tutorial.blocks import LayerScale, layer_scale_init
from vit_tutorial.cait import CaiT, CaiTConfig, ClassAttention, ClassAttentionBlock, TalkingHeadsAttention
from vit_tutorial.timm_compat import from_timm, to_timm

SMALL = dict(image_size=16, patch_size=4, in_channels=1, num_classes=5, dim=16, depth=3, heads=2)


def small_cait(**overrides) -> CaiT:
    torch.manual_seed(0)
    model = CaiT(**{**SMALL, **overrides})
    with torch.no_grad():  # tiny LayerScale would hide mistakes: make every branch count
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def patch_stage(model: CaiT, images: torch.Tensor) -> torch.Tensor:
    """The patch tokens after the self-attention stage, (B, N, D)."""
    return model.blocks(model.pos_embed(model.patch_embed(images)))


@pytest.mark.parametrize("training", [False, True])
def test_patch_tokens_leave_the_class_attention_stage_bit_identical(training):
    model = small_cait(drop_path=0.2).train(training)
    images = torch.randn(3, 1, 16, 16)
    x = patch_stage(model, images)
    c = model.cls_token.expand(3, -1, -1)
    x_in = x.clone()
    for block in model.blocks_token_only:
        c, x = block(c, x)
    assert torch.equal(x, x_in)
    assert c.shape == (3, 1, 16) and not torch.allclose(c, model.cls_token.expand(3, -1, -1))
    # the model's own output carries exactly these patch tokens, normalised
    model.eval()
    x = patch_stage(model, images)
    torch.testing.assert_close(model.forward_features(images)[:, 1:], model.norm(x), rtol=0, atol=1e-6)


def test_class_attention_block_follows_its_formula():
    torch.manual_seed(0)
    block = ClassAttentionBlock(16, 4, mlp_ratio=2.0, init_values=0.5).eval()
    c, x = torch.randn(2, 1, 16), torch.randn(2, 7, 16)
    u = torch.cat([c, x], dim=1)
    c1 = c + 0.5 * block.attn(block.norm1(u))
    expected = c1 + 0.5 * block.mlp(block.norm2(c1))
    torch.testing.assert_close(block(c, x)[0], expected)


def test_class_attention_maps_are_recorded_in_forward_order():
    model = small_cait(depth_token_only=2).eval()
    images = torch.randn(2, 1, 16, 16)
    n = model.config.num_patches
    with torch.no_grad():
        plain = model(images)
        with record_attention(model) as maps:
            recorded = model(images)
    torch.testing.assert_close(recorded, plain, rtol=0, atol=1e-6)
    assert len(maps) == model.config.depth + model.config.depth_token_only
    assert all(m.shape == (2, 2, n, n) for m in maps[:3])
    for m in maps[3:]:
        assert m.shape == (2, 2, 1, 1 + n)
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 2, 1))
    # each map is the one its layer computes, in the order the layers run
    with torch.no_grad():
        x = model.pos_embed(model.patch_embed(images))
        for i, block in enumerate(model.blocks):
            torch.testing.assert_close(maps[i], block.attn(block.norm1(x), return_attention=True)[1])
            x = block(x)
        c = model.cls_token.expand(2, -1, -1)
        for j, block in enumerate(model.blocks_token_only):
            u = block.norm1(torch.cat([c, x], dim=1))
            torch.testing.assert_close(maps[3 + j], block.attn(u, return_attention=True)[1])
            c, x = block(c, x)


def test_layer_scale_starts_at_its_init_value_and_follows_the_depth_rule():
    model = CaiT(**SMALL)
    scales = [m for m in model.modules() if isinstance(m, LayerScale)]
    assert len(scales) == 2 * (model.config.depth + model.config.depth_token_only)
    assert model.config.layer_scale == layer_scale_init(3) == 0.1
    assert all(torch.equal(s.gamma, torch.full((16,), 0.1)) for s in scales)
    assert CaiTConfig(depth=24).layer_scale == 1e-5 and CaiTConfig(depth=36).layer_scale == 1e-6
    chosen = CaiT(**SMALL, init_values=1e-3)
    assert all(torch.equal(m.gamma, torch.full((16,), 1e-3)) for m in chosen.modules() if isinstance(m, LayerScale))


def test_stochastic_depth_is_constant_and_off_in_class_attention():
    model = CaiT(**SMALL, drop_path=0.1)
    assert [b.drop_path.p for b in model.blocks] == [0.1] * 3
    assert [b.drop_path.p for b in model.blocks_token_only] == [0.0, 0.0]


def test_talking_heads_with_identity_mixing_is_multi_head_attention():
    torch.manual_seed(0)
    th, mhsa = TalkingHeadsAttention(24, 3).eval(), MultiHeadSelfAttention(24, 3).eval()
    with torch.no_grad():
        for mix in (th.proj_l, th.proj_w):
            mix.weight.copy_(torch.eye(3))
            mix.bias.zero_()
        for name in ("qkv", "proj"):
            getattr(mhsa, name).load_state_dict(getattr(th, name).state_dict())
    x = torch.randn(2, 9, 24)
    out, attn = th(x, return_attention=True)
    want, want_attn = mhsa(x, return_attention=True)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(attn, want_attn)
    torch.testing.assert_close(mhsa(x), want)  # and the fused path agrees too
    # a real mix changes the result, so the test above could fail
    with torch.no_grad():
        th.proj_l.weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    assert not torch.allclose(th(x), want, atol=1e-4)


def test_class_attention_fused_equals_explicit_and_is_row_zero_of_self_attention():
    torch.manual_seed(0)
    ca = ClassAttention(24, 4).eval()
    u = torch.randn(2, 10, 24)
    fused = ca(u)
    explicit, attn = ca(u, return_attention=True)
    assert fused.shape == explicit.shape == (2, 1, 24) and attn.shape == (2, 4, 1, 10)
    torch.testing.assert_close(fused, explicit, rtol=0, atol=1e-6)
    # the same weights as one self-attention layer: class attention is its first output row
    mhsa = MultiHeadSelfAttention(24, 4).eval()
    with torch.no_grad():
        mhsa.qkv.weight.copy_(torch.cat([ca.q.weight, ca.k.weight, ca.v.weight]))
        mhsa.qkv.bias.copy_(torch.cat([ca.q.bias, ca.k.bias, ca.v.bias]))
        mhsa.proj.load_state_dict(ca.proj.state_dict())
    full, full_attn = mhsa(u, return_attention=True)
    torch.testing.assert_close(explicit, full[:, :1])
    torch.testing.assert_close(attn, full_attn[:, :, :1])


def test_plain_attention_switch_and_rebuild_from_dict():
    model = small_cait(talking_heads=False).eval()
    assert all(type(b.attn) is MultiHeadSelfAttention for b in model.blocks)
    assert all(type(b.attn) is TalkingHeadsAttention for b in CaiT(**SMALL).blocks)
    rebuilt = CaiT(**model.config.to_dict()).eval()
    rebuilt.load_state_dict(model.state_dict())
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))
    assert model(images).shape == (2, 5)


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(dim=18, heads=4), "not divisible by heads"),
        (dict(image_size=30, patch_size=4), "not divisible by patch_size"),
        (dict(depth_token_only=0), "depth_token_only"),
        (dict(init_values=-1.0), "init_values"),
    ],
)
def test_bad_configs_raise_value_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        CaiT(**{**SMALL, **bad})


TIMM_CASES = [
    ("cait_xxs24_224", {}, 224, 3),
    ("cait_xxs24_224", dict(img_size=32, patch_size=4, in_chans=1, num_classes=10, depth=2), 32, 1),
    ("cait_xxs24_224", dict(img_size=48, patch_size=8, num_classes=10, depth=3, qkv_bias=False,
                            depth_token_only=1, mlp_ratio=2.0, mlp_ratio_token_only=2.0), 48, 3),
    ("cait_xxs24_224", dict(img_size=24, patch_size=6, num_classes=10, depth=4, attn_block=TimmAttention), 24, 3),
]


@pytest.mark.parametrize("name,kwargs,size,chans", TIMM_CASES)
def test_from_timm_and_back_give_the_same_logits(name, kwargs, size, chans):
    torch.manual_seed(0)
    tm = timm.create_model(name, pretrained=False, **kwargs).eval()
    with torch.no_grad():  # move parameters away from their init so every weight matters
        for p in tm.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.randn(2, chans, size, size)
    ours = from_timm(tm).eval()
    assert isinstance(ours, CaiT)
    assert ours.config.talking_heads == ("attn_block" not in kwargs)
    back = to_timm(ours).eval()
    with torch.no_grad():
        expected, got, again = tm(x), ours(x), back(x)
    assert (got - expected).abs().max().item() < 1e-5
    assert (again - expected).abs().max().item() < 1e-5
    assert type(back).__name__ == "Cait"


def test_unsupported_timm_cait_is_refused_clearly():
    tm = timm.create_model("cait_xxs24_224", pretrained=False, img_size=32, patch_size=8, depth=1, global_pool="avg")
    with pytest.raises(ValueError, match="global_pool"):
        from_timm(tm)
    tm = timm.create_model("cait_xxs24_224", pretrained=False, img_size=32, patch_size=8, depth=1, mlp_ratio=2.0)
    with pytest.raises(ValueError, match="mlp_ratio_token_only"):
        from_timm(tm)


def test_mix_heads_is_a_linear_map_over_the_heads_at_every_position():
    from vit_tutorial.cait import mix_heads

    torch.manual_seed(0)
    mix = torch.nn.Linear(3, 3)
    attn = torch.randn(2, 3, 5, 7)  # (B, H, Nq, Nk)
    want = mix(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # nn.Linear on heads-last: the definition
    torch.testing.assert_close(mix_heads(attn, mix), want)
    torch.testing.assert_close(mix_heads(attn.transpose(2, 3), mix), want.transpose(2, 3))  # any memory layout
