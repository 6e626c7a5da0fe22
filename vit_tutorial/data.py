"""Data: the bundled MNIST 5k, the digit canvas made from it, CIFAR-10 (downloaded on request),
low-data subsets and augmentations.

Images stay in memory as uint8 tensors (N, C, H, W); an item is `(image, label)` with the image
as float32 (C, H, W), normalised with the data set's mean and std. Augmentations are torchvision
`transforms.v2`: shifts, flips and random erasing per image, mixup/cutmix per batch (`mixer`).
Everything is read from `data_dir()`; the only thing ever written there is a CIFAR-10 download.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils import data as tud
from torchvision.datasets import CIFAR10
from torchvision.transforms import v2

from . import canvas, cifar10

ENV_DATA, ENV_SYNTHETIC = "VIT_TUTORIAL_DATA", "VIT_TUTORIAL_SYNTHETIC"
NAMES, SPLITS = ("mnist5k", "canvas", "cifar10"), ("train", "test")
_BUNDLED = Path(__file__).resolve().parent.parent / "data"
# Mean and std per channel, pixels in [0, 1]: of the full training sets (MNIST 60k, CIFAR-10 50k), and
# of the canvas' training split (its digits, a quarter of the area, on black; tests/test_canvas.py checks it).
STATS = {"mnist5k": ((0.1307,), (0.3081,)), "canvas": ((0.0329,), (0.1646,)),
         "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
CLASSES = {
    "mnist5k": [str(d) for d in range(10)],
    "canvas": [str(d) for d in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def data_dir() -> Path:
    """Where data lives: $VIT_TUTORIAL_DATA if set, else the repository's `data/` beside the package."""
    return Path(os.environ[ENV_DATA]).expanduser() if os.environ.get(ENV_DATA) else _BUNDLED


@dataclass
class Augment:
    """Which augmentations to apply to training images; the defaults switch everything off."""

    shift: int = 0  # random translation by up to `shift` pixels (zero-padded random crop)
    relocate: bool = False  # move each digit to a random place where its box fits (digits on black only)
    flip: bool = False  # random horizontal flip: for photos (CIFAR), never for digits
    erasing: float = 0.0  # probability of random erasing (DeiT uses 0.25)
    mixup: float = 0.0  # mixup alpha, 0 = off (batch level, see `mixer`)
    cutmix: float = 0.0  # cutmix alpha, 0 = off (batch level, see `mixer`)

    def __post_init__(self) -> None:
        if self.shift < 0 or not 0.0 <= self.erasing <= 1.0 or self.mixup < 0 or self.cutmix < 0:
            raise ValueError(f"bad {self}: use shift >= 0, erasing in [0, 1], mixup/cutmix alpha >= 0.")

    @property
    def per_image(self) -> bool:
        return self.shift > 0 or self.relocate or self.flip or self.erasing > 0


class ImageDataset(tud.Dataset):
    """Labelled images held in memory as uint8 (N, C, H, W); items are (normalised float image, label).

    Digits on black (mnist5k, canvas) also keep `boxes` (N, 4): each digit's ink box as pixel
    (x0, y0, x1, y1), end exclusive, so that analyses can ask how much attention lands on the digit.
    """

    def __init__(self, name: str, images: torch.Tensor, targets: torch.Tensor, augment: Augment | None = None,
                 boxes: torch.Tensor | None = None):
        self.name, self.images, self.targets = name, images, targets.long()  # (N, C, H, W) uint8, (N,)
        self.boxes = boxes  # (N, 4) or None
        self.classes = CLASSES[name]
        mean, std = STATS[name]
        self.mean, self.std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)  # (C, 1, 1)
        if augment is not None and augment.flip and boxes is not None:
            raise ValueError(f"Augment(flip=True) mirrors digits into non-digits: keep flip=False for {name}.")
        if augment is not None and augment.relocate and boxes is None:
            raise ValueError(f"Augment(relocate=True) moves digits on a black background; {name} has none: use shift=.")
        self.augment = augment if augment is not None and augment.per_image else None
        a = self.augment or Augment()
        moves = [v2.RandomCrop(self.image_size, padding=a.shift)] if a.shift else []
        moves += [v2.RandomHorizontalFlip()] if a.flip else []
        self.move = v2.Compose(moves) if moves else None  # on uint8 images
        self.erase = v2.RandomErasing(p=a.erasing, value="random") if a.erasing else None  # on normalised ones

    num_classes = property(lambda self: len(self.classes))
    in_channels = property(lambda self: self.images.shape[1])
    image_size = property(lambda self: self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.targets)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (..., C, H, W) -> float32, zero mean and unit std per channel."""
        return (images.float() / 255 - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (..., C, H, W) -> float pixels in [0, 1], ready for `plt.imshow`."""
        return (x.cpu() * self.std + self.mean).clamp(0, 1)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch at once (the DataLoader calls this): one tensor op instead of B item calls."""
        batch = self.images[indices]  # (B, C, H, W) uint8
        if self.augment is not None and self.augment.relocate:
            batch = canvas.relocate(batch, self.boxes[indices])
        if self.move is not None:
            batch = torch.stack([self.move(img) for img in batch])
        x = self.normalize(batch)  # (B, C, H, W) float32
        if self.erase is not None:
            x = torch.stack([self.erase(img) for img in x])
        return list(zip(x, self.targets[indices].tolist()))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([i])[0]

    def __repr__(self) -> str:
        return f"{self.name}: {len(self)} images {tuple(self.images.shape[1:])}, {self.num_classes} classes"


class Subset(tud.Subset):
    """Part of an ImageDataset that still answers `.targets`, `.classes`, `.images`, `denormalize`..."""

    targets = property(lambda self: self.dataset.targets[self.indices])
    images = property(lambda self: self.dataset.images[self.indices])
    boxes = property(lambda self: None if self.dataset.boxes is None else self.dataset.boxes[self.indices])

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("dataset", "indices"):
            raise AttributeError(name)
        return getattr(self.dataset, name)  # classes, num_classes, image_size, denormalize, ...


# --- loading --------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _mnist5k(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The npz made by scripts/make_mnist5k.py, from `root` or else from the repository's data/; checked
    (uint8 (N, 28, 28) images, labels 0-9) and read without pickles."""
    for folder in (Path(root), _BUNDLED):
        if (folder / "mnist5k.npz").is_file():
            file, fix = folder / "mnist5k.npz", "restore it with `git checkout data/mnist5k.npz` or run scripts/make_mnist5k.py"
            try:
                with np.load(file, allow_pickle=False) as f:
                    x, y = f[f"x_{split}"], f[f"y_{split}"]
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
                raise ValueError(f"{file} is damaged or not the MNIST 5k file ({type(err).__name__}: {err}); {fix}.") from None
            if not (x.dtype == np.uint8 and x.ndim == 3 and x.shape[1:] == (28, 28) and y.ndim == 1 and len(y) == len(x)
                    and np.issubdtype(y.dtype, np.integer) and len(y) and 0 <= y.min() and y.max() <= 9):
                raise ValueError(f"{file} does not hold uint8 28 x 28 digits with labels 0-9 (found {x.dtype} {x.shape}, "
                                 f"{y.dtype} labels); {fix}.")
            return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long()  # (N, 1, 28, 28) uint8, (N,)
    raise ValueError(f"mnist5k.npz is missing from {_BUNDLED}: restore it from git or run scripts/make_mnist5k.py.")


@lru_cache(maxsize=8)
def _canvas(root: str, split: str, size: int, clutter: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The canvas split made from MNIST 5k's split: (images (N, 1, size, size) uint8, targets, boxes)."""
    digits, targets = _mnist5k(root, split)
    images, boxes = canvas.make(digits, seed=(SPLITS.index(split), size, clutter), size=size, clutter=clutter)
    return images, targets, boxes


@lru_cache(maxsize=4)
def _cifar10(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The official python format, checked against the published MD5s and read without running code."""
    return cifar10.read(Path(root), split)


def cifar10_available(root: Path | None = None) -> bool:
    """Whether the extracted CIFAR-10 batches are in `root` (default data_dir())."""
    return cifar10.available(Path(root or data_dir()))


def load(name: str, split: str, augment: Augment | None = None, download: bool = False, *,
         size: int | None = None, clutter: int = 0) -> ImageDataset:
    """One split of a data set: `load("canvas", "train", Augment(relocate=True))`.

    `canvas` places MNIST 5k's digits (same split) on a black `size` x `size` canvas (default 56:
    with 7-pixel patches an 8 x 8 grid), with `clutter` digit fragments (default none). For the
    other data sets `size` resizes the images (to try a model at another resolution). CIFAR-10 is
    downloaded into data_dir() only with `download=True`; with VIT_TUTORIAL_SYNTHETIC=1 it is
    replaced by small synthetic data of the same shape (for rehearsals without a download).
    """
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}: use one of {', '.join(NAMES)}.")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'.")
    for option, value, least in (("size", size, 8 if name != "canvas" else 28), ("clutter", clutter, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 1024):
            raise ValueError(f"{name} {option} must be a whole number from {least} to 1024, got {value!r}.")
    if clutter and name != "canvas":
        raise ValueError(f"clutter= strews digit fragments on the canvas; {name!r} has none: use load('canvas', ...).")
    if name == "canvas":
        images, targets, boxes = _canvas(str(data_dir()), split, size or canvas.SIZE, clutter)
        return ImageDataset(name, images, targets, augment, boxes=boxes)
    images, targets = _mnist5k(str(data_dir()), split) if name == "mnist5k" else _cifar10_split(split, download)
    if size is not None and size != images.shape[-1]:
        resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp(0, 255).to(torch.uint8)  # (N, C, size, size)
    return ImageDataset(name, images, targets, augment, boxes=canvas.ink_boxes(images) if name == "mnist5k" else None)


def _cifar10_split(split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's split from data_dir() (downloaded first if asked), or with VIT_TUTORIAL_SYNTHETIC=1 a stand-in."""
    if os.environ.get(ENV_SYNTHETIC, "") not in ("", "0"):
        return cifar10.synthetic(split)
    help_ = (f"Run `vit_tutorial.data.load('cifar10', 'train', download=True)` once while online, or put the extracted "
             f"`{CIFAR10.base_folder}` folder in data/ (or in ${ENV_DATA}); ${ENV_SYNTHETIC}=1 uses synthetic data.")
    cifar10.fetch(data_dir(), download, help_)
    return _cifar10(str(data_dir()), split)


def for_profile(profile, augment: Augment | None = None, download: bool = True) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) of a profile's data set (`profile.dataset`, or a data set's name), augmenting only train.

    CIFAR-10 is downloaded if missing; offline it falls back to MNIST 5k (no flips) with a one-line notice.
    """
    name = profile if isinstance(profile, str) else profile.dataset
    if name == "cifar10":
        try:
            return load(name, "train", augment, download=download), load(name, "test")
        except ValueError as err:
            print(f"Using mnist5k instead of CIFAR-10. {err}".replace("\n", " "))
            name, augment = "mnist5k", replace(augment, flip=False) if augment is not None else None
    return load(name, "train", augment), load(name, "test")


def subset(dataset: tud.Dataset, fraction: float, seed: int = 0) -> Subset:
    """A stratified, seeded `fraction` of `dataset`: that share of every class, at least one image each."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}: e.g. 0.1 keeps 10% of every class.")
    g = torch.Generator().manual_seed(seed)
    targets, keep = dataset.targets, []
    for c in targets.unique():
        idx = torch.nonzero(targets == c).flatten()  # this class's positions
        k = max(1, round(fraction * len(idx)))
        keep.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return Subset(dataset, torch.cat(keep).sort().values.tolist())


def mixer(augment: Augment | None, num_classes: int):
    """Batch-level mixup / cutmix: (x (B, C, H, W), y (B,)) -> (mixed x, soft targets (B, classes)); None if off."""
    if augment is None or (augment.mixup <= 0 and augment.cutmix <= 0):
        return None
    mixes = ([v2.MixUp(alpha=augment.mixup, num_classes=num_classes)] if augment.mixup > 0 else []) + (
        [v2.CutMix(alpha=augment.cutmix, num_classes=num_classes)] if augment.cutmix > 0 else []
    )
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)  # DeiT: one of the two per batch


def loader(dataset: tud.Dataset, batch_size: int, shuffle: bool, seed: int = 0, device=None) -> tud.DataLoader:
    """A DataLoader with a seeded order; worker processes and pinned memory only when training on CUDA."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    workers = min(4, os.cpu_count() or 1) if cuda else 0  # in-memory data on CPU: workers only add overhead
    return tud.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed),
        num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
    )
