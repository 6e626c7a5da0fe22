"""Charts of numbers: training curves, tables as heatmaps, attention distance per layer, results
with their spread over seeds.

Every function draws a new pyplot figure and returns it (end a notebook cell with `plt.show()`).
`plots.py` holds the pictures drawn on images (patches, attention maps, positions).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import analysis


def new_figure(**kw: Any) -> Figure:
    """A new pyplot figure (so the notebook shows it at `plt.show()` or the end of the cell)."""
    return plt.figure(layout="constrained", **kw)


def as_array(x: Any, ndim: int, what: str, promote: bool = False) -> np.ndarray:
    """A float numpy array with `ndim` dimensions (with `promote`, one less gets a leading axis)."""
    a = torch.as_tensor(x).detach().float().cpu()
    a = a[None] if promote and a.ndim == ndim - 1 else a
    if a.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {tuple(a.shape)}.")
    return a.numpy()


def heatmap(
    matrix: Any, xlabels: Sequence[Any] | None = None, ylabels: Sequence[Any] | None = None,
    title: str | None = None, cmap: str = "viridis", annotate: bool | None = None, fmt: str = ".2f",
    vmin: float | None = None, vmax: float | None = None,
) -> Figure:
    """A matrix as coloured cells with a colour bar, values written in the cells when it is small
    (up to 12 x 12 unless `annotate` says): ConViT gates per layer and head, tables of results."""
    m = as_array(matrix, 2, "matrix")
    rows, cols = m.shape
    fig = new_figure(figsize=(min(9, 2 + 0.5 * cols), min(8, 1.2 + 0.45 * rows)))
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(im, ax=ax, shrink=0.9)
    for labels, n, set_ticks in ((xlabels, cols, ax.set_xticks), (ylabels, rows, ax.set_yticks)):
        if labels is not None and len(labels) != n:
            raise ValueError(f"got {len(labels)} labels for {n} cells: give one label per row / column.")
        if labels is not None:
            long = set_ticks is ax.set_xticks and max(len(str(t)) for t in labels) > 3
            set_ticks(range(n), [str(t) for t in labels], rotation=90 if long else 0)
    if rows <= 12 and cols <= 12 if annotate is None else annotate:
        for (r, c), v in np.ndenumerate(m):
            red, green, blue, _ = im.cmap(im.norm(v))
            dark = 0.3 * red + 0.6 * green + 0.1 * blue < 0.5  # write light text on dark cells
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    if title:
        ax.set_title(title)
    return fig


def attention_distance(distances: Any, grid: int | None = None, patch_size: int | None = None) -> Figure:
    """Mean attention distance (layers, heads), one dot per head at each layer (ViT Fig. 7 right):
    low dots are local heads, high dots global ones. Give a dict {name: distances} to compare
    models; with grid and patch_size a dashed line marks uniform attention over all patches."""
    series = dict(distances) if isinstance(distances, Mapping) else {None: distances}
    fig = new_figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for i, (name, d) in enumerate(series.items()):
        d = as_array(d, 2, "distances (layers, heads)", promote=True)
        layers, heads = d.shape
        x = np.repeat(np.arange(1, layers + 1), heads) + 0.15 * (i - (len(series) - 1) / 2)
        ax.scatter(x, d.flatten(), s=14, alpha=0.8, color=f"C{i}", label=name)
    if grid is not None and patch_size is not None:
        uniform = analysis.patch_distances(grid, patch_size).mean().item()
        ax.axhline(uniform, ls="--", color="gray", lw=1, label="uniform attention")
    ax.set_xlabel("network depth (layer)"), ax.set_ylabel("mean attention distance (pixels)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if len(series) > 1 or ax.lines:
        ax.legend(fontsize=8)
    return fig


def curves(histories: Any, metrics: Sequence[str] = ("loss", "acc")) -> Figure:
    """Training curves, one panel per metric: train solid, test/val dashed, one colour per run.

    Takes one history or a dict {name: history}; a history is `train.History` (anything with
    `as_dict()`) or a dict of lists with keys like "epoch", "train_loss", "test_acc"."""
    many = isinstance(histories, Mapping) and all(
        hasattr(v, "as_dict") or isinstance(v, Mapping) for v in histories.values())
    runs = dict(histories) if many and histories else {"": histories}
    fig = new_figure(figsize=(4.2 * len(metrics), 3.2))
    axes = [fig.add_subplot(1, len(metrics), i + 1) for i in range(len(metrics))]
    for i, (name, h) in enumerate(runs.items()):
        d = dict(h.as_dict() if hasattr(h, "as_dict") else h)
        for ax, metric in zip(axes, metrics):
            for key, values in d.items():
                split = key[: -len(metric) - 1] if key.endswith("_" + metric) else "" if key == metric else None
                if split is None or key == "epoch":
                    continue
                y = np.array([np.nan if v is None else float(v) for v in values])
                if np.isnan(y).all():
                    continue  # never measured, e.g. no test set
                x = np.asarray(d["epoch"]) if len(d.get("epoch", ())) == len(y) else np.arange(1, len(y) + 1)
                style, kept = "-" if split in ("train", "") else "--", ~np.isnan(y)  # skip epochs not evaluated
                ax.plot(x[kept], y[kept], style, color=f"C{i}", marker="o" if len(y) <= 20 else None, ms=3,
                        label=f"{name} {split}".strip() or metric)
    for ax, metric in zip(axes, metrics):
        ax.set_xlabel("epoch"), ax.set_ylabel({"acc": "accuracy", "lr": "learning rate"}.get(metric, metric))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return fig




def by_fraction(results: Mapping[str, Mapping[float, Sequence[float]]], paper: Mapping[str, Mapping[float, float]] | None = None,
                ylabel: str = "test accuracy") -> Figure:
    """Accuracy against the fraction of training data used (log scale): one line per model through the
    mean over seeds, each seed a dot; `paper` adds the paper's numbers as dashed lines."""
    fig = new_figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    for i, (name, per_fraction) in enumerate(results.items()):
        fractions = sorted(per_fraction)
        means = [float(np.mean(per_fraction[f])) for f in fractions]
        ax.plot(fractions, means, "-o", color=f"C{i}", label=name, ms=4)
        for f in fractions:
            ax.scatter([f] * len(per_fraction[f]), per_fraction[f], color=f"C{i}", s=8, alpha=0.5)
    for i, (name, points) in enumerate((paper or {}).items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], "--", color=f"C{i}", alpha=0.6, label=f"{name} (paper)")
    ax.set_xscale("log"), ax.set_xlabel("fraction of the training set"), ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    return fig


def bars(values: Mapping[str, Mapping[str, Sequence[float]]], ylabel: str, title: str | None = None) -> Figure:
    """Grouped bars: for each group (e.g. a relation between patches), one bar per series (e.g. a
    model) at the mean over seeds, with each seed as a dot."""
    series = list(values)
    groups = list(next(iter(values.values())))
    fig = new_figure(figsize=(1.2 + 1.1 * len(groups) * max(1, len(series) / 2), 3.2))
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        xs = np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width
        vals = [np.atleast_1d(values[name][g]) for g in groups]
        ax.bar(xs, [v.mean() for v in vals], width, color=f"C{i}", alpha=0.8, label=name)
        for x, v in zip(xs, vals):
            ax.scatter([x] * len(v), v, color="black", s=6, zorder=3)
    ax.set_xticks(range(len(groups)), groups), ax.set_ylabel(ylabel), ax.axhline(0, color="gray", lw=0.6)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
