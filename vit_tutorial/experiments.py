"""A profile's experiment, end to end: its settings, its data, its model (and teacher), then `train.fit`.

`model, history = fit_profile("vit", profile)` trains exactly what the notebooks, the command
line, `make checkpoints` and the bench scripts train; `run_settings` splits a run's settings for
those who build the pieces themselves.
"""
from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from . import checkpoint, data, profiles
from .train import History, fit

FIT_OPTIONS = [p for p in inspect.signature(fit).parameters if p not in ("model", "train_data", "test_data")]


def run_settings(run: dict) -> tuple[dict, data.Augment | None, dict]:
    """Split a profile run (`profile.run("vit")`) into (model kwargs, augmentation, fit kwargs).

    Keys that `fit` does not know (a DeiT teacher, ConViT data fractions, ...) are left to the notebooks.
    """
    augment = data.Augment(**run["augment"]) if run.get("augment") else None
    return dict(run["model"]), augment, {k: v for k, v in run.items() if k in FIT_OPTIONS and k != "augment"}


def fit_profile(kind: str, profile: profiles.Profile | str | None = None, *, key: str | None = None,
                seed: int = 0, **overrides) -> tuple[nn.Module, History]:
    """Build model `kind` with the settings of `profile.run(key or kind)`, train it on the profile's data.

    `overrides` go to `fit` (epochs=, out=, resume=, criterion=, device=, ...). A run that names a
    `teacher` (DeiT) learns from that checkpoint in data/checkpoints unless `criterion=` is given
    (`criterion=None`: no teacher). Returns (model, history).
    """
    profile = profile if isinstance(profile, profiles.Profile) else profiles.get(profile)
    run = profile.run(key or kind)
    model_kwargs, augment, fit_kwargs = run_settings(run)
    train_set, test_set = data.for_profile(profile, augment)
    if run.get("subset", 1.0) < 1.0:  # smoke: a stratified part of the training set
        train_set = data.subset(train_set, run["subset"], seed)
    for name in ("image_size", "in_channels", "num_classes"):  # the data decide (CIFAR-10 may fall back to MNIST)
        if name in model_kwargs:
            model_kwargs[name] = getattr(train_set, name)
    info = {"kind": kind, "profile": profile.name, "run": key or kind, "dataset": train_set.name}
    if run.get("teacher") and "criterion" not in overrides:  # DeiT: the run names its teacher
        overrides["criterion"], info["distillation"] = _distillation(run, train_set.name)
    profiles.seed_everything(seed)
    model = checkpoint.build(kind, **model_kwargs)
    history = fit(model, train_set, test_set, augment=augment, seed=seed, info=info, **{**fit_kwargs, **overrides})
    return model, history


def _distillation(run: dict, dataset: str) -> tuple[Callable, dict]:
    """DeiT's loss for a run naming a teacher, the checkpoint data/checkpoints/<teacher> trained on `dataset`."""
    from .deit import DistillationLoss

    folder = data.data_dir() / "checkpoints" / run["teacher"]
    trained_on = checkpoint.read_info(folder).get("dataset") if (folder / checkpoint.CONFIG).is_file() else None
    if trained_on != dataset:
        found = f"it was trained on {trained_on}" if trained_on else "there is none"
        raise ValueError(
            f"this DeiT run learns from the {run['teacher']!r} teacher in {folder}, trained on {dataset}, but {found}: "
            f"make it first (python -m vit_tutorial train --model {run['teacher']} --profile <this profile> --out {folder})."
        )
    teacher, _ = checkpoint.load(folder)
    base = nn.CrossEntropyLoss(label_smoothing=run.get("label_smoothing", 0.1))
    loss = DistillationLoss(base, teacher, run["distillation"], alpha=run["alpha"], tau=run["tau"])
    return loss, {"teacher": run["teacher"], "kind": run["distillation"], "alpha": run["alpha"], "tau": run["tau"]}
