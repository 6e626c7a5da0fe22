"""The model families by name: `build("vit", **config)` makes a fresh model of a kind.

Checkpoints store a kind and a config, profiles and the command line name kinds; this registry
turns a name back into a class. A class is imported only when its kind is used.
"""
from __future__ import annotations

import importlib
from typing import Any

from torch import nn

# kind -> (module, class). Imported on first use: deit/convit/cait need not exist to save a ViT.
MODELS: dict[str, tuple[str, str]] = {
    "vit": ("vit_tutorial.vit", "ViT"),
    "cnn": ("vit_tutorial.cnn", "ResNet"),
    "deit": ("vit_tutorial.deit", "DistilledViT"),
    "convit": ("vit_tutorial.convit", "ConViT"),
    "cait": ("vit_tutorial.cait", "CaiT"),
    "mixer": ("vit_tutorial.mixer", "Mixer"),
}


def model_class(kind: str) -> type[nn.Module]:
    """The class registered for `kind`; a clear ValueError if the kind is unknown or won't import."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}: use one of {', '.join(MODELS)}.")
    module, name = MODELS[kind]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model kind {kind!r} is not available: cannot import {module}.{name} ({err}).") from None


def build(kind: str, **config: Any) -> nn.Module:
    """A fresh model of `kind` from its config dict, e.g. `build("vit", **profile.run("vit")["model"])`."""
    cls = model_class(kind)
    try:
        return cls(**config)
    except (TypeError, ValueError) as err:  # an unknown, missing or wrong setting
        raise ValueError(f"cannot build {cls.__name__} from {config}: {err}") from None


def kind_of(model: nn.Module) -> str:
    """The registry kind of a model instance (its class, looked up without importing anything)."""
    cls = type(getattr(model, "_orig_mod", model))  # unwrap torch.compile
    for kind, (module, name) in MODELS.items():
        if (cls.__module__, cls.__name__) == (module, name):
            return kind
    raise ValueError(f"{cls.__name__} is not a registered model; pass kind= one of {', '.join(MODELS)}.")
