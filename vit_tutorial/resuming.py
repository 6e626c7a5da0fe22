"""Continuing a run from its checkpoint, or refusing to: what `train.fit` does when `out` holds one.

A run is known by what it would write into config.json besides its results: the model kind and
config, the seed, the training settings and the labels its caller adds (profile, run, data set,
teacher). `--resume` continues only a run that matches in all of them, and names the differences
otherwise; a checkpoint is replaced only when asked (`overwrite=True`). Resuming restores the
weights, the optimizer, the schedule and every RNG state, so a resumed run ends bit for bit where
an uninterrupted one would (on the CPU).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint

RESULTS = ("format", "files", "sha256", "epoch", "metrics", "summary", "history", "made_by")  # not part of a run's identity


def rng_state() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def describe(info: dict) -> str:
    """A checkpoint in a few words: 'vit, epoch 3 of 3, test acc 97.30%'."""
    total = (info.get("settings") or {}).get("epochs")
    acc = (info.get("metrics") or {}).get("test_acc")
    return ", ".join(filter(None, [str(info.get("kind")), f"epoch {info.get('epoch', '?')}" + (f" of {total}" if total else ""),
                                   f"test acc {acc:.2%}" if isinstance(acc, float) else None]))


def differences(saved: dict, run: dict) -> list[str]:
    """'name: saved -> this run' for every field of the run's identity in which the two differ."""
    run = json.loads(json.dumps(run))  # tuples become lists, as in the saved JSON
    out = []
    for key in sorted(k for k in run.keys() | saved.keys() if k not in RESULTS):
        a, b = saved.get(key), run.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "model":
            out += [f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def plan(folder: Path, saved: dict | None, run: dict, resume: bool, overwrite: bool) -> bool:
    """Whether to continue the checkpoint `saved` in `folder`; a ValueError when it is neither to be resumed
    nor to be replaced, or when it is another run."""
    if resume and overwrite:
        raise ValueError("resume=True continues the run saved in out and overwrite=True starts it over: choose one.")
    if saved is None or overwrite:
        return False
    if not resume:
        raise ValueError(
            f"{folder} already holds a checkpoint ({describe(saved)}): continue it with resume=True (--resume), "
            "start over with overwrite=True (--overwrite), or give this run another folder."
        )
    if (saved.get("kind"), saved.get("model")) != (run["kind"], json.loads(json.dumps(run["model"]))):
        raise ValueError(f"the checkpoint in {folder} holds another model ({saved.get('kind')}: {saved.get('model')}); "
                         "resume with the same settings, start over with overwrite=True (--overwrite), or use another folder.")
    changed = differences(saved, run)
    if changed:
        raise ValueError(f"cannot resume the run in {folder}: it was made with other settings ({'; '.join(changed)}, "
                         "saved -> now). Resume with the same ones, start over with overwrite=True (--overwrite), or use another folder.")
    if checkpoint.STATE not in saved["files"] or not isinstance(saved.get("history"), dict) or not isinstance(saved.get("epoch"), int):
        raise ValueError(f"the checkpoint in {folder} has no training state or history (it was not written by fit), "
                         "so it cannot be resumed: start over with overwrite=True (--overwrite).")
    return True


def restore(folder: Path, saved: dict, model: nn.Module, optimizer, scheduler) -> tuple[dict, int]:
    """Load the run saved in `folder` into model, optimizer, scheduler and the RNGs: (history dict, last epoch)."""
    checkpoint.load_weights(folder, model, saved)
    state = checkpoint.load_training_state(folder, saved)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["state"]["rng"])
    return saved["history"], saved["epoch"]
