"""Checking what users pass: config values (integers are integers, booleans booleans, numbers finite
and in range), `train.fit`'s settings and data sets.

Every model config (ViT, ConViT and CaiT through `vit.GridConfig`, and the CNN's) checks its
fields here, against their type hints and one table of generous limits. A typo fails at once with
the field's name and the fix; no config can ask for gigabytes (or for minutes of work spent on an
error message) by accident; and a value that is accepted is stored as the plain Python type its
field declares (so `heads=numpy.int64(2)` is saved to JSON as the int 2).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import fields
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

# field -> (test of the value, what the test asks for). Ints and floats are checked for their type first.
Rule = tuple[Callable[[Any], bool], str]
RULES: dict[str, Rule] = {
    "image_size": (lambda v: 1 <= v <= 4096, "positive (at most 4096 pixels)"),
    "patch_size": (lambda v: 1 <= v <= 4096, "positive (at most 4096 pixels)"),
    "in_channels": (lambda v: 1 <= v <= 64, "positive (at most 64 channels)"),
    "num_classes": (lambda v: 1 <= v <= 100_000, "positive (at most 100000 classes)"),
    "dim": (lambda v: 1 <= v <= 8192, "positive (at most 8192)"),
    "depth": (lambda v: 1 <= v <= 256, "positive (at most 256 blocks)"),
    "heads": (lambda v: 1 <= v <= 256, "positive (at most 256 heads)"),
    "depth_token_only": (lambda v: 1 <= v <= 64, "positive (at most 64 class-attention blocks)"),
    "local_up_to_layer": (lambda v: 0 <= v <= 256, "in [0, depth - 1]"),
    "width": (lambda v: 1 <= v <= 4096, "positive (at most 4096 channels)"),
    "stem_stride": (lambda v: 1 <= v <= 4, "1, 2, 3 or 4"),
    "blocks": (lambda v: 1 <= len(v) <= 8 and all(1 <= n <= 64 for n in v),
               "1 to 8 stages of 1 to 64 blocks each, e.g. (2, 2, 2)"),
    "mlp_ratio": (lambda v: 0 < v <= 64, "in (0, 64]"),
    "tokens_ratio": (lambda v: 0 < v <= 64, "in (0, 64]"),
    "channels_ratio": (lambda v: 0 < v <= 64, "in (0, 64]"),
    "drop_path": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "drop": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "locality_strength": (lambda v: 0 <= v <= 1000, "in [0, 1000] (0: no locality)"),
    "init_values": (lambda v: v is None or 0 < v <= 1000, "positive (or None for the depth rule)"),
    "pool": (lambda v: v in ("cls", "mean"), "'cls' or 'mean'"),
    "pos_embed": (lambda v: v in ("learned", "sincos"), "'learned' or 'sincos'"),
}
MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights: ViT-Huge fits, a typo in depth or dim does not
MAX_PATCHES = 128 * 128  # tokens per image: the attention maps grow with their square


def _as_int(value: Any) -> int | None:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


def _convert(name: str, value: Any, hint: str) -> Any:
    """`value` as the plain type that `hint` ('int', 'float | None', 'tuple[int, ...]', ...) names, or a ValueError."""
    if value is None and "None" in hint:
        return None
    base = hint.replace(" | None", "").strip()
    if base == "int" and _as_int(value) is not None:
        return _as_int(value)
    if base == "float" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
        raise ValueError(f"{name} must be a finite number, got {value}.")
    if base == "bool" and isinstance(value, (bool, np.bool_)):
        return bool(value)
    if base == "str" and isinstance(value, str):
        return value
    if base.startswith("tuple[int") and isinstance(value, (tuple, list)) and all(_as_int(v) is not None for v in value):
        return tuple(int(v) for v in value)
    wanted = {"int": "a whole number (an int)", "float": "a number", "bool": "True or False", "str": "a string"}
    hint_text = wanted.get(base, "a tuple of whole numbers" if base.startswith("tuple") else base)
    fix = ""
    if base == "int" and isinstance(value, float) and value.is_integer():
        fix = f": write {name}={int(value)}"
    elif base == "bool" and isinstance(value, str):
        fix = f": write {name}={value.strip().lower() in ('true', '1', 'yes')} without quotes"
    none = " or None" if "None" in hint else ""
    raise ValueError(f"{name} must be {hint_text}{none}, got {value!r} ({type(value).__name__}){fix}.")


def check_value(name: str, value: Any, hint: str, rule: Rule | None = None) -> Any:
    """`value` as the plain type `hint` names, after checking it against `rule`; a ValueError naming `name` if not."""
    value = _convert(name, value, hint)
    if rule is not None and value is not None and not rule[0](value):
        raise ValueError(f"{name} must be {rule[1]}, got {value!r}.")
    return value


def check_fields(config: Any) -> None:
    """Check (and normalise in place) every field of a dataclass config: its type, then its range."""
    for f in fields(config):
        setattr(config, f.name, check_value(f.name, getattr(config, f.name), str(f.type), RULES.get(f.name)))


def check_size(config: Any, parameters: int) -> None:
    """Refuse a config whose model would hold more than MAX_PARAMETERS (an estimate is enough)."""
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"this {type(config).__name__} asks for about {parameters / 1e9:.1f} billion parameters "
            f"({parameters * 4 / 2**30:.0f} GiB of float32), more than the limit of {MAX_PARAMETERS / 1e9:.0f} billion: "
            "check depth, dim, width and mlp_ratio."
        )


# train.fit's numbers: (type, test, what the test asks for)
FIT_SETTINGS: dict[str, tuple[str, Callable, str]] = {
    "epochs": ("int", lambda v: v >= 1, "at least 1"), "lr": ("float", lambda v: 0 < v <= 1000, "positive (at most 1000)"),
    "batch_size": ("int", lambda v: v >= 1, "at least 1"), "weight_decay": ("float", lambda v: v >= 0, "0 or more"),
    "warmup_epochs": ("float", lambda v: v >= 0, "0 or more"), "label_smoothing": ("float", lambda v: 0 <= v < 1, "in [0, 1)"),
    "clip_grad": ("float | None", lambda v: v > 0, "positive (None: no clipping)"),
    "seed": ("int", lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
}


def check_settings(given: dict[str, Any]) -> dict[str, Any]:
    """`train.fit`'s numbers (epochs, lr, ...), each checked against FIT_SETTINGS and converted to its plain type."""
    return {k: check_value(k, v, *FIT_SETTINGS[k][:1], FIT_SETTINGS[k][1:]) for k, v in given.items()}


def check_data(dataset, name: str, num_classes: int | None) -> None:
    """Refuse an empty data set, and labels outside 0 .. num_classes - 1 where the data set shows its labels."""
    ds = getattr(dataset, "dataset", dataset)  # a DataLoader's data set
    if not hasattr(ds, "__len__"):
        return
    if len(ds) == 0:
        raise ValueError(f"{name} is empty: pass a data set with images, e.g. data.load('mnist5k', 'train').")
    targets = getattr(ds, "targets", None)
    if targets is None and isinstance(ds, TensorDataset) and len(ds.tensors) > 1:
        targets = ds.tensors[1]
    t = torch.as_tensor(targets) if targets is not None else None
    if num_classes and t is not None and t.ndim == 1 and not t.is_floating_point() and len(t):
        low, high = t.min().item(), t.max().item()
        if low < 0 or high >= num_classes:
            raise ValueError(f"{name} has labels from {low} to {high}, but the model has {num_classes} classes "
                             f"(labels 0 .. {num_classes - 1}): fix the labels or build the model with num_classes={high + 1}.")


def make_config(cls: type, config: Any, kwargs: dict) -> Any:
    """A model's config from `Model(config)` or `Model(**settings)`: never both, and of the right class."""
    if config is None:
        try:
            return cls(**kwargs)
        except TypeError as err:  # an unknown or misspelt setting
            raise ValueError(f"cannot make a {cls.__name__}: {err}; its settings are {[f.name for f in fields(cls)]}.") from None
    if kwargs:
        raise ValueError(
            f"got a {type(config).__name__} and also the settings {sorted(kwargs)}: they would be ignored. "
            f"Pass one or the other, e.g. dataclasses.replace(config, {', '.join(f'{k}=...' for k in sorted(kwargs))})."
        )
    if not isinstance(config, cls):
        raise ValueError(f"expected a {cls.__name__}, got a {type(config).__name__}: pass {cls.__name__}(...) or keyword settings.")
    return config
