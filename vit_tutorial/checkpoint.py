"""Checkpoints: safetensors for tensors, JSON for everything else, never pickle.

A checkpoint is a directory:

    config.json                the model kind and config, profile, seed, epoch, metrics, history,
                               and a SHA-256 of every tensor file (so a changed file is caught)
    model.safetensors          the weights
    training_state.safetensors optional: optimizer moments, RNG states (for resuming)
    training_state.json        optional: the non-tensor rest of the optimizer/scheduler state

`torch.load` unpickles, and unpickling can run any code hidden in the file; safetensors holds
only raw tensors. Writes are atomic: every file goes to a temporary name in the same directory
first and is renamed into place afterwards, config.json last, so a crash while writing leaves
the previous checkpoint as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from .models import MODELS, build, kind_of, model_class  # noqa: F401  (checkpoint.build: the notebooks' spelling)

FORMAT = 1
CONFIG, WEIGHTS = "config.json", "model.safetensors"
STATE, STATE_JSON = "training_state.safetensors", "training_state.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")

# --- nested state <-> (JSON skeleton, flat tensors) -------------------------------------------

def _split(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """Replace every tensor in a nested structure by a reference into `tensors` (JSON-able rest)."""
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj.copy())
        tensors[key] = obj
        return {"__ndarray__": key}
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _split(v, tensors, f"{key}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, _split(v, tensors, f"{key}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    raise ValueError(f"cannot store a {type(obj).__name__} in a checkpoint (at {key!r}); use tensors and plain values.")


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `_split`."""
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy()
    if "__tuple__" in obj:
        return tuple(_join(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: _join(v, tensors) for k, v in obj["__items__"]}
    return {k: _join(v, tensors) for k, v in obj.items()}


# --- writing ------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def save(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    kind: str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: dict | None = None,
    state: dict | None = None,
) -> Path:
    """Write `model` (and, for resuming, optimizer/scheduler/`state`) into directory `path`, atomically.

    `extra` (profile, seed, epoch, metrics, history, ...) goes into config.json as is; `state` is
    any further training state with tensors in it (train.py keeps the RNG states there).
    """
    model = getattr(model, "_orig_mod", model)
    kind = kind or kind_of(model)
    if not hasattr(model, "config") or not hasattr(model.config, "to_dict"):
        raise ValueError(f"{type(model).__name__} has no .config.to_dict(); checkpoints rebuild models from it.")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".*.tmp-*"):  # from a save that was killed while writing
        leftover.unlink()
    staged: dict[str, Path] = {}  # final name -> temporary file

    def stage(name: str, write) -> None:
        tmp = folder / f".{name}.tmp-{os.getpid()}"
        staged[name] = tmp
        write(tmp)
        os.chmod(tmp, 0o644)  # safetensors creates files readable by their owner only
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())

    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        stage(WEIGHTS, lambda p: safetensors.torch.save_file(weights, str(p), metadata={"format": "pt"}))
        training = {"optimizer": optimizer, "scheduler": scheduler, "state": state}
        if any(v is not None for v in training.values()):
            tensors: dict[str, torch.Tensor] = {}
            skeleton = {k: _split(v.state_dict() if hasattr(v, "state_dict") else v, tensors, k) for k, v in training.items()}
            stage(STATE, lambda p: safetensors.torch.save_file(tensors, str(p)))
            stage(STATE_JSON, lambda p: _write_json(skeleton, p))
        info = {"format": FORMAT, "kind": kind, "model": model.config.to_dict()}
        info |= {k: v for k, v in (extra or {}).items() if k not in (*info, "files")}
        info["files"] = {name: _sha256(tmp) for name, tmp in staged.items()}
        stage(CONFIG, lambda p: _write_json(info, p))
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    for name, tmp in staged.items():  # dict order: config.json is renamed last
        os.replace(tmp, folder / name)
    for stale in {STATE, STATE_JSON} - set(staged):
        (folder / stale).unlink(missing_ok=True)
    return folder


# --- reading ------------------------------------------------------------------------------------

def _first_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(1)


def _refuse_pickles(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES or (path.is_file() and _first_byte(path) == b"\x80"):
        raise ValueError(
            f"{path} is a pickle file: vit_tutorial never unpickles (a pickle can run code when loaded). "
            "Load only checkpoint directories written by vit_tutorial.checkpoint.save."
        )


def folder_of(path: str | os.PathLike) -> Path:
    """The checkpoint directory for `path` (the directory, its config.json or its model.safetensors)."""
    path = Path(path)
    if path.is_file():
        _refuse_pickles(path)
        if path.name in (CONFIG, WEIGHTS):
            return path.parent
        raise ValueError(f"{path} is not a checkpoint: pass the directory holding {CONFIG} and {WEIGHTS}.")
    if not (path / CONFIG).is_file():
        for candidate in sorted(path.glob("*")) if path.is_dir() else []:
            _refuse_pickles(candidate)
        raise ValueError(f"no checkpoint at {path}: expected a directory with {CONFIG} and {WEIGHTS}.")
    return path


def read_info(path: str | os.PathLike) -> dict:
    """The contents of a checkpoint's config.json (kind, model config, metrics, history, ...)."""
    folder = folder_of(path)
    try:
        info = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{folder / CONFIG} is not valid JSON ({err}); the checkpoint is damaged.") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or "files" not in info:
        raise ValueError(f"{folder / CONFIG} is not a vit_tutorial checkpoint (format {FORMAT}).")
    return info


def _read_verified(folder: Path, name: str, info: dict) -> bytes:
    """The bytes of one file of the checkpoint, after checking them against the SHA-256 in config.json."""
    file = folder / name
    _refuse_pickles(file)
    if not file.is_file():
        raise ValueError(f"{file} is missing; the checkpoint is incomplete.")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != info["files"].get(name):
        raise ValueError(f"{file} was changed or truncated after it was written (SHA-256 differs from {CONFIG}).")
    return data


def _read_tensors(folder: Path, name: str, info: dict) -> dict[str, torch.Tensor]:
    data = _read_verified(folder, name, info)
    try:
        return safetensors.torch.load(data)
    except Exception as err:  # SafetensorError and friends: a damaged header or body
        raise ValueError(f"{folder / name} is not a readable safetensors file ({err}).") from None


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model saved at `path` and load its weights: returns `(model, info)`, model in eval mode."""
    folder = folder_of(path)
    info = read_info(folder)
    model = build(info["kind"], **info["model"])
    load_weights(folder, model, info)
    return model.to(device or "cpu").eval(), info


def load_weights(path: str | os.PathLike, model: nn.Module, info: dict | None = None) -> dict:
    """Load the saved weights into an existing `model` of the same shape; returns the info dict."""
    folder = folder_of(path)
    info = info or read_info(folder)
    weights = _read_tensors(folder, WEIGHTS, info)
    try:
        getattr(model, "_orig_mod", model).load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"the weights in {folder} do not fit this {type(model).__name__}: {err}") from None
    return info


def load_training_state(path: str | os.PathLike, info: dict | None = None) -> dict:
    """The saved optimizer/scheduler state dicts and extra `state` (with tensors), for resuming."""
    folder = folder_of(path)
    info = info or read_info(folder)
    if STATE not in info["files"]:
        raise ValueError(f"{folder} holds no training state (saved without optimizer), so it cannot be resumed.")
    tensors = _read_tensors(folder, STATE, info)
    skeleton = json.loads(_read_verified(folder, STATE_JSON, info))
    return _join(skeleton, tensors)
