"""Moving weights between timm and vit_tutorial: `from_timm(timm_model)` and `to_timm(model)`.

Both directions give identical logits (to float rounding). Each supported family registers
how to read its config from a timm model, how to build the timm model back, and how our
parameter names map onto timm's (most are the same by design). A timm model that uses anything
we do not model is refused first, by name (`timm_audit`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import timm_audit
from .timm_audit import drop_path_of


@dataclass
class Family:
    """How one model family converts: our class, timm's class name, and three small functions."""

    ours: type
    timm_class: str
    from_timm_config: Callable[[nn.Module], nn.Module]  # timm model -> our (untrained) model
    to_timm_model: Callable[[nn.Module], nn.Module]  # our model -> timm (untrained) model
    renames: dict[str, str]  # our key substring -> timm key substring


FAMILIES: list[Family] = []


def _find(model: nn.Module, by_timm: bool) -> Family:
    name = type(model).__name__
    for family in reversed(FAMILIES):  # subclasses register later and win
        if (name == family.timm_class) if by_timm else type(model) is family.ours:
            return family
    known = ", ".join(f.timm_class if by_timm else f.ours.__name__ for f in FAMILIES)
    raise ValueError(f"cannot convert a {name}: supported are {known}.")


def _timm_key(key: str, renames: dict[str, str]) -> str:
    for ours, theirs in renames.items():
        key = key.replace(ours, theirs)
    return key


def _copy(src: dict[str, torch.Tensor], dst: nn.Module, key_map: Callable[[str], str]) -> None:
    """Copy `src` into `dst`, where dst's key k reads src[key_map(k)]; every key must be used."""
    wanted = dst.state_dict()
    missing = [k for k in wanted if key_map(k) not in src]
    unused = set(src) - {key_map(k) for k in wanted}
    if missing or unused:
        raise ValueError(f"state_dicts do not line up: missing {missing[:5]}, unused {sorted(unused)[:5]}.")
    new = {}
    for k, v in wanted.items():
        t = src[key_map(k)]
        if t.shape != v.shape:
            raise ValueError(f"shape of {k} is {tuple(v.shape)} here but {tuple(t.shape)} in the source.")
        new[k] = t.detach().clone()
    dst.load_state_dict(new)


def from_timm(timm_model: nn.Module) -> nn.Module:
    """Our model with the architecture and weights of `timm_model` (same logits, eval mode)."""
    family = _find(timm_model, by_timm=True)
    model = family.from_timm_config(timm_model)
    _copy(timm_model.state_dict(), model, lambda k: _timm_key(k, family.renames))
    return model.train(timm_model.training)


def to_timm(model: nn.Module) -> nn.Module:
    """A timm model with the architecture and weights of our `model` (needs `pip install timm`)."""
    family = _find(model, by_timm=False)
    timm_model = family.to_timm_model(model)
    ours = model.state_dict()
    inverse = {_timm_key(k, family.renames): k for k in ours}
    _copy(ours, timm_model, lambda k: inverse.get(k, k))
    return timm_model.train(model.training)


def pretrained(name: str) -> nn.Module:
    """Download timm's pretrained `name` (e.g. 'deit_tiny_patch16_224') and convert it.

    Needs the network; offline it raises a ValueError that says so, so callers can fall back
    to a shipped checkpoint.
    """
    import timm

    try:
        timm_model = timm.create_model(name, pretrained=True)
    except Exception as err:  # no network, no cache, or unknown name
        raise ValueError(
            f"could not load pretrained {name!r} through timm ({type(err).__name__}: {str(err)[:120]}). "
            "Offline? Connect once to cache the weights, or use a checkpoint from data/checkpoints."
        ) from err
    return from_timm(timm_model.eval()).eval()


def _shared_config(tm: nn.Module) -> dict:
    """The config fields every family reads the same way (after its audit): image, patches, channels,
    classes, width, depth, heads, MLP ratio and dropout of the first block."""
    pe, block = tm.patch_embed, tm.blocks[0]
    return dict(
        image_size=pe.img_size[0], patch_size=pe.patch_size[0], in_channels=pe.proj.in_channels,
        num_classes=tm.num_classes, dim=tm.embed_dim, depth=len(tm.blocks), heads=block.attn.num_heads,
        mlp_ratio=block.mlp.fc1.out_features / tm.embed_dim, drop=block.mlp.drop1.p,
    )


# --- ViT and plain DeiT: timm.models.vision_transformer.VisionTransformer ---------------------


def _vit_config_from_timm(tm: nn.Module) -> dict:
    """Read a ViTConfig's fields from a timm VisionTransformer, refusing features we do not model."""
    timm_audit.audit_vit(tm)
    return _shared_config(tm) | dict(qkv_bias=tm.blocks[0].attn.qkv.bias is not None, pool="cls",
                                     drop_path=drop_path_of(tm.blocks[-1]))


def _vit_to_timm(model: nn.Module, cls_name: str = "VisionTransformer") -> nn.Module:
    from timm.models import vision_transformer as tv
    from timm.models import deit as td

    c = model.config
    if c.pool != "cls" or c.pos_embed != "learned" or c.post_norm:
        raise ValueError("to_timm supports pre-norm blocks, class-token pooling and a learned position embedding "
                         f"(this model: post_norm={c.post_norm}, pool={c.pool!r}, pos_embed={c.pos_embed!r}).")
    cls = getattr(tv, cls_name, None) or getattr(td, cls_name)
    return cls(
        img_size=c.image_size, patch_size=c.patch_size, in_chans=c.in_channels, num_classes=c.num_classes,
        embed_dim=c.dim, depth=c.depth, num_heads=c.heads, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
        drop_path_rate=c.drop_path, proj_drop_rate=c.drop, global_pool="token", init_values=c.init_values,
    )


def _register_vit() -> None:
    from .vit import ViT, ViTConfig

    FAMILIES.append(
        Family(ViT, "VisionTransformer", lambda tm: ViT(ViTConfig(**_vit_config_from_timm(tm))), _vit_to_timm,
               {"pos_embed.weight": "pos_embed"})
    )


_register_vit()


# --- Distilled DeiT: timm.models.deit.VisionTransformerDistilled --------------------------------


def _deit_to_timm(model: nn.Module) -> nn.Module:
    """timm's distilled DeiT; distilled training on, so that in training it also returns the pair."""
    timm_model = _vit_to_timm(model, "VisionTransformerDistilled")
    timm_model.set_distilled_training(True)
    return timm_model


def _register_deit() -> None:
    from .deit import DistilledViT
    from .vit import ViTConfig

    FAMILIES.append(
        Family(DistilledViT, "VisionTransformerDistilled",
               lambda tm: DistilledViT(ViTConfig(**_vit_config_from_timm(tm))), _deit_to_timm,
               {"pos_embed.weight": "pos_embed"})  # dist_token and head_dist have timm's names
    )


_register_deit()


# --- CaiT: timm.models.cait.Cait ---------------------------------------------------------------


def _cait_config_from_timm(tm: nn.Module) -> dict:
    """Read a CaiTConfig's fields from a timm Cait, refusing features we do not model.

    LayerScale's init value is not stored in the weights, so it is left to the depth rule; the
    copied gammas decide the function anyway.
    """
    from timm.models.cait import TalkingHeadAttn

    timm_audit.audit_cait(tm)
    block = tm.blocks[0]
    return _shared_config(tm) | dict(qkv_bias=block.attn.qkv.bias is not None, depth_token_only=len(tm.blocks_token_only),
                                     talking_heads=isinstance(block.attn, TalkingHeadAttn), drop_path=drop_path_of(block))


def _cait_to_timm(model: nn.Module) -> nn.Module:
    from timm.models.cait import Cait, TalkingHeadAttn
    from timm.models.vision_transformer import Attention

    c = model.config
    if c.pos_embed != "learned":
        raise ValueError(f"to_timm supports a learned position embedding; this CaiT has pos_embed={c.pos_embed!r}.")
    return Cait(
        img_size=c.image_size, patch_size=c.patch_size, in_chans=c.in_channels, num_classes=c.num_classes,
        embed_dim=c.dim, depth=c.depth, num_heads=c.heads, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
        drop_path_rate=c.drop_path, proj_drop_rate=c.drop, init_values=c.layer_scale,
        depth_token_only=c.depth_token_only, mlp_ratio_token_only=c.mlp_ratio,
        attn_block=TalkingHeadAttn if c.talking_heads else Attention, global_pool="token",
    )


def _register_cait() -> None:
    from .cait import CaiT, CaiTConfig

    FAMILIES.append(
        Family(CaiT, "Cait", lambda tm: CaiT(CaiTConfig(**_cait_config_from_timm(tm))), _cait_to_timm,
               {"pos_embed.weight": "pos_embed", "ls1.gamma": "gamma_1", "ls2.gamma": "gamma_2"})
    )


_register_cait()


# --- ConViT: timm.models.convit.ConVit --------------------------------------------------------


def _convit_config_from_timm(tm: nn.Module) -> dict:
    """Read a ConViTConfig's fields from a timm ConVit, refusing features we do not model.

    timm's `embed_dim` argument counts per head; the built model's `tm.embed_dim` is the total.
    """
    timm_audit.audit_convit(tm)
    attn = tm.blocks[0].attn
    q_proj = attn.qk if hasattr(attn, "qk") else attn.qkv
    return _shared_config(tm) | dict(qkv_bias=q_proj.bias is not None, local_up_to_layer=tm.local_up_to_layer,
                                     locality_strength=tm.locality_strength, drop_path=drop_path_of(tm.blocks[-1]))


def _convit_to_timm(model: nn.Module) -> nn.Module:
    from timm.models.convit import ConVit

    c = model.config
    return ConVit(
        img_size=c.image_size, patch_size=c.patch_size, in_chans=c.in_channels, num_classes=c.num_classes,
        embed_dim=c.dim // c.heads, depth=c.depth, num_heads=c.heads, mlp_ratio=c.mlp_ratio,  # per head
        qkv_bias=c.qkv_bias, drop_path_rate=c.drop_path, proj_drop_rate=c.drop,
        local_up_to_layer=c.local_up_to_layer, locality_strength=c.locality_strength, global_pool="token",
    )


def _register_convit() -> None:
    from .convit import ConViT, ConViTConfig

    FAMILIES.append(
        Family(ConViT, "ConVit", lambda tm: ConViT(ConViTConfig(**_convit_config_from_timm(tm))), _convit_to_timm,
               {"pos_embed.weight": "pos_embed"})  # GPSA's qk, v, pos_proj, gating_param have timm's names
    )


_register_convit()
