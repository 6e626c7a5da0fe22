"""MLP-Mixer: built from the shared parts, checked configs, timm's logits both ways, refusals by name."""
import pytest
import timm
import torch
from torch import nn

from vit_tutorial import blocks, checkpoint, models, timm_compat
from vit_tutorial.mixer import Mixer, MixerBlock, MixerConfig

SMALL = dict(image_size=32, patch_size=8, in_channels=1, num_classes=10, dim=16, depth=2, tokens_ratio=1.5, channels_ratio=2.0)


def perturbed(model: nn.Module) -> nn.Module:
    """Weights moved away from their initial values, so that a wrong mapping cannot hide behind zeros."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_shapes_and_parts():
    torch.manual_seed(0)
    m = Mixer(**SMALL)
    assert m(torch.randn(3, 1, 32, 32)).shape == (3, 10)
    block = m.blocks[0]
    assert isinstance(block, MixerBlock) and isinstance(block.mlp_tokens, blocks.MLP) and isinstance(block.norm1, nn.LayerNorm)
    assert block.mlp_tokens.fc1.in_features == 16 and block.mlp_tokens.fc1.out_features == 24  # N patches -> 1.5 D
    assert block.mlp_channels.fc1.in_features == 16 and block.mlp_channels.fc1.out_features == 32  # D -> 2 D
    assert m.token_mixing(1).shape == (24, 4, 4)  # one map over the 4 x 4 grid per hidden unit
    assert models.build("mixer", **SMALL).config == m.config


def test_token_mixing_acts_across_patches_and_channel_mixing_within_them():
    torch.manual_seed(0)
    block = MixerBlock(dim=4, num_patches=6, tokens_hidden=5, channels_hidden=8).eval()
    x = torch.randn(2, 6, 4)
    # Token mixing: each channel's column of 6 patch values goes through the same MLP.
    norm = block.norm1(x)
    by_hand = torch.stack([block.mlp_tokens(norm[:, :, c]) for c in range(4)], dim=-1)  # (B, N, D)
    after_tokens = x + by_hand
    assert torch.allclose(block(x), after_tokens + block.mlp_channels(block.norm2(after_tokens)), atol=1e-6)
    # Permuting the patches changes the output (the mixing weights know where each patch is) ...
    perm = torch.randperm(6)
    assert not torch.allclose(block(x[:, perm]), block(x)[:, perm], atol=1e-4)
    # ... while the channel MLP alone treats every patch alike.
    y = block.mlp_channels(x)
    assert torch.allclose(block.mlp_channels(x[:, perm]), y[:, perm], atol=1e-6)


@pytest.mark.parametrize("bad, words", [
    (dict(image_size=30), "not divisible by patch_size"),
    (dict(tokens_ratio=0.01), "gives its MLP no hidden units"),
    (dict(dim=0), "dim"),
    (dict(depth=2.0), "depth"),
    (dict(drop_path=1.0), "drop_path"),
    (dict(channels_ratio=float("nan")), "channels_ratio"),
])
def test_bad_configs_are_refused_by_name(bad, words):
    with pytest.raises(ValueError, match=words):
        MixerConfig(**{**SMALL, **bad})


def test_timm_mixer_s16_gives_the_same_logits_both_ways():
    tm = perturbed(timm.create_model("mixer_s16_224", pretrained=False))
    ours = timm_compat.from_timm(tm)
    assert ours.config == MixerConfig()  # our defaults are Mixer-S/16
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (ours(x) - tm(x)).abs().max() < 1e-5
    back = timm_compat.to_timm(ours).eval()
    with torch.no_grad():
        assert (back(x) - tm(x)).abs().max() < 1e-5


def test_small_mixer_to_timm_and_back():
    m = perturbed(Mixer(**SMALL, drop_path=0.1))
    tm = timm_compat.to_timm(m).eval()
    assert type(tm).__name__ == "MlpMixer" and all(b.drop_path.drop_prob == pytest.approx(0.1) for b in tm.blocks)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert (m(x) - tm(x)).abs().max() < 1e-5
        assert (timm_compat.from_timm(tm).eval()(x) - m(x)).abs().max() < 1e-5


@pytest.mark.parametrize("build, words", [
    (lambda: timm.create_model("mixer_s16_224", pretrained=False, stem_norm=True), "stem_norm"),
    (lambda: timm.create_model("mixer_s16_224", pretrained=False, act_layer=nn.ReLU), "activation ReLU"),
    (lambda: timm.create_model("mixer_s16_224", pretrained=False, global_pool=""), "global_pool"),
    (lambda: timm.create_model("mixer_s16_224", pretrained=False, drop_rate=0.1), "head dropout"),
    (lambda: timm.create_model("resmlp_12_224", pretrained=False), "ResBlock"),
    (lambda: timm.create_model("gmlp_ti16_224", pretrained=False), "SpatialGatingBlock"),
])
def test_unmodelled_timm_features_are_refused_by_name(build, words):
    with pytest.raises(ValueError, match=words):
        timm_compat.from_timm(build())


def test_a_mixer_checkpoint_round_trips(tmp_path):
    m = perturbed(Mixer(**SMALL))
    checkpoint.save(tmp_path / "mixer", m)
    loaded, info = checkpoint.load(tmp_path / "mixer")
    assert info["kind"] == "mixer" and isinstance(loaded, Mixer)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(loaded(x), m(x))
