import pytest
import torch

from vit_tutorial import ViT, ViTConfig
from vit_tutorial.analysis import record_attention

SMALL = dict(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=3, heads=4, mlp_ratio=2.0)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_shapes_and_parameters(pool):
    model = ViT(**SMALL, pool=pool)
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    tokens = model.forward_features(x)
    assert tokens.shape == (2, 16 + (pool == "cls"), 32)
    assert model.pos_embed.weight.shape == (1, 16 + (pool == "cls"), 32)


def test_config_round_trip_rebuilds_the_same_architecture():
    model = ViT(ViTConfig(**SMALL))
    clone = ViT(**model.config.to_dict())
    assert clone.config == model.config
    assert [(k, v.shape) for k, v in clone.state_dict().items()] == [(k, v.shape) for k, v in model.state_dict().items()]


def test_sincos_position_embedding_has_no_learned_table():
    model = ViT(**SMALL, pos_embed="sincos")
    assert "pos_embed.weight" not in model.state_dict()
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(image_size=30), "not divisible by patch_size"),
        (dict(dim=30), "not divisible by heads"),
        (dict(pool="max"), "pool must be"),
        (dict(num_classes=0), "num_classes must be positive"),
    ],
)
def test_bad_config_raises_value_error(change, match):
    with pytest.raises(ValueError, match=match):
        ViT(**{**SMALL, **change})


def test_wrong_input_raises_value_error_naming_the_shape():
    model = ViT(**SMALL)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.randn(2, 1, 32, 32))


def test_record_attention_gives_one_map_per_layer_and_restores_the_model():
    torch.manual_seed(0)
    model = ViT(**SMALL).eval()
    x = torch.randn(2, 1, 28, 28)
    before = model(x)
    with record_attention(model) as maps:
        during = model(x)
    assert len(maps) == 3
    for m in maps:
        assert m.shape == (2, 4, 17, 17)
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 4, 17))
    torch.testing.assert_close(during, before, atol=1e-5, rtol=1e-5)
    assert all(not block.attn.needs_weights and block.attn.fused for block in model.blocks)
    with torch.no_grad():
        model(x)
    assert len(maps) == 3  # nothing recorded after the context ends


def test_record_attention_is_in_forward_order():
    torch.manual_seed(0)
    model = ViT(**SMALL).eval()
    x = torch.randn(1, 1, 28, 28)
    seen = []
    for i, block in enumerate(model.blocks):
        block.attn.register_forward_hook(lambda m, inp, out, i=i: seen.append(i))
    with record_attention(model) as maps:
        model(x)
    # recompute layer 1's map by hand from the tokens entering block 1
    tokens = model.pos_embed(torch.cat([model.cls_token, model.patch_embed(x)], 1))
    tokens = model.blocks[0](tokens)
    _, w = model.blocks[1].attn(model.blocks[1].norm1(tokens), return_attention=True)
    torch.testing.assert_close(maps[1], w.detach(), atol=1e-6, rtol=1e-5)
    assert seen[:3] == [0, 1, 2]


def test_record_attention_on_a_model_without_attention_raises():
    with pytest.raises(ValueError, match="no attention layers"):
        with record_attention(torch.nn.Linear(2, 2)):
            pass


def test_a_vit_at_another_image_size_keeps_its_weights():
    from vit_tutorial.vit import at_image_size

    torch.manual_seed(0)
    model = ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=16, depth=2, heads=2).eval()
    same = at_image_size(model, 28)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(same(x), model(x), atol=1e-6)
    big = at_image_size(model, 56)
    assert big.config.grid_size == 8 and big(torch.randn(2, 1, 56, 56)).shape == (2, 10)
    assert torch.equal(big.blocks[1].mlp.fc2.weight, model.blocks[1].mlp.fc2.weight)
    sincos = ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=16, depth=1, heads=2, pos_embed="sincos")
    assert at_image_size(sincos, 56, "extend").pos_embed.weight.shape == (1, 65, 16)


def test_post_norm_and_layer_scale_blocks():
    torch.manual_seed(0)
    pre = ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=16, depth=2, heads=2)
    post = ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=16, depth=2, heads=2, post_norm=True)
    post.load_state_dict(pre.state_dict())  # the same parameters, another order of operations
    x = torch.randn(2, 1, 28, 28)
    assert not torch.allclose(pre(x), post(x))
    block, t = post.blocks[0].eval(), torch.randn(2, 5, 16)
    manual = block.norm1(t + block.attn(t))
    assert torch.allclose(block(t), block.norm2(manual + block.mlp(manual)), atol=1e-6)
    scaled = ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=16, depth=2, heads=2, init_values=1e-4)
    assert torch.allclose(scaled.blocks[1].ls2.gamma, torch.full((16,), 1e-4))
