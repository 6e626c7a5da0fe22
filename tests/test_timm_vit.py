"""Our ViT carries timm's weights and gives the same logits, both ways (timm built offline)."""
import pytest
import timm
import torch

from vit_tutorial import ViT
from vit_tutorial.timm_compat import from_timm, to_timm

CASES = [
    ("vit_tiny_patch16_224", {}, 224, 3),
    ("deit_tiny_patch16_224", {}, 224, 3),
    ("vit_tiny_patch16_224", dict(img_size=32, patch_size=4, in_chans=1, num_classes=7, depth=2), 32, 1),
    ("vit_small_patch16_224", dict(img_size=48, patch_size=8, num_classes=10, depth=2, qkv_bias=False), 48, 3),
]


@pytest.mark.parametrize("name,kwargs,size,chans", CASES)
def test_from_timm_and_back_give_the_same_logits(name, kwargs, size, chans):
    torch.manual_seed(0)
    tm = timm.create_model(name, pretrained=False, **kwargs).eval()
    with torch.no_grad():  # move parameters away from their init so every weight matters
        for p in tm.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.randn(2, chans, size, size)
    ours = from_timm(tm).eval()
    assert isinstance(ours, ViT)
    back = to_timm(ours).eval()
    with torch.no_grad():
        expected, got, again = tm(x), ours(x), back(x)
    assert (got - expected).abs().max().item() < 1e-5
    assert (again - expected).abs().max().item() < 1e-5
    assert type(back).__name__ == "VisionTransformer"


def test_unsupported_timm_models_are_refused_clearly():
    tm = timm.create_model("vit_tiny_patch16_224", pretrained=False, global_pool="avg", class_token=False)
    with pytest.raises(ValueError, match="global_pool"):
        from_timm(tm)
    with pytest.raises(ValueError, match="cannot convert"):
        from_timm(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="class-token pooling"):
        to_timm(ViT(image_size=28, patch_size=7, in_channels=1, dim=16, depth=1, heads=2, pool="mean"))
    wide = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=(32, 48), num_classes=10)
    with pytest.raises(ValueError, match="non-square images"):  # our configs are square: refused, not cropped
        from_timm(wide)
