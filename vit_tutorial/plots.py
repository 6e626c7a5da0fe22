"""Pictures for the notebooks: patches, attention maps, rollout, attention distance, curves.

Every function takes our tensors, draws a new pyplot figure and returns it. In a notebook end
the cell with `plt.show()` (or a `;`) so that it is shown exactly once; in a script call
`fig.savefig(path)` and `plt.close(fig)`.

After the figures of Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words" (ViT):
attention over the image (Fig. 6), position-embedding similarity (Fig. 7 centre) and mean
attention distance per head and layer (Fig. 7 right); and of Abnar & Zuidema, 2020,
"Quantifying Attention Flow in Transformers" (attention rollout).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib import cm, colors
import numpy as np
import torch
from einops import rearrange
from matplotlib.figure import Figure

from . import analysis
from .charts import as_array, new_figure, heatmap
from .tokens import check_patch_grid, patchify


def _image(image: Any) -> np.ndarray:
    """(C, H, W) / (H, W, C) / (H, W), float or uint8 -> (H, W) or (H, W, 3) floats in [0, 1];
    normalised images (values outside [0, 1]) are stretched back to [0, 1] for display."""
    x = (image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))).detach().cpu()
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x.permute(1, 2, 0)  # (H, W, C)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] not in (1, 3)):
        raise ValueError(f"expected an image (C, H, W), (H, W, C) or (H, W) with 1 or 3 channels, got {tuple(x.shape)}.")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 1:
        x = (x - lo) / (hi - lo).clamp_min(1e-12)
    return (x[..., 0] if x.ndim == 3 and x.shape[-1] == 1 else x).numpy()


def _show(ax, img: np.ndarray, title: str | None = None) -> None:
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def _panels(n: int, ncols: int, size: float = 1.8, width: float = 10.0) -> tuple[Figure, list]:
    """A figure with exactly n small axes, ncols to a row, at most `width` inches wide."""
    ncols = max(1, min(ncols, n))
    nrows, size = math.ceil(n / ncols), min(size, width / ncols)
    fig = new_figure(figsize=(size * ncols, size * nrows + 0.2))
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]


def patch_grid(image: Any, patch_size: int) -> Figure:
    """The image with the patch grid drawn over it: each cell becomes one token, numbered from 1
    row by row (position 0 is left for the class token, as in the ViT paper's Fig. 1)."""
    img = _image(image)
    h, w = img.shape[:2]
    gh, gw = check_patch_grid(h, patch_size), check_patch_grid(w, patch_size)
    fig = new_figure(figsize=(4, 4))
    ax = fig.add_subplot()
    _show(ax, img, f"{gh} x {gw} = {gh * gw} patches of {patch_size} x {patch_size} pixels")
    ax.vlines(np.arange(gw + 1) * patch_size - 0.5, -0.5, h - 0.5, color="yellow", lw=1)
    ax.hlines(np.arange(gh + 1) * patch_size - 0.5, -0.5, w - 0.5, color="yellow", lw=1)
    for i in range(gh * gw if gh * gw <= 64 else 0):  # numbers only while they fit
        r, c = divmod(i, gw)
        ax.text((c + 0.5) * patch_size, (r + 0.5) * patch_size, i + 1, color="yellow", ha="center", va="center")
    return fig


def patch_sequence(image: Any, patch_size: int, max_patches: int | None = None, ncols: int = 16) -> Figure:
    """The patches as the transformer receives them: a sequence of small images, numbered from 1
    in row-major order; the 2D arrangement is gone and must come back through position embeddings."""
    img = torch.as_tensor(_image(image))
    chw = img[None] if img.ndim == 2 else img.permute(2, 0, 1)  # (C, H, W)
    seq = patchify(chw[None], patch_size)[0]  # (N, p*p*C)
    seq = rearrange(seq, "n (p1 p2 c) -> n p1 p2 c", p1=patch_size, p2=patch_size).squeeze(-1).numpy()
    n = len(seq) if max_patches is None else min(max_patches, len(seq))
    fig, axes = _panels(n, ncols, size=0.8)
    for i, ax in enumerate(axes):
        _show(ax, seq[i], str(i + 1))
    return fig


def attention_heatmap(attn: Any, labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """An attention matrix (queries, keys): row i is how token i spreads its attention, summing to 1."""
    a = as_array(attn, 2, "attention (queries, keys)")
    square = a.shape[0] == a.shape[1]
    fig = heatmap(a, labels, labels if square else None, title, cmap="Blues", annotate=a.size <= 100, vmin=0)
    fig.axes[0].set_xlabel("key (attended to)"), fig.axes[0].set_ylabel("query (attending)")
    return fig


def attention_maps(
    image: Any | None, maps: Any, titles: Sequence[str] | None = None, ncols: int = 6,
    query: int | Sequence[int] | None = None, alpha: float = 0.65, cmap: str = "RdBu_r",
) -> Figure:
    """Attention maps (K, grid, grid) drawn as patch cells over the image (shown first, if given;
    a batch of K images (K, C, H, W) puts each map over its own image instead).

    One colour scale for the whole figure, in multiples of uniform attention 1/N (white = uniform,
    red = more, blue = less), with a colour bar, so that panels compare in amount as well as in
    place; each title adds the map's entropy (1 = uniform, 0 = one patch). `query` marks the patch
    that asks (its token index, one for all panels or one per panel), green.
    """
    m = torch.as_tensor(as_array(maps, 3, "maps (layers or heads, grid, grid)", promote=True)).double()
    k, g = m.shape[0], m.shape[-1]
    if titles is not None and len(titles) != k:
        raise ValueError(f"got {len(titles)} titles for {k} maps.")
    queries = [query] * k if query is None or isinstance(query, int) else list(query)
    if len(queries) != k or any(q is not None and not 0 <= q < g * g for q in queries):
        raise ValueError(f"query must be a patch index in [0, {g * g}) or one per map ({k}), got {query}.")
    relative = (m * g * g).numpy()  # 1 = uniform attention over the patches
    p = m / m.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)  # each map as a distribution over patches
    entropy = (-(p * p.clamp_min(1e-12).log()).sum(dim=(1, 2)) / math.log(g * g)).clamp_min(0).add(0.0).tolist()
    each = image is not None and torch.as_tensor(image).ndim == 4 and len(image) == k and k > 1
    imgs = [_image(im) for im in image] if each else [None if image is None else _image(image)] * k
    img = imgs[0]
    fig, axes = _panels(k + (img is not None and not each), ncols, size=2.0)
    if img is not None and not each:
        _show(axes.pop(0), img, "image")
    h, w = img.shape[:2] if img is not None else (g, g)
    norm = colors.TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=max(float(relative.max()), 1.01))
    for i, (ax, a, img) in enumerate(zip(axes, relative, imgs)):
        if img is not None:
            _show(ax, img)
        ax.imshow(a, cmap=cmap, norm=norm, alpha=alpha if img is not None else 1.0,
                  extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
        cell = w / g
        ax.vlines(np.arange(1, g) * cell - 0.5, -0.5, h - 0.5, color="gray", lw=0.3)
        ax.hlines(np.arange(1, g) * cell - 0.5, -0.5, w - 0.5, color="gray", lw=0.3)
        if queries[i] is not None:
            r, c = divmod(queries[i], g)
            ax.add_patch(plt.Rectangle((c * cell - 0.5, r * cell - 0.5), cell, cell, fill=False, ec="lime", lw=2))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{titles[i] if titles is not None else i}\nentropy {entropy[i]:.2f}", fontsize=8)
    fig.colorbar(cm.ScalarMappable(norm, cmap), ax=axes, shrink=0.8, label="attention / uniform")
    return fig


def rollout_map(image: Any, rollout_row: Any, prefix: int = 0, title: str = "attention rollout") -> Figure:
    """What the class token's output draws on across all layers (a row of `analysis.rollout`),
    over the image. Takes the row on the grid (grid, grid) or as tokens (prefix + N,)."""
    row = torch.as_tensor(rollout_row).detach().float()
    grid = analysis.token_grid(row, prefix) if row.ndim == 1 else row  # (g, g)
    return attention_maps(image, grid[None], titles=[title])


def position_similarity_grid(sim: Any, grid: int, title: str | None = None, vmin=None, vmax=None) -> Figure:
    """For each patch (tile at its row and column), the cosine similarity of its position embedding
    with every other patch's (pixels inside the tile): ViT Fig. 7 centre, from `analysis.position_similarity`.
    One colour scale for all tiles, the data's range unless given (the paper uses -1 to 1)."""
    s = torch.as_tensor(sim).detach().float().cpu()
    if s.shape != (grid * grid, grid * grid):
        raise ValueError(f"similarity of shape {tuple(s.shape)} does not fit grid={grid}: expected ({grid**2}, {grid**2}).")
    tiles = rearrange(s, "(qr qc) (kr kc) -> qr qc kr kc", qr=grid, kr=grid)
    tiles = torch.nn.functional.pad(tiles, (0, 1, 0, 1), value=float("nan"))  # a gap after every tile
    mosaic = rearrange(tiles, "qr qc kr kc -> (qr kr) (qc kc)")[:-1, :-1]  # (g*(g+1)-1, same)
    fig = new_figure(figsize=(5, 4.3))
    ax = fig.add_subplot()
    im = ax.imshow(mosaic.numpy(), cmap="viridis", vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, shrink=0.85, label="cosine similarity")
    ticks = np.arange(grid) * (grid + 1) + (grid - 1) / 2
    ax.set_xticks(ticks, range(1, grid + 1)), ax.set_yticks(ticks, range(1, grid + 1))
    ax.tick_params(length=0, labelsize=7)
    ax.set_xlabel("input patch column"), ax.set_ylabel("input patch row")
    ax.set_title(title or "position embedding similarity", fontsize=10)
    return fig


def image_grid(images: Any, labels: Sequence[Any] | None = None, ncols: int = 8, boxes: Any = None,
               patch_size: int | None = None) -> Figure:
    """A batch (B, C, H, W) or list of images side by side, with optional labels as titles
    (examples from the data set, augmentations, what the model got wrong); `boxes` (B, 4) outlines
    each digit's box, `patch_size` draws the patch grid."""
    images = list(images)
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images.")
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"got {len(boxes)} boxes for {len(images)} images.")
    fig, axes = _panels(len(images), ncols)
    for i, (ax, img) in enumerate(zip(axes, images)):
        pixels = _image(img)
        _show(ax, pixels, None if labels is None else str(labels[i]))
        if patch_size:
            h, w = pixels.shape[:2]
            ax.vlines(np.arange(1, w // patch_size) * patch_size - 0.5, -0.5, h - 0.5, color="gray", lw=0.4)
            ax.hlines(np.arange(1, h // patch_size) * patch_size - 0.5, -0.5, w - 0.5, color="gray", lw=0.4)
        if boxes is not None:
            x0, y0, x1, y1 = (float(v) for v in boxes[i])
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="orange", lw=1))
    return fig


def embedding_filters(patch_embed: Any, k: int = 28, ncols: int = 7) -> Figure:
    """The first `k` principal components of the patch-embedding filters, as p x p images (the ViT
    paper's Fig. 7, left), each titled with the share of the filters' variance it explains."""
    components, share = analysis.embedding_components(patch_embed, k)  # (k, C, p, p), (k,)
    fig, axes = _panels(len(components), ncols, size=1.1)
    for i, (ax, c) in enumerate(zip(axes, components)):
        c = c.mean(0) if c.shape[0] != 3 else c.permute(1, 2, 0)
        _show(ax, ((c - c.min()) / (c.max() - c.min()).clamp_min(1e-12)).numpy(), f"{i + 1}: {share[i]:.0%}")
    return fig
