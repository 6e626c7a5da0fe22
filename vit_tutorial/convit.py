"""ConViT (d'Ascoli et al., 2021): gated positional self-attention, a soft convolutional prior.

A GPSA head mixes two attentions: the usual content attention softmax(q k^T / sqrt(d)) and a
positional one, softmax(pos_proj(r)), computed from the relative position r = (dx, dy, dx^2 + dy^2)
of each key to its query. A learned gate lambda per head sets the mix. Started "locally" (each
head looking at one neighbour of a k x k kernel, 3x3 for 9 heads, sharpened by the locality
strength alpha), a GPSA layer behaves like a convolution, and training may make it forget its
position, head by head. The paper's nonlocality of a head is
`analysis.mean_attention_distance(maps, grid, patch_size=1)` on its recorded maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from .attention import RecordsAttention, attend, check_heads
from .blocks import Block, drop_path_rates, init_weights, layer_norm
from .tokens import PatchEmbed, PositionEmbedding, prepend_tokens
from .checks import make_config
from .vit import GridConfig


def square_grid(num_patches: int) -> int:
    """The side s of an s x s grid of `num_patches` tokens, or a ValueError if there is none."""
    side = math.isqrt(max(num_patches, 0))
    if num_patches <= 0 or side * side != num_patches:
        raise ValueError(
            f"GPSA needs a square grid of patch tokens, got {num_patches} tokens: use square images "
            "and keep class tokens out of the GPSA layers (ConViT adds its class token after them)."
        )
    return side


def relative_positions(grid_size: int) -> torch.Tensor:
    """r[n, m] = (dx, dy, dx^2 + dy^2) from query n to key m, with token = row * grid + col; (N, N, 3).

    dx = col(m) - col(n), dy = row(m) - row(n): the channel order of timm and the official code.
    """
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()  # (N,)
    dx = cols[None, :] - cols[:, None]  # (N, N): key minus query
    dy = rows[None, :] - rows[:, None]
    return torch.stack([dx, dy, dx**2 + dy**2], dim=-1).float()  # (N, N, 3)


def kernel_offsets(heads: int) -> torch.Tensor:
    """The (dx, dy) offset each head looks at after local init: a k x k kernel, k = isqrt(heads).

    Head h1 + k * h2 gets dx = h2 - c, dy = h1 - c with c = (k - 1) / 2 (half-integers when k is
    even). Heads beyond k * k get no offset; shape (k * k, 2).
    """
    k = math.isqrt(heads)
    steps = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    dx, dy = torch.meshgrid(steps, steps, indexing="ij")  # row p = h2 * k + h1
    return torch.stack([dx.flatten(), dy.flatten()], dim=-1)  # (k*k, 2)


class GPSA(RecordsAttention, nn.Module):
    """Gated positional self-attention over an s x s grid of patch tokens (no class token).

    A = (1 - sigmoid(lambda)) softmax(q k^T / sqrt(d)) + sigmoid(lambda) softmax(pos_proj(r)).
    Parameters follow timm: `qk` (q rows first), `v`, `proj`, `pos_proj` (3 -> H), `gating_param`.
    """

    def __init__(
        self, dim: int, heads: int, num_patches: int, qkv_bias: bool = False,
        locality_strength: float = 1.0, proj_drop: float = 0.0,
    ):
        super().__init__()
        check_heads(dim, heads)
        self.grid_size = square_grid(num_patches)
        self.heads, self.head_dim, self.locality_strength = heads, dim // heads, locality_strength
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pos_proj = nn.Linear(3, heads)
        self.gating_param = nn.Parameter(torch.ones(heads))  # lambda
        self.register_buffer("rel", relative_positions(self.grid_size), persistent=False)  # (N, N, 3)
        self.fused = True
        self.apply(init_weights)
        self.local_init()

    @torch.no_grad()
    def local_init(self) -> None:
        """Start as a convolution: v = identity, head h scores keys by -alpha |delta - offset_h|^2
        (pos_proj row (2 dx_h, 2 dy_h, -1) * alpha), gates lambda = 1. Heads past k * k keep their
        small random pos_proj row (scaled by alpha too), as in the paper's and timm's code."""
        self.v.weight.copy_(torch.eye(self.v.in_features))
        offsets = kernel_offsets(self.heads)  # (k*k, 2)
        w = self.pos_proj.weight  # (H, 3)
        w[: len(offsets), :2] = 2 * offsets
        w[: len(offsets), 2] = -1.0
        w.mul_(self.locality_strength)
        self.gating_param.fill_(1.0)

    def gates(self) -> torch.Tensor:
        """sigmoid(lambda) per head (H,): the weight of the positional attention (1: all position)."""
        return torch.sigmoid(self.gating_param)

    def positional_attention(self) -> torch.Tensor:
        """softmax over keys of pos_proj(r): (H, N, N). It depends on no image, so one serves the batch."""
        return rearrange(self.pos_proj(self.rel), "n m h -> h n m").softmax(dim=-1)

    def central_query(self) -> int:
        return (self.grid_size // 2) * (self.grid_size + 1)  # row s//2, col s//2

    def kernel_maps(self, query: int | None = None) -> torch.Tensor:
        """Each head's positional attention from one query (default: the central one) as (H, s, s)."""
        query = self.central_query() if query is None else query
        return rearrange(self.positional_attention()[:, query], "h (r c) -> h r c", r=self.grid_size)

    def kernel_centres_and_spread(self, query: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Where each head's positional kernel looks from the central query and how wide it is:
        centres (H, 2) = the mean (dx, dy) under the kernel, spread (H,) = its standard deviation."""
        query = self.central_query() if query is None else query
        p = self.positional_attention()[:, query]  # (H, N)
        delta = self.rel[query, :, :2]  # (N, 2): (dx, dy) of every key
        centres = p @ delta  # (H, 2)
        spread = (p * ((delta[None] - centres[:, None]) ** 2).sum(-1)).sum(-1).sqrt()  # (H,)
        return centres, spread

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        b, n, _ = x.shape
        if n != self.rel.shape[0]:
            raise ValueError(
                f"GPSA was built for a {self.grid_size}x{self.grid_size} grid ({self.rel.shape[0]} tokens), "
                f"got {n} tokens: feed only the patch tokens of images of the configured size."
            )
        q, k = rearrange(self.qk(x), "b n (two h d) -> two b h n d", two=2, h=self.heads).unbind(0)
        v = rearrange(self.v(x), "b n (h d) -> b h n d", h=self.heads)  # (B, H, N, hd)
        g = self.gates()[:, None, None]  # (H, 1, 1)
        pos = self.positional_attention()  # (H, N, N), once for the whole batch
        attn = None
        if return_attention or self.needs_weights or not self.fused:
            content = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(dim=-1)  # (B, H, N, N)
            attn = (1 - g) * content + g * pos
            attn = attn / attn.sum(dim=-1, keepdim=True)  # as timm; rows already sum to 1
            self.keep(attn)
            out = attn @ v  # (B, H, N, hd)
        else:
            # The mix is linear in the attention, so (1-g) A_c v + g A_p v needs no (B, H, N, N)
            # tensor: the content part runs fused, the positional part is one (H, N, N) map.
            content_out, _ = attend(q, k, v)  # (B, H, N, hd)
            pos_out = torch.einsum("hnm,bhmd->bhnd", pos, v)  # one matmul per head for the whole batch
            out = (1 - g) * content_out + g * pos_out  # (B, H, N, hd)
        out = self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, N, D)
        return (out, attn) if return_attention else out


@dataclass
class ConViTConfig(GridConfig):
    """Everything that fixes a ConViT's shape. Defaults are ConViT-Tiny (timm `convit_tiny`, 5.7M
    parameters): dim is the total embedding (timm's convit counts it per head: 48 x 4 heads)."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    dim: int = 192
    depth: int = 12
    heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    drop_path: float = 0.0
    drop: float = 0.0
    local_up_to_layer: int = 10  # blocks [0, L) are GPSA, the class token joins before block L
    locality_strength: float = 1.0  # alpha: how sharply each GPSA head starts on its offset

    def __post_init__(self) -> None:
        self.check()
        if not 0 <= self.local_up_to_layer < self.depth:
            raise ValueError(
                f"local_up_to_layer {self.local_up_to_layer} must be in [0, depth - 1 = {self.depth - 1}]: "
                "the class token joins after the GPSA blocks, so at least one ordinary block must read it."
            )



class ConViT(nn.Module):
    """ConViT: patches + positions -> GPSA blocks -> class token -> self-attention blocks -> head.

    `ConViT(ConViTConfig(...))` or `ConViT(image_size=28, patch_size=4, ...)`.
    """

    def __init__(self, config: ConViTConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = make_config(ConViTConfig, config, kwargs)
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.dim)
        self.pos_embed = PositionEmbedding(c.num_patches, c.dim, "learned")  # no class-token slot
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.blocks = nn.ModuleList(
            Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, dp, drop=c.drop, attn=self._gpsa() if i < c.local_up_to_layer else None)
            for i, dp in enumerate(drop_path_rates(c.drop_path, c.depth))
        )
        self.norm = layer_norm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(init_weights)
        for layer in self.gpsa_layers():
            layer.local_init()  # after init_weights, which would overwrite it
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def _gpsa(self) -> GPSA:
        c = self.config
        return GPSA(c.dim, c.heads, c.num_patches, c.qkv_bias, c.locality_strength, proj_drop=c.drop)

    def gpsa_layers(self) -> list[GPSA]:
        """The GPSA modules of blocks 0 .. local_up_to_layer - 1."""
        return [block.attn for block in self.blocks[: self.config.local_up_to_layer]]

    def gates(self) -> torch.Tensor:
        """sigmoid(lambda) of every GPSA head: (local layers, H); 1 means purely positional."""
        return torch.stack([layer.gates() for layer in self.gpsa_layers()])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> normalised tokens (B, 1 + N, D), class token first."""
        x = self.pos_embed(self.patch_embed(x))  # (B, N, D)
        local = self.config.local_up_to_layer
        for block in self.blocks[:local]:
            x = block(x)  # GPSA: patch tokens only
        x = prepend_tokens(x, self.cls_token)  # (B, 1 + N, D)
        for block in self.blocks[local:]:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0])  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
