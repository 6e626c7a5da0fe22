"""Looking inside trained models: recording attention weights, and the measures drawn from them.

- `record_attention(model)` collects the weights of every attention layer of any of the four
  families, because every attention variant derives from `attention.RecordsAttention`.
- `rollout` follows attention through the residual stream from layer to layer: attention
  rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers", ACL).
- `cls_attention` puts the class token's attention onto the patch grid (the maps of
  Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words", Fig. 6; CaiT's class attention too).
- `mean_attention_distance` is how far, in pixels, each head looks: the ViT paper's Fig. 7
  (right) and appendix D.7.
- `position_similarity` compares learned position embeddings: the ViT paper's Fig. 7 (centre).

Token order everywhere: `prefix` tokens first (class, then distillation), then the N = grid**2
patches row by row, as `tokens.PatchEmbed` produces them.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import RecordsAttention

Maps = torch.Tensor | Sequence[torch.Tensor]
_RECORDERS = threading.Lock()  # guards the recorders of every attention layer


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """The model's attention modules, in the order `modules()` visits them."""
    return [m for m in model.modules() if isinstance(m, RecordsAttention)]


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect attention weights during forward passes: one (B, H, queries, keys) tensor per
    attention layer, in forward order. Layers take their explicit path only while recording.
    A recording collects the forward passes of the thread that opened it; recordings may nest,
    overlap and close in any order.

        with record_attention(model) as maps:
            model(images)
        maps[0].shape  # (B, heads, 1 + N, 1 + N)
    """
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no attention layers to record.")
    sink: list[torch.Tensor] = []
    mine = (threading.get_ident(), sink)
    with _RECORDERS:  # the tuple is replaced, never changed in place: a forward pass reads a consistent one
        for layer in layers:
            layer.recorders = (*layer.recorders, mine)
    try:
        yield sink
    finally:
        with _RECORDERS:
            for layer in layers:
                layer.recorders = tuple(r for r in layer.recorders if r[1] is not sink)


def _check_attn(attn: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
    """The maps as float32, after checking that they are (B, H, Nq, Nk) rows of probabilities."""
    if not isinstance(attn, torch.Tensor) or attn.ndim != 4:
        shape = tuple(attn.shape) if isinstance(attn, torch.Tensor) else type(attn).__name__
        raise ValueError(f"expected attention weights of shape (B, heads, queries, keys), got {shape}.")
    a = attn.detach().float()
    sums = a.sum(dim=-1)  # (B, H, Nq)
    if a.numel() and not (torch.isfinite(a).all() and a.min() >= -tol and ((sums - 1).abs() <= tol).all()):
        found = "NaN or inf" if not torch.isfinite(a).all() else (
            f"entries down to {a.min().item():.3g}, rows summing to {sums.min().item():.3g} .. {sums.max().item():.3g}")
        raise ValueError(
            f"these maps are not rows of attention probabilities ({found}), so they cannot be measured. "
            "Pass the softmax maps, non-negative rows summing to 1 over the keys: the maps record_attention "
            "gives (for CaiT's talking heads, the maps after the softmax and before the second head mix; "
            "CaiT's class-attention maps), or scores.softmax(-1)."
        )
    return a


def _layers(maps: Maps) -> list[torch.Tensor] | None:
    """A list of per-layer maps, a stacked (layers, B, H, Nq, Nk) tensor, or None for one layer."""
    if isinstance(maps, torch.Tensor):
        return list(maps.unbind(0)) if maps.ndim == 5 else None
    if len(maps) == 0:
        raise ValueError("no attention maps given: record some with `record_attention(model)` first.")
    return list(maps)


def token_grid(values: torch.Tensor, prefix: int = 0) -> torch.Tensor:
    """Drop the `prefix` tokens of the last axis and lay the patches out on their square grid:
    (..., prefix + N) -> (..., grid, grid), so a row of attention can be drawn as a picture."""
    n = values.shape[-1] - prefix
    side = math.isqrt(max(n, 0))
    if prefix < 0 or n <= 0 or side * side != n:
        raise ValueError(
            f"{values.shape[-1]} tokens minus prefix={prefix} leaves {n} patches, not a square grid: "
            "use prefix=1 for a class token (ViT, CaiT), 2 for class + distillation (DeiT), "
            "0 for layers without one (ConViT's GPSA, CaiT's self-attention)."
        )
    return rearrange(values[..., prefix:], "... (gh gw) -> ... gh gw", gh=side)  # (..., g, g)


def rollout(maps: Sequence[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout: how much each output token draws on each input token across all layers.

    Per layer, fuse the heads (mean, as in the paper; max/min are common variants), add the
    identity for the residual connection, renormalise each row to sum to 1, and multiply the
    layers together, later layers on the left. (layers x (B, H, N, N)) -> (B, N, N).
    """
    fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"unknown head_fusion {head_fusion!r}: use one of {sorted(fuse)}.")
    layers = [_check_attn(a) for a in _layers(maps) or [maps]]
    shapes = {tuple(a.shape) for a in layers}
    b, _, nq, nk = next(iter(shapes))
    if len(shapes) > 1 or nq != nk:
        raise ValueError(
            f"rollout needs square maps of one shape in every layer, got {sorted(shapes)}: "
            "pass only the self-attention layers that see the same tokens."
        )
    eye = torch.eye(nk, device=layers[0].device)
    result = eye.expand(b, nk, nk)
    for attn in layers:
        a = fuse[head_fusion](attn) + eye  # (B, N, N): attention plus residual
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        result = a @ result  # (B, N, N)
    return result


def cls_attention(maps: Maps, prefix: int = 1, query: int = 0) -> torch.Tensor:
    """Where a prefix token looks: its attention over the patches, on the patch grid.

    `query` picks the token (0: class token, 1: DeiT's distillation token). Works for full
    self-attention (B, H, prefix + N, prefix + N) and for CaiT's class attention (B, H, 1, 1 + N).
    One layer -> (B, H, grid, grid); a list of layers -> (layers, B, H, grid, grid).
    """
    layers = _layers(maps)
    if layers is not None:
        grids = [cls_attention(a, prefix, query) for a in layers]
        if len({g.shape for g in grids}) > 1:
            raise ValueError(f"layers give different grids {sorted({tuple(g.shape) for g in grids})}.")
        return torch.stack(grids)  # (layers, B, H, g, g)
    attn = _check_attn(maps)
    if not 0 <= query < min(prefix, attn.shape[2]):
        raise ValueError(
            f"query={query} is not a prefix token of these maps (prefix={prefix}, {attn.shape[2]} queries): "
            "the class token is query 0; models without a class token have no class attention."
        )
    return token_grid(attn[:, :, query], prefix)  # (B, H, g, g)


def patch_distances(grid: int, patch_size: int = 1) -> torch.Tensor:
    """Euclidean distance in pixels between the centres of every pair of patches: (N, N)."""
    if grid <= 0 or patch_size <= 0:
        raise ValueError(f"grid ({grid}) and patch_size ({patch_size}) must be positive.")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=-1).float() * patch_size  # (N, 2)
    return (centres[:, None] - centres[None]).norm(dim=-1)  # (N, N)


def mean_attention_distance(
    attn: Maps, grid: int, patch_size: int, prefix: int | None = 0, renormalize: bool = True,
    queries: torch.Tensor | None = None,
) -> torch.Tensor:
    """How far each head looks: the attention-weighted pixel distance between query patch and
    key patch, averaged over query patches and images. Small = local (like a conv), large = global.

    Prefix tokens are dropped as queries and as keys. With `renormalize` (default) each query's
    weights over the patches are rescaled to sum to 1, so the result is a true average distance
    even when a head sends much of its attention to the class token; `renormalize=False` uses
    the raw weights (what many re-implementations of the ViT figure do; smaller when heads attend
    to prefix tokens). `prefix=None` infers it per layer as keys - grid**2 (for ConViT's mix of
    GPSA layers without, and later layers with, a class token). `queries`, a (B, grid, grid) bool
    mask, averages over the marked query patches only (e.g. those on the digit: `canvas.patch_mask`).
    One layer (B, H, N', N') -> (H,); a list of layers -> (layers, H).
    """
    layers = _layers(attn)
    if layers is not None:
        return torch.stack([mean_attention_distance(a, grid, patch_size, prefix, renormalize, queries) for a in layers])
    a = _check_attn(attn)
    n = grid * grid
    p = a.shape[-1] - n if prefix is None else prefix
    if p < 0 or a.shape[-1] != p + n or a.shape[-2] != a.shape[-1]:
        raise ValueError(
            f"maps of shape {tuple(a.shape)} do not fit grid={grid} with prefix={prefix}: expected "
            f"(B, H, {max(p, 0) + n}, {max(p, 0) + n}); check grid (image_size // patch_size) and prefix."
        )
    a = a[:, :, p:, p:]  # (B, H, N, N): patch queries, patch keys
    if renormalize:
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
    d = patch_distances(grid, patch_size).to(a.device)  # (N, N)
    per_query = (a * d).sum(dim=-1)  # (B, H, N)
    if queries is None:
        return per_query.mean(dim=(0, 2))  # (H,)
    if queries.shape != (a.shape[0], grid, grid) or not queries.any():
        raise ValueError(f"queries must be a (B, grid, grid) = {(a.shape[0], grid, grid)} bool mask marking at least one "
                         f"patch, got shape {tuple(queries.shape)}.")
    w = queries.reshape(a.shape[0], 1, n).to(per_query)  # (B, 1, N)
    return (per_query * w).sum(dim=(0, 2)) / w.sum()  # (H,)


def position_similarity(pos_embed: torch.Tensor | nn.Module, prefix: int = 0) -> torch.Tensor:
    """Cosine similarity of every patch's position embedding with every other's: (N, N).

    Row i, laid out on the grid, shows which positions patch i's embedding resembles: a
    trained ViT learns that nearby patches (and its own row and column) look alike.
    Takes an (N, D) or (1, prefix + N, D) table, or a `tokens.PositionEmbedding` (its own
    `prefix` is used); the first `prefix` rows (class / distillation tokens) are dropped.
    """
    if isinstance(pos_embed, nn.Module):
        prefix, pos_embed = getattr(pos_embed, "prefix", prefix), pos_embed.weight
    table = pos_embed.detach().float()
    if table.ndim == 3 and table.shape[0] == 1:
        table = table[0]  # (prefix + N, D)
    if table.ndim != 2 or not 0 <= prefix < table.shape[0]:
        raise ValueError(
            f"expected a position table (N, D) or (1, prefix + N, D) with prefix < N, "
            f"got shape {tuple(pos_embed.shape)} and prefix={prefix}."
        )
    n = table.shape[0] - prefix
    if math.isqrt(n) ** 2 != n:
        raise ValueError(
            f"a position table of {table.shape[0]} rows minus prefix={prefix} leaves {n} rows, not a square grid of "
            "patches: pass prefix=1 for a table with a class-token row (ViT), 2 with a distillation token (DeiT), "
            "or the model's pos_embed module, which knows its prefix."
        )
    unit = F.normalize(table[prefix:], dim=-1)  # (N, D), unit length rows
    return unit @ unit.T  # (N, N)


# --- measures used on the canvas ---------------------------------------------------------------


def entropy(maps: Maps) -> torch.Tensor:
    """Normalised entropy of every attention row, averaged over images and queries: 1 = uniform over the
    keys, 0 = all weight on one key. One layer (B, H, Nq, Nk) -> (H,); a list of layers -> (layers, H)."""
    layers = _layers(maps)
    if layers is not None:
        return torch.stack([entropy(a) for a in layers])
    a = _check_attn(maps)
    return -(a * a.clamp_min(1e-12).log()).sum(-1).mean(dim=(0, 2)) / math.log(a.shape[-1])


def share_on(grid_maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The share of each map's weight that lands on the masked patches: (..., B, g, g) maps over
    the patch grid and a (B, g, g) bool mask (e.g. `canvas.patch_mask` of the digit) -> (..., B).
    Each map is first renormalised over the patches (weight on prefix tokens is left out)."""
    m = grid_maps.detach().float()
    if m.shape[-3:] != mask.shape:
        raise ValueError(f"maps {tuple(m.shape)} and mask {tuple(mask.shape)} must end in the same (B, grid, grid).")
    total = m.sum(dim=(-2, -1)).clamp_min(torch.finfo(m.dtype).tiny)
    return (m * mask.to(m.device)).sum(dim=(-2, -1)) / total


def position_relations(sim: torch.Tensor, grid: int) -> dict[str, float]:
    """Mean similarity (from `position_similarity`, (N, N)) of pairs of patches grouped by how they lie:
    neighbours (the 8 around), same row, same column (not neighbours), and all others. A table that has
    learned the grid scores neighbours and its rows and columns above the others (ViT paper, Fig. 7)."""
    n = grid * grid
    if sim.shape != (n, n):
        raise ValueError(f"similarity of shape {tuple(sim.shape)} does not fit grid={grid}: expected ({n}, {n}).")
    rows, cols = torch.arange(n) // grid, torch.arange(n) % grid
    dr, dc = (rows[:, None] - rows[None]).abs(), (cols[:, None] - cols[None]).abs()
    near = (dr <= 1) & (dc <= 1) & ~torch.eye(n, dtype=torch.bool)
    groups = {"neighbour": near, "same row": (dr == 0) & (dc > 1), "same column": (dc == 0) & (dr > 1),
              "other": (dr > 0) & (dc > 0) & ~near}
    return {name: sim.detach().float().cpu()[mask].mean().item() for name, mask in groups.items()}


def embedding_components(patch_embed: nn.Module, k: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """The principal components of the patch-embedding filters (ViT paper, Fig. 7 left): the D filters
    (C, p, p) of `tokens.PatchEmbed` as D points, centred; returns the first k directions as (k, C, p, p)
    images and the share of the filters' variance each explains (k,)."""
    w = patch_embed.proj.weight.detach().float().cpu()  # (D, C, p, p)
    flat = w.flatten(1) - w.flatten(1).mean(0)  # (D, C*p*p), centred
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    k = min(k, len(s))
    return vh[:k].reshape(k, *w.shape[1:]), (s[:k] ** 2) / (s**2).sum()


def neighbourhood_distance(grid: int, patch_size: int, radius: int = 1) -> float:
    """The mean attention distance (pixels) of a head that attends uniformly to the patches within `radius`
    rows and columns of its query (itself included): the distance of a 3 x 3 convolution for radius 1."""
    d = patch_distances(grid, patch_size)  # (N, N)
    rows, cols = torch.arange(grid * grid) // grid, torch.arange(grid * grid) % grid
    near = ((rows[:, None] - rows[None]).abs() <= radius) & ((cols[:, None] - cols[None]).abs() <= radius)
    return ((d * near).sum(1) / near.sum(1)).mean().item()
