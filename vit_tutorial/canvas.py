"""Digits on a canvas: MNIST digits placed anywhere on a larger black image.

A centred 28 x 28 digit cut into 7-pixel patches is a 4 x 4 grid of 16 tokens, the digit filling
the middle four: too few tokens for local and global attention to differ, and nothing to find.
Pasted at a random place on a 56 x 56 canvas the same digit covers a fifth of an 8 x 8 grid of
64 tokens, and a model must find it before reading it. Translated (and cluttered) MNIST of this
kind is the test bed of Mnih et al., 2014, "Recurrent Models of Visual Attention".

`data.load("canvas", split)` makes the tutorial's canvas with these functions; every image keeps
its digit's ink box, so that analyses can ask how much attention lands on the digit.
"""
from __future__ import annotations

import numpy as np
import torch

SIZE, SEED, FRAGMENT = 56, 2025, 8  # the default canvas side; the seed of every canvas; clutter pieces are 8 x 8


def ink_boxes(images: torch.Tensor) -> torch.Tensor:
    """The box around the non-zero pixels of each image (N, C, H, W): (N, 4) as pixel (x0, y0, x1, y1),
    end exclusive. An image without ink gets an empty box at the origin."""
    ink = images.amax(dim=1) > 0  # (N, H, W)
    (x0, x1), (y0, y1) = (_extent(ink.any(dim=axis)) for axis in (1, 2))  # columns with ink, rows with ink
    return torch.stack([x0, y0, x1, y1], dim=1)  # (N, 4)


def _extent(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last True of each row of a (N, L) mask; (0, 0) where a row has none."""
    first = hit.long().argmax(dim=1)
    last = hit.shape[1] - hit.long().flip(1).argmax(dim=1)
    empty = ~hit.any(dim=1)
    return first.masked_fill(empty, 0), last.masked_fill(empty, 0)


def make(digits: torch.Tensor, seed: tuple[int, ...], size: int = SIZE, clutter: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each digit (N, 1, 28, 28) uint8 at a random place on a black size x size canvas; with
    `clutter`, first strew that many 8 x 8 fragments of random digits of the same set on each canvas.

    Drawn with NumPy's PCG64 from (SEED, *seed): the same bytes on every machine and every call.
    Returns the canvases (N, 1, size, size) uint8 and the digits' ink boxes (N, 4) on them.
    """
    images, n, side = digits.numpy(), len(digits), digits.shape[-1]
    rng = np.random.default_rng([SEED, *seed])
    canvas = np.zeros((n, images.shape[1], size, size), dtype=np.uint8)
    for k, j in enumerate(rng.integers(0, n, size=n * clutter)):  # fragment k goes onto canvas k // clutter
        r, c = rng.integers(0, side - FRAGMENT + 1, size=2)  # where in digit j it is cut
        y, x = rng.integers(0, size - FRAGMENT + 1, size=2)  # where on the canvas it lands
        window = canvas[k // clutter, :, y : y + FRAGMENT, x : x + FRAGMENT]
        np.maximum(window, images[j, :, r : r + FRAGMENT, c : c + FRAGMENT], out=window)
    corners = rng.integers(0, size - side + 1, size=(n, 2))  # (N, 2): top and left of each digit
    for i, (y, x) in enumerate(corners):
        window = canvas[i, :, y : y + side, x : x + side]
        np.maximum(window, images[i], out=window)  # over any clutter, never erasing it
    offsets = torch.from_numpy(np.ascontiguousarray(corners[:, ::-1])).repeat(1, 2)  # (N, 4): x, y, x, y
    return torch.from_numpy(canvas), ink_boxes(digits) + offsets


def relocate(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Move each digit to a random place where its whole box fits, by rolling its image on the black
    background (anything else on the canvas moves with it): (B, C, H, W) -> (B, C, H, W)."""
    size = torch.tensor(images.shape[-2:]).flip(0)  # (W, H), in box order x, y
    lo, hi = boxes[:, :2], boxes[:, 2:]  # (B, 2) each: (x0, y0), (x1, y1)
    room = size - (hi - lo) + 1  # (B, 2): how many top-left corners fit
    target = (torch.rand(len(images), 2) * room).long()  # (B, 2): a new top-left corner
    moves = (target - lo).tolist()
    return torch.stack([img.roll((dy, dx), dims=(-2, -1)) for img, (dx, dy) in zip(images, moves)])


def patch_mask(boxes: torch.Tensor, image_size: int, patch_size: int) -> torch.Tensor:
    """Which patches of the grid the box overlaps: (N, 4) boxes -> (N, grid, grid) bool.

    "On the digit" in the analyses means these patches; their share of the grid is the share of
    attention a model would put there by looking everywhere alike.
    """
    grid = image_size // patch_size
    starts = torch.arange(grid) * patch_size  # (g,) first pixel of each patch row / column
    x0, y0, x1, y1 = (boxes[:, i, None] for i in range(4))  # (N, 1) each
    cols = (starts < x1) & (starts + patch_size > x0)  # (N, g): the patch column overlaps the box
    rows = (starts < y1) & (starts + patch_size > y0)
    return rows[:, :, None] & cols[:, None, :]  # (N, g, g)


def place(digit: torch.Tensor, corners: list[tuple[int, int]], size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """One digit (1, 28, 28) uint8 pasted at each given top-left corner (x, y) of a black canvas, to watch a
    model follow it: (K, 1, size, size) canvases and their ink boxes (K, 4)."""
    side = digit.shape[-1]
    if any(not (0 <= x <= size - side and 0 <= y <= size - side) for x, y in corners):
        raise ValueError(f"every corner must keep the {side}-pixel digit on the {size}-pixel canvas: x, y in [0, {size - side}].")
    images = torch.zeros(len(corners), digit.shape[0], size, size, dtype=torch.uint8)
    for img, (x, y) in zip(images, corners):
        img[:, y : y + side, x : x + side] = digit
    return images, ink_boxes(images)
