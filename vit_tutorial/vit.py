"""The Vision Transformer (Dosovitskiy et al., 2021): patches -> tokens -> blocks -> class token -> head."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from .attention import check_heads
from .checks import MAX_PATCHES, check_fields, check_size, make_config
from .blocks import Block, drop_path_rates, init_weights, layer_norm
from .tokens import PatchEmbed, PositionEmbedding, check_patch_grid, prepend_tokens, resized


class GridConfig:
    """What the configs of ViT, ConViT and CaiT share: the checks of their fields (types and ranges,
    `checks.py`), of the patch grid, the heads and the model's size; the grid's size; and a plain
    dict for checkpoints (`Model(**config.to_dict())`)."""

    def check(self) -> None:
        check_fields(self)
        check_patch_grid(self.image_size, self.patch_size)
        if self.num_patches > MAX_PATCHES:
            raise ValueError(
                f"image_size {self.image_size} with patch_size {self.patch_size} gives {self.num_patches} patches, "
                f"more than {MAX_PATCHES}: use larger patches or smaller images."
            )
        check_heads(self.dim, self.heads)
        if int(self.dim * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio {self.mlp_ratio} gives the MLP no hidden units at dim {self.dim}: use mlp_ratio >= {1 / self.dim:.3g}.")
        check_size(self, self.parameter_estimate())

    def parameter_estimate(self) -> int:
        """About how many parameters the model has (the blocks' weight matrices, tables and head)."""
        d, hidden = self.dim, int(self.dim * self.mlp_ratio)
        blocks = self.depth + getattr(self, "depth_token_only", 0)
        embed = self.in_channels * self.patch_size**2 * d + (self.num_patches + 2) * d
        return blocks * (4 * d * d + 2 * d * hidden) + embed + d * self.num_classes

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ViTConfig(GridConfig):
    """Everything that fixes a ViT's shape. Defaults are ViT-Tiny/16 at 224 x 224 (5.7M parameters)."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.0
    drop: float = 0.0
    pool: str = "cls"  # "cls": read the class token; "mean": average the patch tokens
    pos_embed: str = "learned"  # or "sincos" (fixed 2D table)
    init_values: float | None = None  # LayerScale on every branch, started at this value (CaiT); None: none
    post_norm: bool = False  # LayerNorm after each residual addition (the original Transformer) instead of before

    def __post_init__(self) -> None:
        self.check()


class ViT(nn.Module):
    """ViT: `ViT(ViTConfig(...))` or `ViT(image_size=28, patch_size=7, ...)`."""

    def __init__(self, config: ViTConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = make_config(ViTConfig, config, kwargs)
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.pool == "cls" else None
        self.pos_embed = PositionEmbedding(c.num_patches, c.dim, c.pos_embed, prefix=self.num_prefix_tokens)
        self.blocks = nn.Sequential(
            *[Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, dp, c.init_values, drop=c.drop, post_norm=c.post_norm)
              for dp in drop_path_rates(c.drop_path, c.depth)]
        )
        self.norm = layer_norm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(init_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    def prefix_tokens(self) -> list[nn.Parameter]:
        """Learned tokens put in front of the patches: the class token (DeiT adds one more)."""
        return [self.cls_token] if self.cls_token is not None else []

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.config.pool == "cls" else 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> normalised tokens (B, prefix + N, D)."""
        x = self.patch_embed(x)  # (B, N, D)
        x = self.pos_embed(prepend_tokens(x, *self.prefix_tokens()))  # (B, 1 + N, D)
        return self.norm(self.blocks(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x[:, 0] if self.config.pool == "cls" else x.mean(dim=1)  # (B, D)
        return self.head(pooled)  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def at_image_size(model: ViT, image_size: int, positions: str = "interpolate") -> ViT:
    """A copy of `model` (a ViT or DeiT) for images of another size with the same patches: every weight
    kept, the position table resized for the new grid (`tokens.resized`: "interpolate" or "extend")."""
    config = replace(model.config, image_size=image_size)
    new = type(model)(config)
    new.pos_embed = resized(model.pos_embed, config.grid_size, positions)
    weights = model.state_dict()
    if "pos_embed.weight" in weights:  # a learned table (a sin-cos one is not stored)
        weights["pos_embed.weight"] = new.pos_embed.weight
    new.load_state_dict(weights)
    return new.train(model.training)
