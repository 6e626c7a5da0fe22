"""Experiments: a profile's run in one line, studies over seeds and settings with cached results,
and the one rule by which the tutorial draws a verdict.

    model, history = fit_profile("vit", profile, model=dict(patch_size=4))   # a learner's change, honoured
    hunger = study("data_hunger", profile, {"ViT 10%": dict(kind="vit", fraction=0.1), ...})
    print(hunger.verdict("CNN 10%", "ViT 10%"))

A study trains every arm with every seed of the profile. In the `cpu` profile its result is kept
in data/results/cpu/, keyed by every setting that shaped it, and loaded the next time (one line
says so); `rerun=True` (or VIT_TUTORIAL_RERUN=1, which `make results` sets) trains it again with
progress shown. The `smoke` profile runs the same code at a tiny size and never writes a file.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import checkpoint, data, display, profiles
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
    stratified part of the data, `teacher=` / `distillation=` choose DeiT's teacher, anything else
    goes to `train.fit` (epochs=, lr=, ...). Unknown names are refused.
    """
    run = profile.run(key or kind)  # a deep copy
    unknown = set(overrides) - {*FIT_OPTIONS, "fraction", "teacher", "distillation", "alpha", "tau", "dataset"}
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
    if run.get("subset", 1.0) < 1.0 or run.get("fraction", 1.0) < 1.0:  # a stratified, seeded part of the training set
        train_set = data.subset(train_set, run.get("subset", 1.0) * run.get("fraction", 1.0), seed)
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


# --- studies: arms x seeds, cached -------------------------------------------------------------


class Study:
    """The result of a study: `runs[arm][seed]` holds each run's numbers (test_acc, train_acc,
    train_loss, seconds, history, and the study's `measures`)."""

    def __init__(self, name: str, record: dict):
        self.name, self.record = name, record
        self.runs: dict[str, dict[str, dict]] = record["runs"]

    @property
    def arms(self) -> list[str]:
        return list(self.runs)

    def values(self, arm: str, metric: str = "test_acc") -> dict[int, Any]:
        """{seed: value} of one arm; `metric` names a number of each run or one of its measures."""
        if arm not in self.runs:
            raise ValueError(f"study {self.name!r} has no arm {arm!r}; it has {self.arms}.")
        return {int(s): r[metric] if metric in r else r["measures"][metric] for s, r in self.runs[arm].items()}

    def mean(self, arm: str, metric: str = "test_acc") -> float:
        vals = list(self.values(arm, metric).values())
        return float(torch.tensor(vals, dtype=torch.float64).mean(0)) if vals else float("nan")

    def verdict(self, a: str, b: str, metric: str = "test_acc", scale: float = 100.0, unit: str = "points") -> Verdict:
        """The tutorial's verdict on arm `a` against arm `b`, paired by seed (see `verdict.verdict`)."""
        return verdict(self.values(a, metric), self.values(b, metric), names=(a, b), scale=scale, unit=unit)

    def table(self, metric: str = "test_acc", scale: float = 100.0) -> str:
        """One line per arm: mean, spread over seeds (sd) and the seeds' values."""
        lines = [f"{'arm':28s} {'mean':>7} {'sd':>6}  seeds"]
        for arm in self.arms:
            v = torch.tensor(list(self.values(arm, metric).values()), dtype=torch.float64) * scale
            sd = v.std().item() if len(v) > 1 else float("nan")
            lines.append(f"{arm:28s} {v.mean():7.2f} {sd:6.2f}  " + " ".join(f"{x:.1f}" for x in v.tolist()))
        return "\n".join(lines)


MEASURES: dict[str, Callable[[nn.Module, Any], Any]] = {}  # name -> measure(model, test_set), see `measure`


def measure(name: str):
    """Register a function (model, test set) -> JSON-able value that a study records for each trained model."""

    def register(fn):
        MEASURES[name] = fn
        return fn

    return register


def study(name: str, profile: profiles.Profile | str | None, arms: dict[str, dict], *, seeds: tuple[int, ...] | None = None,
          measures: tuple[str, ...] = (), rerun: bool | None = None) -> Study:
    """Train every arm (a dict of `fit_profile` arguments, with `kind`) with every seed; record the
    accuracies, the histories and the named `measures` of each model. Cached per profile (see module)."""
    profile = profile if isinstance(profile, profiles.Profile) else profiles.get(profile)
    seeds = tuple(profile.seeds if seeds is None else seeds)
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not arms or not seeds:
        raise ValueError(f"a study needs arms, seeds and known measures ({sorted(MEASURES)}); got {len(arms)} arms, "
                         f"seeds {seeds}, unknown measures {unknown}.")
    settings = {a: resolve(**{"profile": profile, **arm}) for a, arm in arms.items()}  # checks every arm first
    key = _key({"version": VERSION, "settings": settings, "seeds": seeds, "measures": measures})
    path = results_dir(profile) / f"{name}-{key[:10]}.json" if profile.name != "smoke" else None
    rerun = os.environ.get(ENV_RERUN, "") not in ("", "0") if rerun is None else rerun
    if path is not None and path.is_file() and not rerun:
        record = json.loads(path.read_text())
        made = record["made"]
        print(f"{name}: loaded the cached result ({len(arms)} arms x {len(seeds)} seeds, trained {made['date'][:10]} "
              f"in {made['seconds'] / 60:.0f} min, {path.relative_to(data.data_dir().parent)}); rerun=True trains it again.")
        return Study(name, record)
    return Study(name, _run(name, profile, arms, settings, seeds, measures, path, key))


def _run(name, profile, arms, settings, seeds, measures, path, key) -> dict:
    start, runs = time.perf_counter(), {}
    print(f"{name}: training {len(arms)} arms x {len(seeds)} seeds" + (f", then saving {path.name}" if path else ""))
    for i, (arm, spec) in enumerate(arms.items()):
        runs[arm] = {}
        for seed in seeds:
            t = time.perf_counter()
            spec = {k: v for k, v in spec.items() if k != "kind"}
            model, history = fit_profile(arms[arm]["kind"], profile, seed=seed, **spec)
            test_set = data.for_profile(settings[arm]["dataset"])[1]
            last = {"test_acc": history.test_acc[-1], "test_loss": history.test_loss[-1]}
            if last["test_acc"] is None:
                last = {f"test_{k}": v for k, v in evaluate(model, test_set).items()}
            runs[arm][str(seed)] = {
                **last, "train_acc": history.train_acc[-1], "train_loss": history.train_loss[-1],
                "seconds": sum(history.seconds), "history": history.as_dict(),
                "measures": {m: _jsonable(MEASURES[m](model, test_set)) for m in measures},
            }
            print(f"  [{i + 1}/{len(arms)}] {arm}, seed {seed}: test acc {runs[arm][str(seed)]['test_acc']:.2%} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    record = {"name": name, "key": key, "profile": profile.name, "seeds": list(seeds), "arms": _jsonable(arms),
              "settings": _jsonable(settings), "measures": list(measures), "runs": runs,
              "made": {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "seconds": time.perf_counter() - start}}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)  # whole or not at all
    return record


def _key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(_jsonable(settings), sort_keys=True).encode()).hexdigest()


def results_dir(profile: profiles.Profile) -> Path:
    """Where a profile's cached study results live: data/results/<profile>/."""
    return data.data_dir() / "results" / profile.name
