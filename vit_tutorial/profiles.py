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


# Model sizes shared by the profiles. The canvas: 56 x 56, one channel, ten digits; with 7-pixel
# patches an 8 x 8 grid of 64 tokens. The plain digits (mnist5k): 28 x 28. CIFAR-10: 32 x 32 RGB.
_CANVAS = dict(image_size=56, in_channels=1, num_classes=10)
_MNIST = dict(image_size=28, in_channels=1, num_classes=10)
_CIFAR = dict(image_size=32, in_channels=3, num_classes=10)

# The ViT recipe of the canvas (cpu profile), from single runs of seed 0 (README "The recipe"):
# - relocation (each digit moved anywhere on the canvas, every epoch): the model must learn that a
#   digit is the same digit wherever it is (20 epochs: 65% with it, 61% with shifts of 6 pixels);
# - a fixed 2D sin-cos position table (as in Beyer et al., 2022) and no stochastic depth: the
#   model underfits at this budget (train accuracy = test accuracy), so nothing that slows learning;
# - a small model (width 32, 4 blocks, 2 heads), so that enough epochs fit: the ViT needs many
#   passes (width 48: 74% after 40 epochs, 87% after 65, but at 60% of the speed; width 64 with
#   6 blocks and 4 heads learned no faster per epoch at a third of the speed);
# - batch 64 and learning rate 6e-3 (3e-3: 74% instead of 78% at 40 epochs; 1e-2 diverged);
# - no label smoothing (the DeiT notebook needs teachers without it; with 0.1: 71% instead of 83% at 65 epochs).
_VIT = dict(model=dict(_CANVAS, patch_size=7, dim=32, depth=4, heads=2, mlp_ratio=2.0, pos_embed="sincos"),
            epochs=75, batch_size=64, lr=6e-3, warmup_epochs=2, label_smoothing=0.0, augment=dict(relocate=True))
# The CNN: a small ResNet whose stem halves the canvas (56 -> 28), so it costs what it cost on 28 x 28 digits.
_CNN = dict(model=dict(in_channels=1, num_classes=10, width=8, blocks=(1, 1, 1), stem_stride=2),
            epochs=15, batch_size=64, lr=6e-3, warmup_epochs=1, label_smoothing=0.0, augment=dict(relocate=True))


def _tiny(run: dict, **changes) -> dict:
    """The smoke version of a cpu run: the same code at a tiny size (one epoch on a quarter of the data)."""
    run = copy.deepcopy(run)
    if "dim" in run.get("model", {}):
        run["model"].update(dim=16, depth=min(run["model"]["depth"], 2))
        if "heads" in run["model"]:
            run["model"]["heads"] = 2
        if "local_up_to_layer" in run["model"]:  # ConViT: one GPSA block, then one with the class token
            run["model"]["local_up_to_layer"] = 1
    elif "width" in run.get("model", {}):
        run["model"].update(width=4)
    run.update(epochs=1, warmup_epochs=0.2, subset=0.25)
    run.update(changes)
    return run


_CPU_RUNS = {
    # notebooks 01-02: the plain digits and a photo; no training
    "tokens": dict(photo_size=224, photo_patch=16, digit_patches=(7, 4), dim=64, sincos_dim=64, falloff_dims=(16, 32, 64, 128, 256, 768)),
    "self_attention": dict(
        dim=32, patch_size=4, scale_dims=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), scale_tokens=196, scale_trials=32,
        cost_tokens=(128, 256, 512, 1024, 2048, 4096), cost_heads=4, cost_head_dim=32, cost_repeats=5,
    ),
    # notebook 03: the head split on plain digits, then the heads of the shipped canvas ViT on `images` test images
    "multi_head": dict(dim=32, heads=4, patch_size=4, images=1000, digits=3, ablation_images=1000),
    # notebook 04 (and `make checkpoints`): the ViT and the CNN on the canvas
    "vit": _VIT,
    "vit_learned": dict(_VIT, model=dict(_VIT["model"], pos_embed="learned")),  # the same with a learned position table
    "cnn": _CNN,
    # ViT and CNN on fractions of the training set, each trained for the full run's number of steps
    "vit_vs_cnn": dict(fractions=(1.0, 0.1, 0.03)),
    "vit_analysis": dict(images=1000, digits=3),
    # LayerNorm before or after each branch: 12 thin blocks on the plain digits, a short run
    "norm_placement": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=12, heads=2, mlp_ratio=2.0), epochs=10, batch_size=128,
                           lr=3e-3, warmup_epochs=1, dataset="mnist5k", augment=dict(shift=2)),
    # the trained ViT on a larger canvas, its position table interpolated or extended, before and after a
    # short fine-tuning there (`epochs` on `fraction` of the training set, at a tenth of the ViT's learning rate)
    "resolution": dict(size=84, images=1000, epochs=3, fraction=1.0, lr=6e-4),
    # notebook 05 (and `make checkpoints`): DeiT. The teachers are the shipped cnn and vit (no label smoothing) and
    # cnn_weak, the CNN recipe cut to 3 epochs: less accurate than the ViT teacher (a control for accuracy).
    "cnn_weak": dict(_CNN, epochs=3),
    "deit_pictures": dict(depth=12, drop_path=0.3, samples=32, count_samples=20000, images=8),
    # the students: the ViT recipe's model with a distillation token, DeiT's augmentation (the digit moved,
    # random erasing, mixup or cutmix: the teacher is asked about the same view), two thirds of its budget
    "deit": dict(model=_VIT["model"], epochs=50, batch_size=64, lr=6e-3, warmup_epochs=2, label_smoothing=0.0,
                 augment=dict(relocate=True, erasing=0.25, mixup=0.8, cutmix=1.0), teacher="cnn", distillation="hard",
                 alpha=0.5, tau=1.0),
    # the regularisation ablation: 10% of the training set for 300 epochs, the ViT recipe's augmentation kept
    "deit_ablation": dict(_VIT, fraction=0.1, steps=2100, drop_path=0.1, erasing=0.25),
    # notebook 06 (and `make checkpoints` for convit): ConViT with 9 heads (3 x 3 kernels) against a ViT of the
    # same size, both with the ViT recipe's training; 9 heads of 4 channels cost three times the recipe ViT's time
    # per image, so the sweep gives every run 20 epochs' worth of steps at 100 % (1260), the same at every fraction
    "convit_pictures": dict(grid=9, heads=9, alphas=(0.0, 0.3, 1.0, 3.0)),
    "convit": dict(_VIT, model=dict(_CANVAS, patch_size=7, dim=36, depth=4, heads=9, mlp_ratio=2.0, local_up_to_layer=3),
                   epochs=20),
    "convit_vit": dict(_VIT, model=dict(_VIT["model"], dim=36, heads=9), epochs=20),
    # (the paper's five fractions and 2 %, 3 seeds of each model at each: 36 runs of 2-4 minutes on one core; the
    # long runs, seed 0 of both models on all the data, get twice the sweep's steps (long_steps) and the paper's
    # 300 epochs (gate_steps: the gates over a schedule as long as the paper's))
    "convit_sweep": dict(fractions=(0.02, 0.05, 0.1, 0.3, 0.5, 1.0), long_steps=2520, gate_steps=18900, images=500),
    # notebook 07 (and `make checkpoints` for cait): LayerScale across depths on the plain digits (width 32; 24
    # blocks at most: a 12-block run takes 40 s on one core, so the 12 runs of 48 blocks would cost more than all
    # the rest), its arms with and without LayerScale at `lrs`; CaiT (3 self-attention + 1 class-attention blocks:
    # the ViT recipe's 4) trained with the ViT recipe on the canvas; class attention's maps; attention cost
    "layerscale": dict(model=dict(_MNIST, patch_size=7, dim=32, depth=12, heads=2, mlp_ratio=2.0), epochs=10, batch_size=128,
                       lr=3e-3, warmup_epochs=1, label_smoothing=0.0, dataset="mnist5k", augment=dict(shift=2),
                       depths=(6, 12, 24), lrs=(3e-3, 1e-2)),
    "cait": dict(_VIT, model=dict(_VIT["model"], depth=3, depth_token_only=1)),
    "cait_study": dict(digits=4, images=1000),
    "cait_cost": dict(dim=192, heads=4, batch=1, tokens=(64, 128, 256, 512, 1024, 2048), repeats=3),
    # notebook 08 (and `make checkpoints`): MLP-Mixer with the ViT recipe's training and about its parameters;
    # its cost against attention for canvases of these sizes (7-pixel patches: 16 to 256 tokens)
    "mixer": dict(_VIT, model=dict(_CANVAS, patch_size=7, dim=32, depth=4, tokens_ratio=1.0, channels_ratio=2.0)),
    "mixer_cost": dict(sizes=(28, 56, 84, 112), batch=64, repeats=3),
}

_SMOKE_RUNS = {
    key: _tiny(run) if "model" in run else copy.deepcopy(run) for key, run in _CPU_RUNS.items()
} | {
    "tokens": dict(photo_size=224, photo_patch=16, digit_patches=(7, 4), dim=64, sincos_dim=64, falloff_dims=(16, 64, 256)),
    "self_attention": dict(
        dim=32, patch_size=4, scale_dims=(4, 16, 64, 256), scale_tokens=64, scale_trials=4,
        cost_tokens=(64, 128, 256, 512), cost_heads=2, cost_head_dim=32, cost_repeats=2,
    ),
    "multi_head": dict(dim=32, heads=4, patch_size=4, images=100, digits=3, ablation_images=200),
    "vit_vs_cnn": dict(fractions=(1.0, 0.1)),
    "vit_analysis": dict(images=100, digits=3),
    "resolution": dict(size=84, images=100, epochs=1, fraction=0.05, lr=6e-4),
    "deit_pictures": dict(depth=12, drop_path=0.3, samples=24, count_samples=4000, images=8),
    "deit_ablation": _tiny(_CPU_RUNS["deit_ablation"], steps=20),
    "convit_sweep": dict(fractions=(0.05, 1.0), long_steps=20, gate_steps=30, images=100),
    "layerscale": _tiny(_CPU_RUNS["layerscale"], depths=(2, 4), lrs=(3e-3, 1e-2)),
    "cait_study": dict(digits=2, images=100),
    "mixer_cost": dict(sizes=(28, 56), batch=8, repeats=1),
    "cait_cost": dict(dim=192, heads=4, batch=1, tokens=(32, 64, 128, 256), repeats=2),
}

_PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "canvas", _SMOKE_RUNS, seeds=(0,)),
    "cpu": Profile("cpu", "canvas", _CPU_RUNS),
    "gpu": Profile(
        "gpu",
        "cifar10",
        {
            "vit": dict(
                model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0, drop_path=0.1),
                epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True),
            ),
            "vit_learned": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0, drop_path=0.1),
                                epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "cnn": dict(model=dict(in_channels=3, num_classes=10, width=64), epochs=30, batch_size=256, lr=2e-3,
                        warmup_epochs=2, augment=dict(shift=4, flip=True)),
            "tokens": dict(photo_size=224, photo_patch=16, digit_patches=(7, 4), dim=64, sincos_dim=64, falloff_dims=(16, 32, 64, 128, 256, 768)),
            "self_attention": dict(
                dim=32, patch_size=4, scale_dims=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), scale_tokens=196, scale_trials=32,
                cost_tokens=(256, 512, 1024, 2048, 4096, 8192, 16384), cost_heads=8, cost_head_dim=64, cost_repeats=5,
            ),
            "multi_head": dict(dim=32, heads=4, patch_size=4, images=1000, digits=3, ablation_images=1000),
            "vit_vs_cnn": dict(fractions=(1.0, 0.1, 0.03)),
            "vit_analysis": dict(images=1000, digits=3),
            "norm_placement": dict(model=dict(_CIFAR, patch_size=4, dim=96, depth=12, heads=3, mlp_ratio=2.0), epochs=20,
                                   batch_size=256, lr=2e-3, warmup_epochs=2, augment=dict(shift=4, flip=True)),
            "resolution": dict(size=48, images=1000, epochs=3, fraction=1.0, lr=1e-4),
            "cnn_weak": dict(model=dict(in_channels=3, num_classes=10, width=64), epochs=3, batch_size=256, lr=2e-3,
                             warmup_epochs=1, augment=dict(shift=4, flip=True)),
            "deit_pictures": dict(depth=12, drop_path=0.3, samples=32, count_samples=20000, images=8),
            "deit_ablation": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0), batch_size=128,
                                  lr=1e-3, warmup_epochs=5, epochs=50, fraction=0.1, steps=4000, augment=dict(shift=4, flip=True),
                                  drop_path=0.1, erasing=0.25),
            "deit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=3, mlp_ratio=2.0), epochs=50, batch_size=256,
                         lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True, erasing=0.25, mixup=0.8, cutmix=1.0),
                         alpha=0.5, tau=1.0, teacher="cnn", distillation="hard"),
            "convit_pictures": dict(grid=9, heads=9, alphas=(0.0, 0.3, 1.0, 3.0)),
            "convit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=4, mlp_ratio=2.0, drop_path=0.1, qkv_bias=False,
                                      local_up_to_layer=7), epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5,
                           augment=dict(shift=4, flip=True)),
            "convit_vit": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, heads=4, mlp_ratio=2.0, drop_path=0.1, qkv_bias=False),
                               epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "convit_sweep": dict(fractions=(0.02, 0.05, 0.1, 0.3, 0.5, 1.0), long_steps=20000, gate_steps=58800, images=500),
            "layerscale": dict(model=dict(_CIFAR, patch_size=4, dim=96, depth=12, heads=3, mlp_ratio=2.0), epochs=30, batch_size=256,
                               lr=2e-3, warmup_epochs=3, augment=dict(shift=4, flip=True), depths=(6, 12, 24, 48), lrs=(2e-3, 6e-3)),
            "cait": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=8, heads=3, mlp_ratio=2.0, drop_path=0.1, depth_token_only=1),
                         epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "cait_study": dict(digits=4, images=1000),
            "cait_cost": dict(dim=192, heads=4, batch=1, tokens=(256, 512, 1024, 2048, 4096, 8192), repeats=5),
            "mixer": dict(model=dict(_CIFAR, patch_size=4, dim=192, depth=9, tokens_ratio=1.0, channels_ratio=2.0, drop_path=0.1),
                          epochs=50, batch_size=256, lr=1e-3, warmup_epochs=5, augment=dict(shift=4, flip=True)),
            "mixer_cost": dict(sizes=(32, 64, 96, 128), batch=256, repeats=5),
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
