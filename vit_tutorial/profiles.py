"""Profiles: how big every experiment is, in one place, for CI (`smoke`), a laptop (`cpu`), a GPU (`gpu`).

A notebook starts with `profile = vit_tutorial.profiles.get()` and takes its data set, model
sizes, epochs and batch sizes from `profile`; nothing in a notebook names a device or a size.
The profile comes from the environment variable VIT_TUTORIAL_PROFILE, else `gpu` when CUDA
is available, else `cpu`.
"""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

ENV_VAR = "VIT_TUTORIAL_PROFILE"
NAMES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class Profile:
    """One profile: its name, data set, the seeds of its studies and the settings of each experiment (`runs`)."""

    name: str
    dataset: str  # "canvas" (made from the bundled digits, offline) or "cifar10" (downloaded)
    runs: dict[str, dict] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)  # every study trains each arm once per seed (the verdict needs 3)

    def device(self) -> torch.device:
        return device()

    def run(self, key: str) -> dict:
        """The settings of one experiment, e.g. `profile.run("vit")`: a deep copy, safe to change."""
        if key not in self.runs:
            raise ValueError(f"profile {self.name!r} has no experiment {key!r}; it has {sorted(self.runs)}.")
        return copy.deepcopy(self.runs[key])


# Model sizes shared by the profiles. MNIST: 28 x 28, 1 channel, 10 classes.
_MNIST = dict(image_size=28, in_channels=1, num_classes=10)
_CIFAR = dict(image_size=32, in_channels=3, num_classes=10)

_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        "mnist5k",
        {
            # subset: a stratified quarter of the training set, so that a run takes seconds
            "vit": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0),
                        epochs=1, batch_size=128, lr=3e-3, warmup_epochs=0.2, subset=0.25, augment=dict(shift=2)),
            "cnn": dict(model=dict(in_channels=1, num_classes=10, width=8, blocks=(1, 1, 1)),
                        epochs=1, batch_size=128, lr=3e-3, warmup_epochs=0.2, subset=0.25, augment=dict(shift=2)),
            "tokens": dict(photo_size=224, photo_patch=16, digit_patches=(7, 4), dim=64, sincos_dim=64, falloff_dims=(16, 64, 256)),
            "self_attention": dict(
                dim=32, patch_size=4, scale_dims=(4, 16, 64, 256), scale_tokens=64, scale_trials=4,
                cost_tokens=(64, 128, 256, 512), cost_heads=2, cost_head_dim=32, cost_repeats=2,
            ),
            "multi_head": dict(dim=32, heads=4, patch_size=4, images=100, digits=3, ablation_images=200),
            # notebook 04. shipped: load data/checkpoints/{vit,cnn} instead of the full runs (plus a tiny real run);
            # runs on a fraction of the data train for epoch_scale x the epochs (cpu, gpu: 8, about the full run's steps)
            "vit_vs_cnn": dict(shipped=True, fractions=(0.1,), epoch_scale=1),
            "vit_analysis": dict(images=100, digits=3),
            # notebook 05: SD picture; regularisation ablation on 25% of the data; DeiT students (shipped: load
            # data/checkpoints/deit, hard-distilled from the cnn, for the analysis; the runs here are tiny)
            "deit_pictures": dict(depth=12, drop_path=0.3, samples=24, count_samples=4000, images=8),
            "deit_ablation": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0), epochs=1, batch_size=64,
                                  lr=2e-3, warmup_epochs=0.2, subset=0.25, drop_path=0.1, erasing=0.25, seeds=(0,)),
            "deit": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0), epochs=1, batch_size=64, lr=2e-3,
                         warmup_epochs=0.2, subset=0.25, alpha=0.5, tau=1.0, teacher="cnn", distillation="hard", shipped=True),
            # notebook 06: GPSA kernels; ConViT vs ViT (same size, same recipe) on fractions of the training set.
            # shipped: the trained ConViT is data/checkpoints/convit, the sweep data/results/convit_sweep.json
            # (both from the cpu profile); the runs here are a tiny check of the same code.
            "convit_pictures": dict(grid=9, heads=9, alphas=(0.0, 0.3, 1.0, 3.0)),
            "convit": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=4, mlp_ratio=2.0, qkv_bias=False, local_up_to_layer=1),
                           epochs=1, batch_size=1000, lr=3e-3, warmup_epochs=0.2, augment=dict(shift=2)),
            "convit_vit": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=4, mlp_ratio=2.0, qkv_bias=False),
                               epochs=1, batch_size=1000, lr=3e-3, warmup_epochs=0.2, augment=dict(shift=2)),
            "convit_sweep": dict(fractions=(0.05,), seeds=(0,), repeat_below=0.1, images=100, shipped=True),
            # notebook 07: LayerScale ablation (a deep thin ViT with / without), CaiT vs a ViT of its size, attention cost.
            # shipped: the analysis uses data/checkpoints/cait (cpu profile); the runs here are a tiny check of the same code.
            "layerscale": dict(model=dict(_MNIST, patch_size=7, dim=16, depth=6, heads=2, mlp_ratio=2.0), epochs=1, batch_size=128,
                               lr=1e-2, warmup_epochs=0.2, subset=0.25, init_values=0.1, seeds=(0,)),
            "cait": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0, depth_token_only=1), epochs=1,
                         batch_size=128, lr=3e-3, warmup_epochs=0.2, subset=0.25, augment=dict(shift=2)),
            "cait_vit": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=3, heads=2, mlp_ratio=2.0), epochs=1,
                             batch_size=128, lr=3e-3, warmup_epochs=0.2, subset=0.25, augment=dict(shift=2)),
            "cait_study": dict(shipped=True, digits=2),
            "cait_cost": dict(dim=192, heads=4, batch=1, tokens=(32, 64, 128, 256), repeats=2),
        },
    ),
    "cpu": Profile(
        "cpu",
        "mnist5k",
        {
            # MNIST 5k test accuracy, seed 0, about 150 s (ViT) and 40 s (CNN) on one core (bench/learning.py):
            # ViT 97.3% (30 epochs: 95.1%; shifts of 3 px and 5 warmup epochs: 95.9% in 60), CNN 98.7%
            "vit": dict(
                model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, drop_path=0.1),
                epochs=50, batch_size=128, lr=3e-3, warmup_epochs=2, augment=dict(shift=2),
            ),
            "cnn": dict(model=dict(in_channels=1, num_classes=10, width=8, blocks=(1, 1, 1)),
                        epochs=15, batch_size=128, lr=1e-2, warmup_epochs=1, augment=dict(shift=2)),
            "tokens": dict(photo_size=224, photo_patch=16, digit_patches=(7, 4), dim=64, sincos_dim=64, falloff_dims=(16, 32, 64, 128, 256, 768)),
            "self_attention": dict(
                dim=32, patch_size=4, scale_dims=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), scale_tokens=196, scale_trials=32,
                cost_tokens=(128, 256, 512, 1024, 2048, 4096), cost_heads=4, cost_head_dim=32, cost_repeats=5,
            ),
            "multi_head": dict(dim=32, heads=4, patch_size=4, images=1000, digits=3, ablation_images=1000),
            "vit_vs_cnn": dict(shipped=False, fractions=(0.1,), epoch_scale=8),
            "vit_analysis": dict(images=1000, digits=3),
            "deit_pictures": dict(depth=12, drop_path=0.3, samples=32, count_samples=20000, images=8),
            # no augmentation: on 25% of the data, 25 epochs, the plain ViT overfits (train acc ~99%), which is the point
            "deit_ablation": dict(model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0), epochs=25, batch_size=64,
                                  lr=2e-3, warmup_epochs=1, subset=0.25, drop_path=0.1, erasing=0.25, seeds=(0, 1)),
            # the DeiT student: the cpu ViT's size, hard-distilled from data/checkpoints/cnn by `make checkpoints`;
            # a short schedule without augmentation (shifts slow a short ViT run down) so that five runs fit the budget
            "deit": dict(model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, drop_path=0.1), epochs=10,
                         batch_size=64, lr=2e-3, warmup_epochs=1, alpha=0.5, tau=1.0, teacher="cnn", distillation="hard", shipped=False),
            # notebook 06 (and `make checkpoints` for convit): ConViT and a ViT of the same size, same recipe; every fraction of
            # the data trains for as many steps as the full run; fractions below repeat_below are repeated with every seed
            "convit_pictures": dict(grid=9, heads=9, alphas=(0.0, 0.3, 1.0, 3.0)),
            "convit": dict(model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, drop_path=0.1, qkv_bias=False,
                                      local_up_to_layer=4), epochs=30, batch_size=128, lr=3e-3, warmup_epochs=5, augment=dict(shift=3)),
            "convit_vit": dict(model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, drop_path=0.1, qkv_bias=False),
                               epochs=30, batch_size=128, lr=3e-3, warmup_epochs=5, augment=dict(shift=3)),
            "convit_sweep": dict(fractions=(0.01, 0.05, 0.1, 0.25, 1.0), seeds=(0, 1, 2), repeat_below=0.05, images=500, shipped=False),
            # notebook 07 (and `make checkpoints` for cait): 12 thin blocks with / without LayerScale; CaiT (4 SA + 2 CA blocks)
            # against a ViT of the same size (6 blocks), same recipe; time of SA vs CA blocks (CaiT-XXS width) for growing N
            "layerscale": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=12, heads=2, mlp_ratio=2.0), epochs=15, batch_size=128,
                               lr=1e-2, warmup_epochs=2, init_values=0.1, seeds=(0, 1)),
            "cait": dict(model=dict(_MNIST, patch_size=7, dim=64, depth=4, heads=4, mlp_ratio=2.0, drop_path=0.1, depth_token_only=2),
                         epochs=30, batch_size=128, lr=3e-3, warmup_epochs=5, augment=dict(shift=3)),
            "cait_vit": dict(model=dict(_MNIST, patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, drop_path=0.1),
                             epochs=30, batch_size=128, lr=3e-3, warmup_epochs=5, augment=dict(shift=3)),
            "cait_study": dict(shipped=False, digits=4),
            "cait_cost": dict(dim=192, heads=4, batch=1, tokens=(64, 128, 256, 512, 1024, 2048), repeats=3),
        },
    ),
    "gpu": Profile(
        "gpu",
        "cifar10",
        {
            "vit": dict(
                model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0, drop_path=0.1),
                epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True),
            ),
            "cnn": dict(model=dict(in_channels=3, num_classes=10, width=64), epochs=30, batch_size=256, lr=2e-3,
                        warmup_epochs=2, augment=dict(shift=4, flip=True)),
            "tokens": dict(photo_size=224, photo_patch=16, digit_patches=(7, 4), dim=64, sincos_dim=64, falloff_dims=(16, 32, 64, 128, 256, 768)),
            "self_attention": dict(
                dim=32, patch_size=4, scale_dims=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), scale_tokens=196, scale_trials=32,
                cost_tokens=(256, 512, 1024, 2048, 4096, 8192, 16384), cost_heads=8, cost_head_dim=64, cost_repeats=5,
            ),
            "multi_head": dict(dim=32, heads=4, patch_size=4, images=1000, digits=3, ablation_images=1000),
            "vit_vs_cnn": dict(shipped=False, fractions=(0.1,), epoch_scale=8),
            "vit_analysis": dict(images=1000, digits=3),
            "deit_pictures": dict(depth=12, drop_path=0.3, samples=32, count_samples=20000, images=8),
            "deit_ablation": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0), epochs=50, batch_size=128,
                                  lr=1e-3, warmup_epochs=5, subset=0.1, augment=dict(shift=4, flip=True), drop_path=0.1, erasing=0.25,
                                  seeds=(0, 1, 2)),
            "deit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0, drop_path=0.1), epochs=50,
                         batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True), alpha=0.5, tau=1.0, teacher="cnn",
                         distillation="hard", shipped=False),
            "convit_pictures": dict(grid=9, heads=9, alphas=(0.0, 0.3, 1.0, 3.0)),
            "convit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=4, mlp_ratio=2.0, drop_path=0.1, qkv_bias=False,
                                      local_up_to_layer=7), epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5,
                           augment=dict(shift=4, flip=True)),
            "convit_vit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=4, mlp_ratio=2.0, drop_path=0.1, qkv_bias=False),
                               epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "convit_sweep": dict(fractions=(0.01, 0.05, 0.1, 0.25, 1.0), seeds=(0, 1, 2), repeat_below=0.3, images=500, shipped=False),
            "layerscale": dict(model=dict(_CIFAR, patch_size=4, dim=96, depth=12, heads=3, mlp_ratio=2.0), epochs=30, batch_size=256,
                               lr=2e-3, warmup_epochs=3, augment=dict(shift=4, flip=True), init_values=0.1, seeds=(0, 1)),
            "cait": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=7, heads=3, mlp_ratio=2.0, drop_path=0.1, depth_token_only=2),
                         epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "cait_vit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0, drop_path=0.1),
                             epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "cait_study": dict(shipped=False, digits=4),
            "cait_cost": dict(dim=192, heads=4, batch=1, tokens=(256, 512, 1024, 2048, 4096, 8192), repeats=5),
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
