"""Experiments: a profile's run in one line, studies over seeds and settings with cached results,
and the one rule by which the tutorial draws a verdict.

    model, history = fit_profile("vit", profile, model=dict(patch_size=4))   # a learner's change, honoured
    hunger = study("data_hunger", profile, {"ViT 10%": dict(kind="vit", fraction=0.1), ...})
    print(hunger.verdict("CNN 10%", "ViT 10%"))

A study trains every arm once per seed of the profile. In the `cpu` profile each run's result is
kept in data/results/cpu/, keyed by every setting that shaped it, and loaded the next time (one
line says so); `rerun=True` (or `make results`) trains again, with progress shown. The `smoke`
profile runs the same code at a tiny size and never writes a file.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import checkpoint, data, profiles
from .measures import MEASURES
from .train import History, evaluate, fit
from .verdict import Verdict, verdict

FIT_OPTIONS = [p for p in inspect.signature(fit).parameters if p not in ("model", "train_data", "test_data")]
# How a run is carried out, not what is trained: left out of its recorded settings and of a study's key.
CONTROLS = ("out", "resume", "overwrite", "progress", "on_epoch_end", "device", "compile", "info", "criterion")
ENV_RERUN = "VIT_TUTORIAL_RERUN"
VERSION = 1  # of the study format and its training code: a change here makes every cache stale


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


# --- studies: arms x seeds, each run cached -----------------------------------------------------


class Study:
    """The result of a study: `runs[arm][seed]` holds each run's numbers (test_acc, train_acc,
    train_loss, seconds, history, and the study's `measures`)."""

    def __init__(self, name: str, runs: dict[str, dict[int, dict]]):
        self.name, self.runs = name, runs

    @property
    def arms(self) -> list[str]:
        return list(self.runs)

    def values(self, arm: str, metric: str = "test_acc") -> dict[int, Any]:
        """{seed: value} of one arm; `metric` names a number of each run or one of its measures."""
        if arm not in self.runs:
            raise ValueError(f"study {self.name!r} has no arm {arm!r}; it has {self.arms}.")
        runs = self.runs[arm].items()
        if any(metric not in r and metric not in r["measures"] for _, r in runs):
            raise ValueError(f"study {self.name!r} did not record {metric!r}: pass measures=(..., {metric!r}) to the study.")
        return {s: r[metric] if metric in r else r["measures"][metric] for s, r in runs}

    def mean(self, arm: str, metric: str = "test_acc") -> Any:
        """The mean over seeds (element by element for a measure that is a list, e.g. one value per layer)."""
        return torch.tensor(list(self.values(arm, metric).values()), dtype=torch.float64).mean(0).tolist()

    def verdict(self, a: str, b: str, metric: str = "test_acc", scale: float = 100.0, unit: str = "points") -> Verdict:
        """The tutorial's verdict on arm `a` against arm `b`, paired by seed (see `verdict.verdict`)."""
        return verdict(self.values(a, metric), self.values(b, metric), names=(a, b), scale=scale, unit=unit)

    def table(self, metric: str = "test_acc", scale: float = 100.0) -> str:
        """One line per arm: mean, spread over seeds (sd) and each seed's value."""
        lines = [f"{'arm':30s} {'mean':>7} {'sd':>6}  per seed"]
        for arm in self.arms:
            v = torch.tensor(list(self.values(arm, metric).values()), dtype=torch.float64) * scale
            sd = f"{v.std().item():6.2f}" if len(v) > 1 else f"{'-':>6}"
            lines.append(f"{arm:30s} {v.mean():7.2f} {sd}  " + " ".join(f"{x:.1f}" for x in v.tolist()))
        return "\n".join(lines)


def study(name: str, profile: profiles.Profile | str | None, arms: dict[str, dict], *, seeds: tuple[int, ...] | None = None,
          measures: tuple[str, ...] = (), rerun: bool | None = None) -> Study:
    """Train every arm (a dict of `fit_profile` arguments with its `kind`) once per seed (the profile's seeds
    by default) and record accuracies, histories and the named `measures` of each trained model.

    Each run is cached on its own (see `run`), so studies that share a run share its result.
    """
    profile = profile if isinstance(profile, profiles.Profile) else profiles.get(profile)
    seeds = tuple(profile.seeds if seeds is None else seeds)
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not arms or not seeds or any("kind" not in arm for arm in arms.values()):
        raise ValueError(f"a study needs arms (each with a kind), seeds and known measures ({sorted(MEASURES)}); "
                         f"got {len(arms)} arms, seeds {seeds}, unknown measures {unknown}.")
    for arm in arms.values():  # every arm's settings are checked before anything trains
        resolve(profile=profile, **{k: v for k, v in arm.items() if k not in CONTROLS})
    start, loaded, runs = time.perf_counter(), [], {}
    for i, (label, arm) in enumerate(arms.items()):
        runs[label] = {}
        for seed in seeds:
            record, cached = run(profile=profile, seed=seed, measures=measures, rerun=rerun, quiet=True, **arm)
            runs[label][seed] = record
            loaded.append(record["made"] if cached else None)
            if not cached:
                print(f"{name} [{i + 1}/{len(arms)}] {label}, seed {seed}: test acc {record['test_acc']:.2%} "
                      f"({record['seconds']:.0f} s of training)", flush=True)
    if all(loaded) and profile.name != "smoke":
        minutes, dates = sum(m["seconds"] for m in loaded) / 60, sorted(m["date"][:10] for m in loaded)
        print(f"{name}: {len(loaded)} runs ({len(arms)} arms x {len(seeds)} seeds) loaded from "
              f"{results_dir(profile).relative_to(data.data_dir().parent)}/ (trained {dates[-1]}, {minutes:.0f} min "
              f"in all); rerun=True trains them again.")
    else:
        print(f"{name}: {sum(m is None for m in loaded)} runs trained in {time.perf_counter() - start:.0f} s"
              + (f", {sum(m is not None for m in loaded)} loaded" if any(loaded) else ""))
    return Study(name, runs)


def run(kind: str, profile: profiles.Profile | str | None = None, *, seed: int = 0, measures: tuple[str, ...] = (),
        rerun: bool | None = None, quiet: bool = False, **spec: Any) -> tuple[dict, bool]:
    """One training run's numbers, (record, whether it came from the cache). In the cpu and gpu profiles the
    record is kept in data/results/<profile>/, keyed by the run's complete settings and seed; smoke never
    writes. `rerun=True` (or VIT_TUTORIAL_RERUN=1) trains again; VIT_TUTORIAL_RERUN=<unix time> retrains
    only runs recorded before that time (what `make results` does)."""
    profile = profile if isinstance(profile, profiles.Profile) else profiles.get(profile)
    settings = resolve(kind, profile, **{k: v for k, v in spec.items() if k not in CONTROLS})
    key = _key({"version": VERSION, "kind": kind, "settings": settings, "seed": seed})
    path = None if profile.name == "smoke" else results_dir(profile) / f"{kind}-{key[:12]}-s{seed}.json"
    if path is not None and path.is_file() and not _stale(path, rerun):
        record = json.loads(path.read_text())
        if set(measures) <= set(record["measures"]):
            if not quiet:
                print(f"{kind}: loaded the cached run {path.name} (trained {record['made']['date'][:10]}); rerun=True trains it again.")
            return record, True
    model, history = fit_profile(kind, profile, seed=seed, **spec)
    test_set = data.for_profile(settings["dataset"])[1]
    last = {"test_acc": history.test_acc[-1], "test_loss": history.test_loss[-1]}
    if last["test_acc"] is None:  # trained without a test set
        last = {f"test_{k}": v for k, v in evaluate(model, test_set).items()}
    record = {
        "kind": kind, "seed": seed, "settings": _jsonable(settings), **last, "train_acc": history.train_acc[-1],
        "train_loss": history.train_loss[-1], "seconds": sum(history.seconds), "history": history.as_dict(),
        "measures": {m: _jsonable(MEASURES[m](model, test_set)) for m in measures},
        "made": {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
                 "threads": torch.get_num_threads(), "seconds": sum(history.seconds)},
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)  # whole or not at all; only ever a file of our own naming
    return record, False


def _stale(path: Path, rerun: bool | None) -> bool:
    if rerun is not None:
        return rerun
    flag = os.environ.get(ENV_RERUN, "")
    if flag in ("", "0"):
        return False
    if flag.isdigit() and int(flag) > 1:  # a time: runs recorded after it are fresh
        made = json.loads(path.read_text())["made"]["date"]
        return datetime.fromisoformat(made).timestamp() < int(flag)
    return True


def _key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(_jsonable(settings), sort_keys=True).encode()).hexdigest()


def results_dir(profile: profiles.Profile) -> Path:
    """Where a profile's cached runs live: data/results/<profile>/."""
    return data.data_dir() / "results" / profile.name
