"""Profiles: how big every experiment is, in one place, for CI (`smoke`), a laptop (`cpu`), a GPU (`gpu`).

A notebook starts with `profile = vit_tutorial.profiles.get()` and takes its data set, model
sizes, epochs and batch sizes from `profile`; nothing in a notebook names a device or a size.
The profile comes from the environment variable VIT_TUTORIAL_PROFILE, else `gpu` when CUDA
is available, else `cpu`.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

ENV_VAR = "VIT_TUTORIAL_PROFILE"
NAMES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class Profile:
    """One profile: its name, data set and a dict of settings for each experiment (`runs`)."""

    name: str
    dataset: str  # "mnist5k" (bundled, offline) or "cifar10" (downloaded)
    runs: dict[str, dict] = field(default_factory=dict)

    def device(self) -> torch.device:
        return device()

    def run(self, key: str) -> dict:
        """The settings of one experiment, e.g. `profile.run("vit")`; a copy, safe to change."""
        if key not in self.runs:
            raise ValueError(f"profile {self.name!r} has no experiment {key!r}; it has {sorted(self.runs)}.")
        return dict(self.runs[key])


# Model sizes shared by the profiles. MNIST: 28 x 28, 1 channel, 10 classes.
_MNIST = dict(image_size=28, in_channels=1, num_classes=10)
_CIFAR = dict(image_size=32, in_channels=3, num_classes=10)

_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        "mnist5k",
        {
            "vit": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0), epochs=1, batch_size=128, lr=3e-3),
            "cnn": dict(model=dict(in_channels=1, num_classes=10, width=8), epochs=1, batch_size=128, lr=3e-3),
        },
    ),
    "cpu": Profile(
        "cpu",
        "mnist5k",
        {
            "vit": dict(
                model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, drop_path=0.1),
                epochs=60, batch_size=128, lr=3e-3,
            ),
            "cnn": dict(model=dict(in_channels=1, num_classes=10, width=16), epochs=20, batch_size=128, lr=3e-3),
        },
    ),
    "gpu": Profile(
        "gpu",
        "cifar10",
        {
            "vit": dict(
                model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0, drop_path=0.1),
                epochs=50, batch_size=256, lr=1e-3,
            ),
            "cnn": dict(model=dict(in_channels=3, num_classes=10, width=64), epochs=30, batch_size=256, lr=2e-3),
        },
    ),
}


def get(name: str | None = None) -> Profile:
    """The profile named `name`, else the one VIT_TUTORIAL_PROFILE names, else gpu/cpu by hardware."""
    name = name or os.environ.get(ENV_VAR) or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(NAMES)} (set {ENV_VAR}).")
    return _PROFILES[name]


def device() -> torch.device:
    """The best device here: CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a torch generator with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)
