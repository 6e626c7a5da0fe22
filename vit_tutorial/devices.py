"""Which device to compute on: a name checked against what this machine has, with the fix in the error.

`train.fit`, `checkpoint.load` and the command line all resolve `device=` here, so that a typo,
a GPU that is not there or a device that holds no data fails at once, in one line.
"""
from __future__ import annotations

import torch


def resolve(name: str | torch.device | None) -> torch.device:
    """`name` as a torch.device that exists here; None picks CUDA when available, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {name!r}: use 'cpu', 'cuda' or 'cuda:N'.") from None
    if device.type == "cpu":
        return torch.device("cpu")  # one CPU device, whatever index was written
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r} asked for, but CUDA is not available here: use 'cpu'.")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} asked for, but this machine has {count} CUDA device(s): "
                             f"use 'cuda:0' .. 'cuda:{count - 1}'.")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} (Apple's GPU) asked for, but MPS is not available here: use 'cpu'.")
        return device
    why = ": it holds shapes, no data to train on" if device.type == "meta" else ""
    raise ValueError(f"device {name!r} cannot be used here{why}; use 'cpu' or 'cuda'.")
