"""Studies: every arm of an experiment trained once per seed, each run's result cached, and the verdict.

    hunger = study("vit_vs_cnn", profile, {"ViT 10%": dict(kind="vit", fraction=0.1),
                                           "CNN 10%": dict(kind="cnn", fraction=0.1)})
    print(hunger.table()); print(hunger.verdict("CNN 10%", "ViT 10%"))

In the `cpu` and `gpu` profiles each run's numbers are kept in data/results/<profile>/, keyed by every
setting that shaped the run, and loaded the next time (one line says so); `rerun=True` (or `make
results`) trains again, with progress shown. The `smoke` profile runs the same code at a tiny size
and never writes a file. The verdict rule itself is `verdict.verdict`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import data, profiles
from .experiments import CONTROLS, _jsonable, fit_profile, resolve
from .measures import MEASURES
from .train import History, evaluate
from .verdict import Verdict, verdict

ENV_RERUN = "VIT_TUTORIAL_RERUN"
VERSION = 1  # of the record format and its training code: a change here makes every cached run stale


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
                outcome = "diverged" if record.get("diverged") else \
                    f"test acc {record['test_acc']:.2%} ({record['seconds']:.0f} s of training)"
                print(f"{name} [{i + 1}/{len(arms)}] {label}, seed {seed}: {outcome}", flush=True)
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
    only runs recorded before that time (what `make results` does). A run that diverges is recorded as
    such ("diverged", with chance accuracy: its predictions are no better than a guess)."""
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
    gate_history: list = []  # ConViT's gates after every epoch: how they move during training
    callback = spec.pop("on_epoch_end", None)

    def after_epoch(epoch: int, model: nn.Module, history: History) -> None:
        if hasattr(model, "gates"):
            gate_history.append(model.gates().detach().cpu().tolist())
        if callback is not None:
            callback(epoch, model, history)

    test_set = data.for_profile(settings["dataset"])[1]
    try:
        model, history = fit_profile(kind, profile, seed=seed, on_epoch_end=after_epoch, **spec)
    except ValueError as err:  # a run that diverges is a result too (an aggressive learning rate's), kept as such
        if "training diverged" not in str(err):
            raise
        return _keep(path, {"kind": kind, "seed": seed, "settings": _jsonable(settings), "diverged": str(err),
                            "test_acc": 1 / test_set.num_classes, "test_loss": None, "train_acc": None, "train_loss": None,
                            "seconds": None, "history": None, "measures": {m: None for m in measures}, "gate_history": None,
                            "made": _made(0.0)}), False
    last = {"test_acc": history.test_acc[-1], "test_loss": history.test_loss[-1]}
    if last["test_acc"] is None:  # trained without a test set
        last = {f"test_{k}": v for k, v in evaluate(model, test_set).items()}
    record = {
        "kind": kind, "seed": seed, "settings": _jsonable(settings), **last, "train_acc": history.train_acc[-1],
        "train_loss": history.train_loss[-1], "seconds": sum(history.seconds), "history": history.as_dict(),
        "measures": {m: _jsonable(MEASURES[m](model, test_set)) for m in measures}, "gate_history": gate_history or None,
        "made": _made(sum(history.seconds)),
    }
    return _keep(path, record), False


def _made(seconds: float) -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "seconds": seconds}


def _keep(path: Path | None, record: dict) -> dict:
    """Write a run's record to its cache file (none in smoke), whole or not at all; returns the record."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)  # only ever a file of our own naming
    return record


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
