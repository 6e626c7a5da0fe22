"""Experiments: a profile's run in one line, with a learner's changes honoured and recorded.

    model, history = fit_profile("vit", profile, model=dict(patch_size=4))

`resolve` gives a run's complete settings (the profile's, with the changes applied); studies over
seeds and settings, with cached results and the verdict rule, are in `studies.py`.
"""
from __future__ import annotations

import inspect
import json
import math
from typing import Any, Callable

from torch import nn

from . import checkpoint, data, profiles
from .train import History, fit

FIT_OPTIONS = [p for p in inspect.signature(fit).parameters if p not in ("model", "train_data", "test_data")]
# How a run is carried out, not what is trained: left out of its recorded settings and of a study's key.
CONTROLS = ("out", "resume", "overwrite", "progress", "on_epoch_end", "device", "compile", "info", "criterion")


def run_settings(run: dict) -> tuple[dict, data.Augment | None, dict]:
    """Split a profile run (`profile.run("vit")`) into (model kwargs, augmentation, fit kwargs)."""
    augment = data.Augment(**run["augment"]) if run.get("augment") else None
    return dict(run["model"]), augment, {k: v for k, v in run.items() if k in FIT_OPTIONS and k != "augment"}


def resolve(kind: str, profile: profiles.Profile, key: str | None = None, model: dict | None = None,
            **overrides: Any) -> dict:
    """The complete settings of one run: `profile.run(key or kind)` with a learner's changes applied.

    `model=` changes model settings, `augment=` (a dict) the augmentation, `fraction=` trains on a
    stratified part of the data for as many optimisation steps as the whole data would take (unless
    `epochs=` is given too), `steps=` sets the number of optimisation steps instead of epochs, `teacher=` / `distillation=` choose DeiT's teacher, anything else goes to
    `train.fit` (epochs=, lr=, ...). Unknown names are refused.
    """
    run = profile.run(key or kind)  # a deep copy
    if overrides.get("fraction") == 1.0:  # all of the data: the run itself (and its cached result)
        overrides = {k: v for k, v in overrides.items() if k != "fraction"}
    unknown = set(overrides) - {*FIT_OPTIONS, "fraction", "steps", "teacher", "distillation", "alpha", "tau", "dataset"}
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)} for {kind}: use model=dict(...) for the model, "
                         f"or one of fraction, teacher, distillation, {', '.join(FIT_OPTIONS)}.")
    if model:
        if not isinstance(model, dict):
            raise ValueError(f"model= takes a dict of model settings, e.g. model=dict(patch_size=4); got {model!r}.")
        run["model"] = {**run["model"], **model}
    run.update(overrides)
    run.setdefault("dataset", profile.dataset)
    return run


def fit_profile(kind: str, profile: profiles.Profile | str | None = None, *, key: str | None = None, seed: int = 0,
                model: dict | None = None, **overrides: Any) -> tuple[nn.Module, History]:
    """Build model `kind` with the settings of `profile.run(key or kind)` and train it on the profile's data.

    `model=dict(...)` and the other `overrides` are the learner's changes (see `resolve`); they are
    recorded in the checkpoint's JSON when `out=` is given. A run that names a `teacher` (DeiT)
    learns from data/checkpoints/<teacher> unless `criterion=` is given (`criterion=None`: no teacher).
    """
    profile = profile if isinstance(profile, profiles.Profile) else profiles.get(profile)
    run = resolve(kind, profile, key, model, **{k: v for k, v in overrides.items() if k not in ("criterion",)})
    model_kwargs, augment, fit_kwargs = run_settings(run)
    train_set, test_set = data.for_profile(run["dataset"], augment)
    if run.get("subset", 1.0) < 1.0:  # smoke: a stratified, seeded part of the training set stands for all of it
        train_set = data.subset(train_set, run["subset"], seed)
    batches = lambda: math.ceil(len(train_set) / fit_kwargs["batch_size"])  # noqa: E731  (per epoch)
    steps = run.get("steps") or fit_kwargs["epochs"] * batches()  # by default the profile's run on all of the data
    if run.get("fraction", 1.0) < 1.0:  # a part of the data, trained for as many steps as the whole unless epochs= says
        train_set = data.subset(train_set, run["fraction"], seed)
    if run.get("steps") or (run.get("fraction", 1.0) < 1.0 and "epochs" not in overrides):
        fit_kwargs["epochs"] = math.ceil(steps / batches())
        fit_kwargs.setdefault("eval_every", max(1, fit_kwargs["epochs"] // 50))
    for name in ("image_size", "in_channels", "num_classes"):  # the data decide (CIFAR-10 may fall back to MNIST)
        if name in model_kwargs:
            model_kwargs[name] = getattr(train_set, name)
    info = {"kind": kind, "profile": profile.name, "run": key or kind, "dataset": train_set.name,
            "overrides": _jsonable({"model": model or {}, **{k: v for k, v in overrides.items() if k not in CONTROLS}})}
    if "criterion" in overrides:
        fit_kwargs["criterion"] = overrides["criterion"]
    elif run.get("teacher"):  # DeiT: the run names its teacher
        fit_kwargs["criterion"], info["distillation"] = _distillation(run, train_set.name)
    profiles.seed_everything(seed)
    net = checkpoint.build(kind, **model_kwargs)
    history = fit(net, train_set, test_set, augment=augment, seed=seed, info=info, **fit_kwargs)
    return net, history


def _distillation(run: dict, dataset: str) -> tuple[Callable, dict]:
    """DeiT's loss for a run naming a teacher: the checkpoint data/checkpoints/<teacher> trained on `dataset`."""
    from .deit import DistillationLoss

    folder = data.data_dir() / "checkpoints" / run["teacher"]
    trained_on = checkpoint.read_info(folder).get("dataset") if (folder / checkpoint.CONFIG).is_file() else None
    if trained_on != dataset:
        found = f"it was trained on {trained_on}" if trained_on else "there is none"
        raise ValueError(
            f"this DeiT run learns from the {run['teacher']!r} teacher in {folder}, trained on {dataset}, but {found}: "
            f"make it first (python scripts/make_checkpoints.py {run['teacher']})."
        )
    teacher, _ = checkpoint.load(folder)
    base = nn.CrossEntropyLoss(label_smoothing=run.get("label_smoothing", 0.1))
    loss = DistillationLoss(base, teacher, run["distillation"], alpha=run["alpha"], tau=run["tau"])
    return loss, {"teacher": run["teacher"], "kind": run["distillation"], "alpha": run["alpha"], "tau": run["tau"]}


def _jsonable(value: Any) -> Any:
    """Settings as JSON can hold them (objects such as a criterion become their repr)."""
    return json.loads(json.dumps(value, default=repr))
