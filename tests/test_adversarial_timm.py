"""Adversarial timm models: every feature we do not model is refused by name; what we model converts
with identical logits (small timm models built offline: img 32, patch 8, width 32, depth 2)."""
import functools

import pytest
import timm
import torch
from timm.layers import DropPath, GluMlp, SwiGLU
from timm.models.vision_transformer import ParallelScalingBlock, ParallelThingsBlock, ResPostBlock
from torch import nn

from vit_tutorial.timm_compat import from_timm, to_timm

SIZES = {"vit_tiny_patch16_224": dict(embed_dim=32, num_heads=2), "deit_tiny_distilled_patch16_224": dict(embed_dim=32, num_heads=2),
         "cait_xxs24_224": dict(embed_dim=32, num_heads=2), "convit_tiny": dict(embed_dim=16, num_heads=2, local_up_to_layer=1)}
VIT, DEIT, CAIT, CONVIT = SIZES
EPS5 = functools.partial(nn.LayerNorm, eps=1e-5)


def _timm(name, **kwargs):
    torch.manual_seed(0)
    settings = dict(img_size=32, patch_size=8, depth=2, num_classes=5, **SIZES[name])
    return timm.create_model(name, pretrained=False, **{**settings, **kwargs})


def _set(path, value):
    """Change a built model: set attribute `path` (dots; a [i] picks a block) to value(old)."""
    def change(model):
        *parents, last = path.split(".")
        obj = model
        for p in parents:
            obj = obj[int(p)] if p.isdigit() else getattr(obj, p)
        setattr(obj, last, value(getattr(obj, last)))
        return model
    return change


# case -> (timm name, constructor settings, change after building or None, words of the refusal)
REFUSED = {
    "ReLU": (VIT, dict(act_layer="relu"), None, "activation ReLU (we model exact GELU)"),
    "quick GELU": (VIT, dict(act_layer="quick_gelu"), None, "activation QuickGELU"),
    "tanh GELU (timm)": (VIT, dict(act_layer="gelu_tanh"), None, "activation GELUTanh"),
    "tanh GELU (torch)": (VIT, dict(act_layer=functools.partial(nn.GELU, approximate="tanh")), None, "tanh-approximate GELU"),
    "SiLU": (VIT, dict(act_layer="silu"), None, "activation SiLU"),
    "LayerNorm eps 1e-5": (VIT, dict(norm_layer=EPS5), None, "LayerNorm eps 1e-05 (we model 1e-06)"),
    "RMSNorm": (VIT, dict(norm_layer="rmsnorm"), None, "RmsNorm as block norm (we model LayerNorm)"),
    "post-norm blocks": (VIT, dict(block_fn=ResPostBlock), None, "post-norm blocks (ResPostBlock"),
    "parallel scaling blocks": (VIT, dict(block_fn=ParallelScalingBlock), None, "parallel blocks (ParallelScalingBlock"),
    "parallel blocks": (VIT, dict(block_fn=ParallelThingsBlock), None, "parallel blocks (ParallelThingsBlock"),
    "qk-norm": (VIT, dict(qk_norm=True), None, "qk_norm"),
    "attention out norm": (VIT, dict(scale_attn_norm=True), None, "scale_attn_norm"),
    "MLP norm": (VIT, dict(scale_mlp_norm=True), None, "scale_mlp_norm"),
    "no projection bias": (VIT, dict(proj_bias=False), None, "an attention projection without bias (proj_bias=False)"),
    "layer scale in a ViT": (VIT, dict(init_values=1e-5), None, "layer_scale (init_values)"),
    "register tokens": (VIT, dict(reg_tokens=4), None, "reg_tokens"),
    "no_embed_class": (VIT, dict(no_embed_class=True), None, "no_embed_class"),
    "pre-norm (CLIP)": (VIT, dict(pre_norm=True), None, "pre_norm"),
    "fc_norm": (VIT, dict(fc_norm=True), None, "fc_norm"),
    "no final norm": (VIT, dict(final_norm=False), None, "no norm as final norm"),
    "dynamic image size": (VIT, dict(dynamic_img_size=True), None, "dynamic_img_size"),
    "dynamic padding": (VIT, dict(dynamic_img_pad=True), None, "dynamic_img_pad"),
    "no position embedding": (VIT, dict(pos_embed="none"), None, "no position embedding"),
    "head dropout": (VIT, dict(drop_rate=0.1), None, "head dropout (drop_rate)"),
    "position dropout": (VIT, dict(pos_drop_rate=0.1), None, "position dropout (pos_drop_rate)"),
    "patch dropout": (VIT, dict(patch_drop_rate=0.1), None, "patch dropout (patch_drop_rate)"),
    "attention dropout": (VIT, dict(attn_drop_rate=0.1), None, "attention dropout (attn_drop_rate)"),
    "attention pooling": (VIT, dict(global_pool="map"), None, "global_pool other than class-token pooling"),
    "average pooling": (VIT, dict(global_pool="avg", class_token=False), None, "no class token"),
    "SwiGLU MLP": (VIT, dict(mlp_layer=SwiGLU), None, "MLP SwiGLU"),
    "GLU MLP": (VIT, dict(mlp_layer=GluMlp), None, "MLP GluMlp"),
    "patch-embedding norm": (VIT, dict(embed_norm_layer="layernorm"), None, "a norm in the patch embedding"),
    "no head": (VIT, dict(num_classes=0), None, "no classifier head"),
    "non-square images": (VIT, dict(img_size=(32, 48)), None, "non-square images"),
    "ReLU swapped in later": (VIT, {}, _set("blocks.1.mlp.act", lambda old: nn.ReLU()), "activation ReLU"),
    "eps changed later": (VIT, {}, _set("norm.eps", lambda old: 1e-5), "LayerNorm eps 1e-05"),
    "blocks of other widths": (VIT, {}, _set("blocks.1.attn.num_heads", lambda old: 4), "attn_head_dim other than dim / heads"),
    "a non-linear drop-path schedule": (VIT, dict(drop_path_rate=0.2), _set("blocks.0.drop_path1", lambda old: DropPath(0.2)),
                                        "a drop-path schedule other than linear"),
    "DeiT: ReLU": (DEIT, dict(act_layer="relu"), None, "activation ReLU"),
    "DeiT: eps 1e-5": (DEIT, dict(norm_layer=EPS5), None, "LayerNorm eps 1e-05"),
    "DeiT: post-norm": (DEIT, dict(block_fn=ResPostBlock), None, "post-norm blocks"),
    "CaiT: ReLU": (CAIT, dict(act_layer=nn.ReLU), None, "activation ReLU"),
    "CaiT: eps 1e-5": (CAIT, dict(norm_layer=EPS5), None, "LayerNorm eps 1e-05"),
    "CaiT: attention dropout": (CAIT, dict(attn_drop_rate=0.1), None, "attention dropout"),
    "CaiT: position dropout": (CAIT, dict(pos_drop_rate=0.1), None, "position dropout"),
    "CaiT: head dropout": (CAIT, dict(drop_rate=0.1), None, "head dropout"),
    "CaiT: average pooling": (CAIT, dict(global_pool="avg"), None, "global_pool"),
    "CaiT: no class attention": (CAIT, dict(depth_token_only=0), None, "no class-attention blocks"),
    "CaiT: other class-attention MLP": (CAIT, dict(mlp_ratio_token_only=2.0), None, "mlp_ratio_token_only != mlp_ratio"),
    "CaiT: drop path varying": (CAIT, dict(drop_path_rate=0.1), _set("blocks.0.drop_path", lambda old: nn.Identity()),
                                "drop-path rates that vary between blocks"),
    "ConViT: eps 1e-5": (CONVIT, dict(norm_layer=EPS5), None, "LayerNorm eps 1e-05"),
    "ConViT: ReLU swapped in": (CONVIT, {}, _set("blocks.0.mlp.act", lambda old: nn.ReLU()), "activation ReLU"),
    "ConViT: attention dropout": (CONVIT, dict(attn_drop_rate=0.1), None, "attention dropout"),
    "ConViT: no position embedding": (CONVIT, dict(use_pos_embed=False), None, "no pos_embed"),
    "ConViT: head dropout": (CONVIT, dict(drop_rate=0.1), None, "head dropout"),
    "ConViT: only GPSA blocks": (CONVIT, dict(local_up_to_layer=2), None, "no MHSA block after the GPSA blocks"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_timm_feature_we_do_not_model_is_refused_by_name(case):
    name, kwargs, change, words = REFUSED[case]
    tm = _timm(name, **kwargs)
    if change is not None:
        tm = change(tm)
    with pytest.raises(ValueError) as err:
        from_timm(tm)
    assert words in str(err.value) and "which vit_tutorial does not model" in str(err.value)


# what we do model converts both ways with the same logits (dropout and stochastic depth carried over)
CONVERTED = {
    "ViT with dropout and drop path": (VIT, dict(drop_path_rate=0.1, proj_drop_rate=0.1)),
    "ViT without qkv bias": (VIT, dict(qkv_bias=False)),
    "DeiT distilled": (DEIT, dict(drop_path_rate=0.1)),
    "CaiT with dropout and drop path": (CAIT, dict(drop_path_rate=0.1, proj_drop_rate=0.1)),
    "ConViT with dropout and drop path": (CONVIT, dict(drop_path_rate=0.1, proj_drop_rate=0.1)),
}


@pytest.mark.parametrize("case", CONVERTED)
def test_what_we_model_converts_with_the_same_logits(case):
    name, kwargs = CONVERTED[case]
    tm = _timm(name, **kwargs).eval()
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours = from_timm(tm).eval()
    assert ours.config.drop_path == kwargs.get("drop_path_rate", 0.0) and ours.config.drop == kwargs.get("proj_drop_rate", 0.0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tm(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(to_timm(ours).eval()(x), tm(x), atol=1e-5, rtol=1e-5)
