"""What of a timm model we do not model: every such feature named, and the model refused, before converting.

`timm_compat.from_timm` converts a timm ViT, DeiT, CaiT or ConViT only if its maths is ours:
exact GELU, LayerNorm with eps 1e-6 and affine parameters, pre-norm blocks of (talking-heads)
multi-head attention and a two-layer MLP with biases, learned position embeddings, class-token
pooling, and dropout only where our configs carry it over. Any other choice (a ReLU, a LayerNorm
eps of 1e-5, post-norm or parallel blocks, qk-norm, a missing bias, ...) would give other logits
without a word, so `audit(model)` walks the model module by module and refuses it, naming what it found.
"""
from __future__ import annotations

from torch import nn

from .blocks import LN_EPS, drop_path_rates


class Findings(list):
    """The features found that we do not model, each named once."""

    def flag(self, found: bool, name: str) -> None:
        if found and name not in self:
            self.append(name)

    def refuse(self, what: str) -> None:
        if self:
            raise ValueError(f"this timm {what} uses {', '.join(self)}, which vit_tutorial does not model "
                             "(its logits would differ): convert a model without them, or use it through timm.")


def _p(dropout: nn.Module | None) -> float:
    return getattr(dropout, "p", 0.0)


def drop_path_of(block: nn.Module) -> float:
    """A timm block's stochastic-depth rate (0 where it has none)."""
    module = getattr(block, "drop_path1", getattr(block, "drop_path", None))
    return round(float(getattr(module, "drop_prob", 0.0)), 7)  # timm computes the rates in float32


def _identity(module: nn.Module | None) -> bool:
    return module is None or isinstance(module, nn.Identity)


def _act(f: Findings, act: nn.Module) -> None:
    from timm.layers.activations import GELU

    exact = type(act) is GELU or (type(act) is nn.GELU and act.approximate == "none")
    name = "tanh-approximate GELU" if getattr(act, "approximate", "none") == "tanh" else type(act).__name__
    f.flag(not exact, f"activation {name} (we model exact GELU)")


def _norm(f: Findings, norm: nn.Module, where: str) -> None:
    if not isinstance(norm, nn.LayerNorm):
        f.flag(True, f"{'no norm' if _identity(norm) else type(norm).__name__} as {where} (we model LayerNorm)")
        return
    f.flag(norm.eps != LN_EPS, f"LayerNorm eps {norm.eps:g} (we model {LN_EPS:g})")
    f.flag(not norm.elementwise_affine or norm.bias is None, "LayerNorm without affine weight or bias")


def _mlp(f: Findings, mlp: nn.Module) -> None:
    from timm.layers import Mlp

    if type(mlp) is not Mlp:
        return f.flag(True, f"MLP {type(mlp).__name__} (we model Mlp: fc1, GELU, fc2)")
    f.flag(not isinstance(mlp.fc1, nn.Linear), "a convolutional MLP (use_conv)")
    f.flag(mlp.fc1.bias is None or mlp.fc2.bias is None, "MLP layers without bias (proj_bias=False)")
    f.flag(not _identity(mlp.norm), "a norm inside the MLP (scale_mlp_norm)")
    _act(f, mlp.act)


def _attention(f: Findings, attn: nn.Module, dim: int) -> None:
    """timm's plain multi-head attention (vision_transformer's Attention), as our MultiHeadSelfAttention."""
    from timm.layers import Attention

    if type(attn) is not Attention:
        return f.flag(True, f"attention {type(attn).__name__} (we model multi-head self-attention)")
    f.flag(attn.num_heads * attn.head_dim != dim, "attn_head_dim other than dim / heads")
    f.flag(not (_identity(attn.q_norm) and _identity(attn.k_norm)), "qk_norm")
    f.flag(not _identity(attn.norm), "a norm before the attention projection (scale_attn_norm)")
    f.flag(getattr(attn, "gate", None) is not None, "gated attention")
    f.flag(attn.proj.bias is None, "an attention projection without bias (proj_bias=False)")
    f.flag(_p(attn.attn_drop) > 0, "attention dropout (attn_drop_rate)")


def _patch_embed(f: Findings, tm: nn.Module) -> None:
    from timm.layers import PatchEmbed

    pe = tm.patch_embed
    if type(pe) is not PatchEmbed:
        return f.flag(True, f"hybrid backbone or patch embedding {type(pe).__name__}")
    f.flag(pe.img_size is None or pe.img_size[0] != pe.img_size[1], "non-square images")
    f.flag(pe.patch_size[0] != pe.patch_size[1], "non-square patches")
    f.flag(pe.proj.bias is None, "a patch embedding without bias")
    f.flag(not _identity(pe.norm), "a norm in the patch embedding (embed_norm_layer)")
    f.flag(not pe.flatten or getattr(tm, "dynamic_img_size", False), "dynamic_img_size")
    f.flag(getattr(pe, "dynamic_img_pad", False), "dynamic_img_pad")


def _common(f: Findings, tm: nn.Module) -> None:
    """Pooling, patches, position dropout, final norm and head: the same attributes in every family."""
    f.flag(getattr(tm, "global_pool", "token") != "token", "global_pool other than class-token pooling")
    _patch_embed(f, tm)
    f.flag(_p(getattr(tm, "pos_drop", None)) > 0, "position dropout (pos_drop_rate)")
    f.flag(_p(getattr(tm, "head_drop", None)) > 0, "head dropout (drop_rate)")
    f.flag(not isinstance(tm.head, nn.Linear), "no classifier head (num_classes=0)")
    _norm(f, tm.norm, "final norm")


def _same_rates(f: Findings, rates: list[float], wanted: list[float], what: str) -> None:
    f.flag(any(abs(a - b) > 1e-6 for a, b in zip(rates, wanted)), f"a drop-path schedule other than {what}")


def audit_vit(tm: nn.Module) -> None:
    """Refuse a timm VisionTransformer(Distilled) that is not our ViT / DistilledViT."""
    from timm.models.vision_transformer import Block

    f, dim = Findings(), tm.embed_dim
    _common(f, tm)
    f.flag(getattr(tm, "cls_token", None) is None, "no class token")
    f.flag(getattr(tm, "num_reg_tokens", 0) != 0, "reg_tokens")
    f.flag(getattr(tm, "no_embed_class", False), "no_embed_class")
    f.flag(getattr(tm, "pos_embed", None) is None, "no position embedding (pos_embed='none')")
    f.flag(not _identity(getattr(tm, "norm_pre", None)), "pre_norm")
    f.flag(not _identity(getattr(tm, "fc_norm", None)), "fc_norm")
    f.flag(not _identity(getattr(tm, "patch_drop", None)), "patch dropout (patch_drop_rate)")
    for block in tm.blocks:
        if type(block) is not Block:
            kind = "post-norm" if "Post" in type(block).__name__ else "parallel" if "Parallel" in type(block).__name__ else "other"
            f.flag(True, f"{kind} blocks ({type(block).__name__}; we model pre-norm Block)")
            continue
        _norm(f, block.norm1, "block norm")
        _norm(f, block.norm2, "block norm")
        _attention(f, block.attn, dim)
        _mlp(f, block.mlp)
        f.flag(not (_identity(block.ls1) and _identity(block.ls2)), "layer_scale (init_values)")
    if not f:
        _same_rates(f, [drop_path_of(b) for b in tm.blocks], drop_path_rates(drop_path_of(tm.blocks[-1]), len(tm.blocks)), "linear")
        _uniform(f, tm.blocks[0], list(tm.blocks))
    f.refuse(type(tm).__name__)


def _uniform(f: Findings, first: nn.Module, blocks: list[nn.Module]) -> None:
    """Our configs give every block the same heads, MLP width, qkv bias and dropout: so must timm's."""
    def shape(b: nn.Module) -> tuple:
        qkv = getattr(b.attn, "qkv", getattr(b.attn, "qk", None))
        return (b.attn.num_heads, b.mlp.fc1.out_features, qkv.bias is not None if qkv is not None else None,
                _p(b.mlp.drop1), _p(b.mlp.drop2), _p(getattr(b.attn, "proj_drop", None)))
    f.flag(any(shape(b)[:3] != shape(first)[:3] for b in blocks), "blocks that differ in heads, MLP width or qkv bias")
    f.flag(len({x for b in blocks for x in shape(b)[3:]}) > 1, "dropout rates that differ between places (we model one rate)")


def audit_cait(tm: nn.Module) -> None:
    """Refuse a timm Cait that is not our CaiT."""
    from timm.layers import Attention
    from timm.models.cait import ClassAttn, LayerScaleBlock, LayerScaleBlockClassAttn, TalkingHeadAttn

    f, dim = Findings(), tm.embed_dim
    _common(f, tm)
    tokens = list(tm.blocks_token_only or [])
    f.flag(not tokens, "no class-attention blocks")
    for block in list(tm.blocks) + tokens:
        wanted = LayerScaleBlock if block in set(tm.blocks) else LayerScaleBlockClassAttn
        if type(block) is not wanted:
            f.flag(True, f"blocks {type(block).__name__} (we model {wanted.__name__})")
            continue
        _norm(f, block.norm1, "block norm")
        _norm(f, block.norm2, "block norm")
        _mlp(f, block.mlp)
        attn = block.attn
        if type(attn) is TalkingHeadAttn or type(attn) is ClassAttn:
            f.flag(_p(attn.attn_drop) > 0, "attention dropout (attn_drop_rate)")
        elif type(attn) is Attention and wanted is LayerScaleBlock:
            _attention(f, attn, dim)
        else:
            f.flag(True, f"attention {type(attn).__name__} in {wanted.__name__}")
    if not f:
        f.flag(tokens[0].mlp.fc1.out_features != tm.blocks[0].mlp.fc1.out_features, "mlp_ratio_token_only != mlp_ratio")
        f.flag(len({drop_path_of(b) for b in tm.blocks}) > 1, "drop-path rates that vary between blocks (we model one rate)")
        f.flag(any(drop_path_of(b) or _p(b.mlp.drop1) or _p(b.attn.proj_drop) for b in tokens), "dropout in class attention")
        _uniform(f, tm.blocks[0], list(tm.blocks))
    f.refuse("Cait")


def audit_convit(tm: nn.Module) -> None:
    """Refuse a timm ConVit that is not our ConViT."""
    from timm.models.convit import GPSA, MHSA, Block

    f = Findings()
    _common(f, tm)
    f.flag(not tm.use_pos_embed, "no pos_embed")
    f.flag(not 0 <= tm.local_up_to_layer < len(tm.blocks), "no MHSA block after the GPSA blocks")
    for i, block in enumerate(tm.blocks):
        if type(block) is not Block:
            f.flag(True, f"blocks {type(block).__name__} (we model ConVit's Block)")
            continue
        wanted = GPSA if i < tm.local_up_to_layer else MHSA
        f.flag(type(block.attn) is not wanted, f"attention {type(block.attn).__name__} where we model {wanted.__name__}")
        _norm(f, block.norm1, "block norm")
        _norm(f, block.norm2, "block norm")
        _mlp(f, block.mlp)
        f.flag(_p(getattr(block.attn, "attn_drop", None)) > 0, "attention dropout (attn_drop_rate)")
    if not f:
        _same_rates(f, [drop_path_of(b) for b in tm.blocks], drop_path_rates(drop_path_of(tm.blocks[-1]), len(tm.blocks)), "linear")
        _uniform(f, tm.blocks[0], list(tm.blocks))
    f.refuse("ConVit")


def audit_mixer(tm: nn.Module) -> None:
    """Refuse a timm MlpMixer that is not our Mixer (ResMLP and gMLP are MlpMixers with other blocks)."""
    from timm.layers import PatchEmbed
    from timm.models.mlp_mixer import MixerBlock

    f = Findings()
    f.flag(tm.global_pool != "avg", "global_pool other than average pooling")
    stem = tm.stem
    if type(stem) is not PatchEmbed:
        f.flag(True, f"stem {type(stem).__name__}")
    else:
        f.flag(stem.img_size is None or stem.img_size[0] != stem.img_size[1] or stem.patch_size[0] != stem.patch_size[1],
               "non-square images or patches")
        f.flag(not _identity(stem.norm), "a norm in the stem (stem_norm)")
        f.flag(stem.proj.bias is None, "a patch embedding without bias")
    f.flag(_p(getattr(tm, "head_drop", None)) > 0, "head dropout (drop_rate)")
    f.flag(not isinstance(tm.head, nn.Linear), "no classifier head (num_classes=0)")
    _norm(f, tm.norm, "final norm")
    for block in tm.blocks:
        if type(block) is not MixerBlock:
            f.flag(True, f"blocks {type(block).__name__} (we model MixerBlock: ResMLP and gMLP differ)")
            continue
        _norm(f, block.norm1, "block norm")
        _norm(f, block.norm2, "block norm")
        _mlp(f, block.mlp_tokens)
        _mlp(f, block.mlp_channels)
        f.flag(_p(block.mlp_tokens.drop1) > 0 or _p(block.mlp_channels.drop1) > 0, "dropout in the MLPs (proj_drop_rate)")
    if not f:
        f.flag(len({drop_path_of(b) for b in tm.blocks}) > 1, "drop-path rates that vary between blocks (we model one rate)")
        shapes = {(b.mlp_tokens.fc1.out_features, b.mlp_channels.fc1.out_features) for b in tm.blocks}
        f.flag(len(shapes) > 1, "blocks that differ in their MLP widths")
    f.refuse("MlpMixer")
