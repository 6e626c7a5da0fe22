"""The transformer block and its parts: MLP, stochastic depth (DropPath), LayerScale.

A pre-norm block (as in ViT) adds two residual branches to the token stream:
x = x + attn(norm1(x)), then x = x + mlp(norm2(x)). DeiT adds stochastic depth to the branches
(Huang et al., 2016), CaiT multiplies each branch by a learned per-channel scale (LayerScale).
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadSelfAttention

LN_EPS = 1e-6  # timm's LayerNorm epsilon, so that converted weights give the same logits


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class MLP(nn.Module):
    """Two linear layers with a GELU between them, applied to every token independently."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))  # (B, N, D) -> (B, N, D)


class DropPath(nn.Module):
    """Stochastic depth: in training, drop the whole residual branch for a random subset of samples.

    A kept sample is scaled by 1 / (1 - p) so that the expected output equals the eval output.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}.")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (Touvron et al., 2021, CaiT), started small."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def layer_scale_init(depth: int) -> float:
    """CaiT's rule for LayerScale's initial value: 0.1 up to depth 18, 1e-5 up to 24, 1e-6 deeper.

    This is the paper's rule (Touvron et al., 2021, sec. 3), kept because the notebooks teach it.
    The released models differ once: CaiT-XXS-36 (timm `cait_xxs36_*`) starts at 1e-5, not 1e-6
    (CaiT-S36, M36 and M48 use 1e-6). To match it, pass `init_values=1e-5`; a converted model
    (`timm_compat.from_timm`) carries its trained gammas, so the initial value does not matter there.
    """
    return 0.1 if depth <= 18 else 1e-5 if depth <= 24 else 1e-6


class Block(nn.Module):
    """Pre-norm transformer block. `attn` may be any token mixer with the same call signature
    (GPSA, talking heads); by default it is multi-head self-attention.

    `post_norm=True` gives the original Transformer's order instead (Vaswani et al., 2017): each
    branch's output is added first and the sum normalised, x = LN(x + attn(x)), so that every
    token passes 2 x depth LayerNorms on its way up (notebook 04 measures what that does to training).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        init_values: float | None = None,
        attn: nn.Module | None = None,
        drop: float = 0.0,
        post_norm: bool = False,
    ):
        super().__init__()
        self.post_norm = post_norm
        self.norm1 = layer_norm(dim)
        self.attn = attn if attn is not None else MultiHeadSelfAttention(dim, heads, qkv_bias, proj_drop=drop)
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.norm2 = layer_norm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), drop)
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.norm1(x + self.drop_path(self.ls1(self.attn(x))))  # (B, N, D)
            return self.norm2(x + self.drop_path(self.ls2(self.mlp(x))))
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))  # (B, N, D)
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic depth as in DeiT: the rate grows linearly from 0 at the first block to `rate`."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


def init_weights(module: nn.Module) -> None:
    """timm's ViT init: truncated-normal linear weights (std 0.02), zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
