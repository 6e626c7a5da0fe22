"""From images to tokens: patches, the patch embedding, positional encodings, the class token.

A Vision Transformer never sees pixels directly. It cuts the image into non-overlapping
p x p patches, flattens each one, and projects it linearly to a D-dimensional token
(Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words", eq. 1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def check_patch_grid(image_size: int, patch_size: int) -> int:
    """Return the grid side `image_size // patch_size`, or explain why the patches do not fit."""
    if image_size <= 0 or patch_size <= 0:
        raise ValueError(f"image_size ({image_size}) and patch_size ({patch_size}) must be positive.")
    if image_size % patch_size:
        raise ValueError(
            f"image_size {image_size} is not divisible by patch_size {patch_size}: "
            f"pick a patch size that divides it (e.g. {_divisors(image_size)}) or resize the images."
        )
    return image_size // patch_size


def _divisors(n: int) -> list[int]:
    """Up to six patch sizes that divide n (looking no further than 256: bounded work for any n)."""
    return [d for d in range(2, min(n, 257)) if n % d == 0][:6]


def check_images(x: object, weight: torch.Tensor) -> None:
    """Refuse what a model cannot take as images, saying what to pass: a float tensor with the dtype
    and on the device of the model's weights (normalised float32 images, as the data sets give them)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"expected images as a torch.Tensor (B, C, H, W), got a {type(x).__name__}: convert them with "
            "torch.as_tensor(...) and normalise them as the data sets do (data.load(...)[i][0] is such an image)."
        )
    want = str(weight.dtype).removeprefix("torch.")
    if not x.is_floating_point():
        raise ValueError(
            f"got {str(x.dtype).removeprefix('torch.')} images (raw pixels?): the model takes normalised {want} images, "
            "as the data sets give them (dataset[i][0], or dataset.normalize(uint8_images))."
        )
    if x.dtype != weight.dtype:
        raise ValueError(
            f"got {str(x.dtype).removeprefix('torch.')} images, but the model computes in {want}: "
            f"convert them with x.to(torch.{want}) (normalised as the data sets do)."
        )
    if x.device != weight.device:
        raise ValueError(f"the images are on {x.device} but the model is on {weight.device}: move them with x.to('{weight.device}').")


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut (B, C, H, W) images into a sequence of flattened patches (B, N, p*p*C), row by row."""
    if images.ndim != 4:
        raise ValueError(f"patchify expects images of shape (B, C, H, W), got {tuple(images.shape)}.")
    _, _, h, w = images.shape
    check_patch_grid(h, patch_size)
    check_patch_grid(w, patch_size)
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """The exact inverse of `patchify` for square images: (B, N, p*p*C) -> (B, C, H, W)."""
    b, n, d = patches.shape
    side = math.isqrt(n)
    if side * side != n or d != patch_size * patch_size * channels:
        raise ValueError(
            f"cannot unpatchify {tuple(patches.shape)} with patch_size={patch_size}, channels={channels}: "
            "expected a square number of patches of size patch_size**2 * channels."
        )
    return rearrange(patches, "b (gh gw) (p1 p2 c) -> b c (gh p1) (gw p2)", gh=side, p1=patch_size, p2=patch_size)


class PatchEmbed(nn.Module):
    """Linear projection of flattened patches, written as a conv with kernel = stride = patch size.

    The conv and `nn.Linear(p*p*C, D)` on `patchify(x)` compute the same numbers when the conv
    kernel is the linear weight reshaped; the conv is just the faster way to say it.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, dim: int = 768):
        super().__init__()
        self.grid_size = check_patch_grid(image_size, patch_size)
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.proj.weight)
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}: "
                "resize the images or build the model with matching image_size / in_channels."
            )
        x = self.proj(x)  # (B, D, gh, gw)
        return rearrange(x, "b d gh gw -> b (gh gw) d")  # (B, N, D), row-major

    def as_linear(self) -> nn.Linear:
        """The same projection as an `nn.Linear` acting on `patchify(x, p)` (shares no memory)."""
        d = self.proj.out_channels
        linear = nn.Linear(self.patch_size**2 * self.in_channels, d)
        with torch.no_grad():
            # conv weight (D, C, p, p) -> (D, p*p*C) in patchify's (p1 p2 c) order
            linear.weight.copy_(rearrange(self.proj.weight, "d c p1 p2 -> d (p1 p2 c)"))
            linear.bias.copy_(self.proj.bias)
        return linear


def sincos_1d(positions: int | torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Transformer sin-cos encoding (Vaswani et al., 2017): (T, dim), first half sin, second cos."""
    if dim % 2:
        raise ValueError(f"dim must be even for a sin-cos encoding, got {dim}.")
    pos = torch.arange(positions, dtype=torch.float64) if isinstance(positions, int) else positions.double()
    freqs = base ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))  # (dim/2,)
    angles = pos[:, None] * freqs[None, :]  # (T, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(grid_size: int, dim: int, base: float = 10000.0, spacing: float = 1.0) -> torch.Tensor:
    """2D sin-cos encoding: half the channels encode the row, half the column; (grid*grid, dim).
    Patch (r, c) sits at position (r * spacing, c * spacing)."""
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for a 2D sin-cos encoding, got {dim}.")
    steps = torch.arange(grid_size, dtype=torch.float64) * spacing
    rows, cols = torch.meshgrid(steps, steps, indexing="ij")
    return torch.cat(
        [sincos_1d(rows.flatten(), dim // 2, base), sincos_1d(cols.flatten(), dim // 2, base)], dim=1
    )  # (N, dim), token n = row * grid + col


class PositionEmbedding(nn.Module):
    """Adds a position vector to each token: learned (ViT's choice) or a fixed 2D sin-cos table.

    `prefix` leaves room for class / distillation tokens at the front of the table, as ViT
    and DeiT do (their position 0 is the class token's).
    """

    def __init__(self, num_patches: int, dim: int, kind: str = "learned", prefix: int = 0):
        super().__init__()
        if kind not in ("learned", "sincos"):
            raise ValueError(f"unknown position embedding {kind!r}: use 'learned' or 'sincos'.")
        self.kind, self.prefix = kind, prefix
        if kind == "learned":
            self.weight = nn.Parameter(torch.zeros(1, prefix + num_patches, dim))
            nn.init.trunc_normal_(self.weight, std=0.02)
        else:
            side = math.isqrt(num_patches)
            if side * side != num_patches:
                raise ValueError(f"a 2D sin-cos table needs a square grid, got {num_patches} patches.")
            table = torch.cat([torch.zeros(prefix, dim), sincos_2d(side, dim)])[None]
            self.register_buffer("weight", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight  # (B, prefix + N, D)


def resized(pos: PositionEmbedding, grid: int, mode: str = "interpolate") -> PositionEmbedding:
    """The position table of `pos` for a grid x grid patch grid: how a ViT trained on small images is
    applied to larger ones with the same patch size (Dosovitskiy et al., 2021, section 3.2).

    "interpolate" stretches the old table over the new grid (2D bicubic for a learned table; a sin-cos
    table evaluated at positions spaced (old grid - 1) / (grid - 1)), so that every patch gets a position
    like those the model was trained on. "extend" (sin-cos only) continues the formula past the old grid,
    to positions the model never saw; a learned table has no rows there.
    """
    if mode not in ("interpolate", "extend"):
        raise ValueError(f"unknown mode {mode!r}: use 'interpolate' or 'extend'.")
    old = math.isqrt(pos.weight.shape[1] - pos.prefix)
    dim = pos.weight.shape[-1]
    new = PositionEmbedding(grid * grid, dim, pos.kind, pos.prefix)
    with torch.no_grad():
        if pos.kind == "sincos":
            spacing = (old - 1) / (grid - 1) if mode == "interpolate" and grid > 1 else 1.0
            new.weight.copy_(torch.cat([torch.zeros(pos.prefix, dim), sincos_2d(grid, dim, spacing=spacing)])[None])
        elif mode == "extend":
            raise ValueError("a learned table has no rows for positions past its grid: use mode='interpolate'.")
        else:
            table = rearrange(pos.weight[0, pos.prefix:], "(h w) d -> 1 d h w", h=old)  # (1, D, g, g)
            table = F.interpolate(table, size=(grid, grid), mode="bicubic", align_corners=False)  # (1, D, G, G)
            new.weight.copy_(torch.cat([pos.weight[0, : pos.prefix], rearrange(table, "1 d h w -> (h w) d")])[None])
    return new


def prepend_tokens(x: torch.Tensor, *tokens: torch.Tensor) -> torch.Tensor:
    """Put learned tokens (each (1, 1, D), e.g. class then distillation) in front of every sequence."""
    b = x.shape[0]
    return torch.cat([t.expand(b, -1, -1) for t in tokens] + [x], dim=1)  # (B, k + N, D)
