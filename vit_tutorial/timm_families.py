"""Each model family's side of `timm_compat`: how to read our config from a timm model (after
`timm_audit` has refused what we do not model), how to build the timm model back from our config,
and how our parameter names map onto timm's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


# --- MLP-Mixer: timm.models.mlp_mixer.MlpMixer ----------------------------------------------------


def _mixer_from_timm(tm: nn.Module) -> nn.Module:
    from .mixer import Mixer

    timm_audit.audit_mixer(tm)
    block = tm.blocks[0]
    return Mixer(image_size=tm.stem.img_size[0], patch_size=tm.stem.patch_size[0], in_channels=tm.stem.proj.in_channels,
                 num_classes=tm.num_classes, dim=tm.embed_dim, depth=len(tm.blocks),
                 tokens_ratio=block.mlp_tokens.fc1.out_features / tm.embed_dim,
                 channels_ratio=block.mlp_channels.fc1.out_features / tm.embed_dim, drop_path=drop_path_of(block))


def _mixer_to_timm(model: nn.Module) -> nn.Module:
    from timm.models.mlp_mixer import MlpMixer

    c = model.config
    return MlpMixer(num_classes=c.num_classes, img_size=c.image_size, in_chans=c.in_channels, patch_size=c.patch_size,
                    num_blocks=c.depth, embed_dim=c.dim, mlp_ratio=(c.tokens_ratio, c.channels_ratio),
                    drop_path_rate=c.drop_path, global_pool="avg")


def _register_mixer() -> None:
    from .mixer import Mixer

    FAMILIES.append(Family(Mixer, "MlpMixer", _mixer_from_timm, _mixer_to_timm, {"patch_embed.proj": "stem.proj"}))


_register_mixer()
