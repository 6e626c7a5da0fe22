"""vit_tutorial: the model code of the Vision Transformer tutorial, one concept per module.

Submodules load on first use (`vit_tutorial.profiles`, `vit_tutorial.convit`, ...), so that
`import vit_tutorial` stays quick in a notebook's setup cell.
"""
from __future__ import annotations

import importlib

from .vit import ViT, ViTConfig

__version__ = "0.1.0"
_MODULES = (
    "tokens", "attention", "blocks", "canvas", "charts", "diagrams", "exercises", "exercise_checks", "measures", "studies", "verdict", "vit", "deit", "convit", "cait", "mixer", "cnn",
    "models", "data", "display", "train", "experiments", "checkpoint", "analysis", "plots", "timm_compat", "profiles",
    "checks", "devices", "folders", "history", "resuming", "state_tree", "cifar10", "timm_audit", "timm_families",
)


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'vit_tutorial' has no attribute {name!r}")


__all__ = ["ViT", "ViTConfig", *_MODULES]
