"""Self-attention, one head written out, then many heads with an explicit and a fused path.

Attention (Vaswani et al., 2017): softmax(Q K^T / sqrt(d)) V. Every token asks a question (q),
every token offers a key (k) and a value (v); a token's output is the values averaged with
weights given by how well its question matches each key.
"""
from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class RecordsAttention:
    """Mixin for attention modules whose weights `analysis.record_attention` can collect.

    `recorders` holds the recordings in progress as (thread id, list) pairs. While there is one,
    the module takes its explicit path and appends its weights (B, H, queries, keys) to the list
    of every recording made by the thread that runs the forward pass; while there is none it is
    free to use fused kernels. Each recording removes only its own pair when it ends, so
    recordings closed in any order, or made from several threads, leave no recording behind.
    """

    recorders: tuple[tuple[int, list], ...] = ()

    @property
    def needs_weights(self) -> bool:
        return bool(self.recorders)

    def keep(self, attn: torch.Tensor) -> None:
        me = threading.get_ident()
        for thread, sink in self.recorders:
            if thread == me:
                sink.append(attn.detach())


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, need_weights: bool = False, dropout_p: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(d)) v for (B, H, Nq, d) queries and (B, H, Nk, d) keys and values.

    With `need_weights` the weights are computed explicitly and returned (B, H, Nq, Nk);
    otherwise `F.scaled_dot_product_attention` does the same sum without materialising them.
    """
    if not need_weights:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p), None
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, Nq, Nk)
    attn = scores.softmax(dim=-1)
    out = F.dropout(attn, dropout_p) @ v if dropout_p else attn @ v  # (B, H, Nq, d)
    return out, attn


class SelfAttention(nn.Module):
    """One attention head, step by step: project, compare, normalise, mix."""

    def __init__(self, dim: int, head_dim: int | None = None, bias: bool = True):
        super().__init__()
        head_dim = head_dim or dim
        self.q = nn.Linear(dim, head_dim, bias=bias)
        self.k = nn.Linear(dim, head_dim, bias=bias)
        self.v = nn.Linear(dim, head_dim, bias=bias)
        self.scale = 1 / math.sqrt(head_dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        q, k, v = self.q(x), self.k(x), self.v(x)  # (B, N, d) each
        scores = q @ k.transpose(-2, -1) * self.scale  # (B, N, N): query i against key j
        attn = scores.softmax(dim=-1)  # each row sums to 1
        out = attn @ v  # (B, N, d): weighted average of the values
        return (out, attn) if return_attention else out


class MultiHeadSelfAttention(RecordsAttention, nn.Module):
    """H heads of dimension D/H side by side, one fused qkv projection, one output projection.

    Parameter layout is timm's: `qkv` rows [0:D] are q, [D:2D] k, [2D:3D] v, and head h owns
    rows [h*hd, (h+1)*hd) inside each. The fused path (SDPA) is used unless weights are needed.
    """

    def __init__(self, dim: int, heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        check_heads(dim, heads)
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop, self.proj_drop = attn_drop, nn.Dropout(proj_drop)
        self.fused = True

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, D) tokens -> q, k, v each (B, H, N, hd)."""
        return rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads).unbind(0)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        q, k, v = self.split_heads(x)  # (B, H, N, hd)
        explicit = return_attention or self.needs_weights or not self.fused
        out, attn = attend(q, k, v, need_weights=explicit, dropout_p=self.attn_drop if self.training else 0.0)
        if attn is not None:
            self.keep(attn)
        out = self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, N, D)
        return (out, attn) if return_attention else out


def check_heads(dim: int, heads: int) -> None:
    """Heads split the embedding evenly; say how to fix it when they cannot."""
    if heads <= 0 or dim % heads:
        ok = [h for h in range(1, min(dim, 16) + 1) if dim % h == 0]  # at most 16 tries, whatever dim is
        raise ValueError(f"dim {dim} is not divisible by heads {heads}: use heads in {ok} or change dim.")
