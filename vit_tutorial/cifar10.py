"""CIFAR-10 read safely: published checksums first, then an unpickler that builds plain data only.

The official python version of CIFAR-10 is a folder of pickles (a dict of uint8 images (n, 3072),
labels and file names per batch), and unpickling can run any code a file asks for. So a folder
that someone planted cannot run code here: every batch must have the MD5 that torchvision lists
for it (the published files), and even then it is read with an unpickler that admits dicts,
lists, strings, bytes, numbers and numpy's reconstruction of an array, and refuses anything else.
The download (through torchvision) gives up after `DOWNLOAD_TIMEOUT` seconds without an answer.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import socket
import urllib.error
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

DOWNLOAD_TIMEOUT = 60.0  # seconds without an answer from the server
MAX_BATCH_BYTES = 64 * 2**20  # an official batch is 31 MB


def _reconstruct():
    """numpy's array reconstructor, wherever this numpy keeps it (numpy._core since 2.0, numpy.core before)."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(name)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, str, bytes, numbers and numpy arrays; any other global is refused unloaded."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not part of the CIFAR-10 format")
        return _reconstruct() if name == "_reconstruct" else getattr(np, name)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while piece := f.read(2**20):
            digest.update(piece)
    return digest.hexdigest()


def read_batch(path: Path, md5: str | None) -> tuple[np.ndarray, list[int]]:
    """One batch file: (uint8 images (n, 3072), labels), after its checksum; a ValueError if it is not one."""
    fix = f"delete {path.parent} and download CIFAR-10 again (data.load('cifar10', 'train', download=True))"
    if md5 is not None and _md5(path) != md5:
        raise ValueError(f"{path} is not the published CIFAR-10 file (its MD5 differs from the one torchvision lists): "
                         f"it was damaged or replaced, and is not read; {fix}.")
    if path.stat().st_size > MAX_BATCH_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size} bytes, larger than any CIFAR-10 batch; {fix}.")
    try:
        entry = _PlainUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as err:  # UnpicklingError, EOFError, ...: a damaged or foreign file
        raise ValueError(f"{path} is not a CIFAR-10 batch ({err}); {fix}.") from None
    data, labels = (entry.get("data"), entry.get("labels")) if isinstance(entry, dict) else (None, None)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
            and isinstance(labels, list) and len(labels) == len(data)
            and all(type(v) is int and 0 <= v < 10 for v in labels)):
        raise ValueError(f"{path} does not hold CIFAR-10 images (uint8 (n, 3072)) and labels 0-9; {fix}.")
    return data, labels


def read(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split from `root`/cifar-10-batches-py: uint8 images (N, 3, 32, 32) and labels (N,)."""
    files = CIFAR10.train_list if split == "train" else CIFAR10.test_list
    batches = [read_batch(Path(root) / CIFAR10.base_folder / name, md5) for name, md5 in files]
    x = torch.from_numpy(np.concatenate([b[0] for b in batches])).view(-1, 3, 32, 32)  # rows are R, G, B planes
    return x, torch.tensor([v for b in batches for v in b[1]], dtype=torch.long)


def download(root: Path, timeout: float | None = None) -> None:
    """Fetch and extract CIFAR-10 into `root` through torchvision (which checks the archive's MD5),
    giving up when the server does not answer for `timeout` seconds (default DOWNLOAD_TIMEOUT)."""
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # urllib's connections take it as their timeout
    try:
        CIFAR10(root, train=True, download=True)
    except (TimeoutError, urllib.error.URLError) as err:
        if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
            raise ValueError(f"no answer from {CIFAR10.url} within {timeout:g} s: the download timed out") from None
        raise
    finally:
        socket.setdefaulttimeout(previous)


def available(root: Path) -> bool:
    """Whether the extracted CIFAR-10 batches are in `root`."""
    folder = Path(root) / CIFAR10.base_folder
    return all((folder / f).is_file() for f, _ in CIFAR10.train_list + CIFAR10.test_list)


def fetch(root: Path, allow_download: bool, help_: str) -> None:
    """Make sure the batches are in `root`: downloaded if asked and missing; a ValueError ending in `help_` if not."""
    if not available(root) and allow_download:
        try:
            download(root)  # fetches, checks md5 and extracts the archive; times out
        except Exception as err:  # offline, proxy, disk full: say what to do instead
            raise ValueError(f"could not download CIFAR-10 into {root} ({err}). {help_}") from err
    if not available(root):
        raise ValueError(f"CIFAR-10 is not in {Path(root) / CIFAR10.base_folder}. {help_}")


def synthetic(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Small deterministic CIFAR-shaped data (500 / 100 a class): a fixed colour pattern per class plus noise."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    prototypes = torch.rand(10, 3, 4, 4, generator=torch.Generator().manual_seed(42)) * 255  # coarse patterns
    prototypes = torch.nn.functional.interpolate(prototypes, size=32, mode="bilinear")  # (10, 3, 32, 32)
    y = torch.arange(10).repeat(500 if split == "train" else 100)
    y = y[torch.randperm(len(y), generator=g)]
    x = prototypes[y] + 60 * torch.randn(len(y), 3, 32, 32, generator=g)
    return x.clamp(0, 255).to(torch.uint8), y
