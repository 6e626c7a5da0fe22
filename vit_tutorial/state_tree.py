"""Nested training state <-> a JSON skeleton plus flat tensors, so that a checkpoint never pickles.

An optimizer's state dict, a scheduler's and the RNG states are nests of dicts, lists, tuples,
numbers, strings, tensors and NumPy arrays. `split` replaces every tensor by a reference into a
flat dict (which safetensors stores) and keeps the rest as JSON; `join` puts them back together,
tuples as tuples and integer keys as integers.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def split(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """Replace every tensor in a nested structure by a reference into `tensors` (JSON-able rest)."""
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj.copy())
        tensors[key] = obj
        return {"__ndarray__": key}
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: split(v, tensors, f"{key}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, split(v, tensors, f"{key}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    raise ValueError(f"cannot store a {type(obj).__name__} in a checkpoint (at {key!r}); use tensors and plain values.")


def join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `split`."""
    if isinstance(obj, list):
        return [join(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy()
    if "__tuple__" in obj:
        return tuple(join(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: join(v, tensors) for k, v in obj["__items__"]}
    return {k: join(v, tensors) for k, v in obj.items()}

