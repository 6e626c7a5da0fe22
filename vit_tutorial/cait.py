"""CaiT (Touvron et al., 2021, "Going deeper with Image Transformers"): deeper ViTs that train.

Two ideas. LayerScale (in `blocks.py`) multiplies every residual branch by a small learned
per-channel factor, so that a deep stack starts close to the identity. Class attention splits
the network in two stages: self-attention among the patches only, then a few blocks where the
class token alone reads the patches (its query against every key), leaving the patches as they
are. The self-attention stage uses talking-heads attention (Shazeer et al., 2020), as CaiT does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from .attention import MultiHeadSelfAttention, RecordsAttention, attend, check_heads
from .blocks import MLP, Block, DropPath, LayerScale, init_weights, layer_norm, layer_scale_init
from .tokens import PatchEmbed, PositionEmbedding
from .checks import make_config
from .vit import GridConfig


def mix_heads(attn: torch.Tensor, mix: nn.Linear) -> torch.Tensor:
    """Each head's new map is a learned combination of all heads' maps, position by position:
    new[g] = sum_h W[g, h] attn[h] + b[g] with `mix`'s weight W (H, H) and bias b (H,).

    That is one (H x H) @ (H x Nq*Nk) product per image on the maps as they lie in memory; applying
    `mix` as a Linear layer to a heads-last view (timm's way) first copies the maps and was up to five
    times slower here (bench/throughput.py compares the talking-heads layer with timm's).
    """
    b, h, n, m = attn.shape
    maps = attn.reshape(b, h, n * m)  # (B, H, Nq*Nk): one row per head
    mixed = torch.baddbmm(mix.bias[None, :, None], mix.weight.expand(b, h, h), maps)  # b + W @ maps
    return mixed.view(b, h, n, m)  # (B, H, Nq, Nk)


class TalkingHeadsAttention(RecordsAttention, nn.Module):
    """Multi-head self-attention whose heads talk: an H x H mix of the logits before the softmax
    (`proj_l`) and of the probabilities after it (`proj_w`, no renormalisation).

    The mix needs the logits, so there is no fused path. Recorded (and returned) weights are the
    softmax maps before the second mix (B, H, N, N): rows of probabilities, which the analyses
    can measure. What multiplies the values is `mix_heads(maps, proj_w)`, a learned combination
    of them whose rows need not sum to 1 nor be positive, so no distance or rollout is defined on it.
    """

    def __init__(self, dim: int, heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        check_heads(dim, heads)
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj_l = nn.Linear(heads, heads)  # mixes the logits
        self.proj_w = nn.Linear(heads, heads)  # mixes the attention weights
        self.proj = nn.Linear(dim, dim)
        self.attn_drop, self.proj_drop = nn.Dropout(attn_drop), nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        q, k, v = qkv.unbind(0)  # (B, H, N, hd) each, timm's row layout
        logits = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # (B, H, N, N)
        probs = mix_heads(logits, self.proj_l).softmax(dim=-1)  # (B, H, N, N), rows sum to 1
        self.keep(probs)
        attn = mix_heads(probs, self.proj_w)  # (B, H, N, N): mixed again, no longer probabilities
        out = self.attn_drop(attn) @ v  # (B, H, N, hd)
        out = self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, N, D)
        return (out, probs) if return_attention else out


class ClassAttention(RecordsAttention, nn.Module):
    """Class attention: only the class token (token 0 of `u`) asks; every token of `u` answers.

    Input u = cat([class token, patches]) (B, 1 + N, D); output the class token's update (B, 1, D).
    One query row instead of 1 + N makes the cost linear in the number of patches.
    """

    def __init__(self, dim: int, heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        check_heads(dim, heads)
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop, self.proj_drop = attn_drop, nn.Dropout(proj_drop)
        self.fused = True

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, n, D) projections -> (B, H, n, hd), head h owning channels [h*hd, (h+1)*hd)."""
        return rearrange(t, "b n (h d) -> b h n d", h=self.heads)  # (B, H, n, hd)

    def forward(self, u: torch.Tensor, return_attention: bool = False):
        q = self.split_heads(self.q(u[:, :1]))  # (B, H, 1, hd): the class token's question
        k, v = self.split_heads(self.k(u)), self.split_heads(self.v(u))  # (B, H, 1 + N, hd)
        explicit = return_attention or self.needs_weights or not self.fused
        out, attn = attend(q, k, v, need_weights=explicit, dropout_p=self.attn_drop if self.training else 0.0)
        if attn is not None:
            self.keep(attn)  # (B, H, 1, 1 + N), rows sum to 1
        out = self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, 1, D)
        return (out, attn) if return_attention else out


class ClassAttentionBlock(nn.Module):
    """Pre-norm block that updates the class token c only; the patch tokens x pass through untouched.

    c = c + ls1(CA(norm1(cat[c, x]))), then c = c + ls2(mlp(norm2(c))).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        init_values: float | None = 1e-5,
        drop: float = 0.0,
    ):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = ClassAttention(dim, heads, qkv_bias, proj_drop=drop)
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.norm2 = layer_norm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), drop)
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, c: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.cat([c, x], dim=1)  # (B, 1 + N, D)
        c = c + self.drop_path(self.ls1(self.attn(self.norm1(u))))  # (B, 1, D)
        c = c + self.drop_path(self.ls2(self.mlp(self.norm2(c))))
        return c, x  # x is returned as it came in


@dataclass
class CaiTConfig(GridConfig):
    """Everything that fixes a CaiT's shape. Defaults are CaiT-XXS24 at 224 x 224 (timm `cait_xxs24_224`)."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    dim: int = 192
    depth: int = 24  # self-attention blocks, on the patches only
    heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.0  # the same rate in every self-attention block (as CaiT, unlike DeiT)
    drop: float = 0.0  # dropout of the self-attention stage (none in class attention, as in CaiT's code)
    init_values: float | None = None  # LayerScale's start; None: the paper's rule for this depth
    depth_token_only: int = 2  # class-attention blocks
    talking_heads: bool = True  # False: plain multi-head self-attention, for comparison
    pos_embed: str = "learned"  # or "sincos" (a fixed 2D table, as the canvas ViT's)

    def __post_init__(self) -> None:
        self.check()

    @property
    def layer_scale(self) -> float:
        """LayerScale's initial value: `init_values`, or CaiT's rule for this depth."""
        return self.init_values if self.init_values is not None else layer_scale_init(self.depth)



class CaiT(nn.Module):
    """CaiT: `CaiT(CaiTConfig(...))` or `CaiT(image_size=28, patch_size=7, ...)`.

    patches + positions -> `depth` LayerScale blocks of (talking-heads) self-attention ->
    the class token reads the patches in `depth_token_only` class-attention blocks ->
    norm(cat[c, x]) -> token 0 -> head.
    """

    def __init__(self, config: CaiTConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = make_config(CaiTConfig, config, kwargs)
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.dim)
        self.pos_embed = PositionEmbedding(c.num_patches, c.dim, c.pos_embed)  # no class-token slot
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.blocks = nn.Sequential(
            *[
                Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, c.drop_path, c.layer_scale, self._mixer(), c.drop)
                for _ in range(c.depth)
            ]
        )
        self.blocks_token_only = nn.ModuleList(  # no stochastic depth and no dropout here, as in CaiT's code
            [
                ClassAttentionBlock(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, 0.0, c.layer_scale, 0.0)
                for _ in range(c.depth_token_only)
            ]
        )
        self.norm = layer_norm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def _mixer(self) -> nn.Module:
        c = self.config
        kind = TalkingHeadsAttention if c.talking_heads else MultiHeadSelfAttention
        return kind(c.dim, c.heads, c.qkv_bias, proj_drop=c.drop)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> normalised tokens (B, 1 + N, D), class token first."""
        x = self.blocks(self.pos_embed(self.patch_embed(x)))  # (B, N, D): patches only
        c = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        for block in self.blocks_token_only:
            c, x = block(c, x)
        return self.norm(torch.cat([c, x], dim=1))  # (B, 1 + N, D)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0])  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
