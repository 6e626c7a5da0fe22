"""Checkpoints: safetensors for tensors, JSON for everything else, never pickle; atomic and hashed.

A checkpoint is a folder that holds nothing else:

    config.json                             the model kind and config, profile, seed, epoch, metrics,
                                            history; the name, size and SHA-256 of each file below; and
                                            the SHA-256 of config.json itself (its "sha256" field)
    model-<sha>.safetensors                 the weights
    training_state-<sha>.safetensors/.json  optional: optimizer moments, RNG states (for resuming)

Tensor files are named by their content (<sha> = the first 16 hex digits of their SHA-256), so new
ones never replace the files the current config.json names. A save writes them, then writes the
new config.json under a temporary name and renames it into place: that one rename is the switch
from the old checkpoint to the new one, and a crash on either side of it leaves a complete
checkpoint. Only then are the old files removed: those the old config.json named, and files whose
content-addressed names their content proves ours. Nothing is written into a folder that holds
anything else. The hash of config.json catches edits and damage; nothing signs it against a
forger, but `torch.load` unpickles (and unpickling can run code), safetensors never does.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from . import devices
from . import folders
from .folders import NAME, expand, fsync_dir, provably_ours, sha256_of, stage
from .models import MODELS, build, kind_of, model_class  # noqa: F401  (checkpoint.build: the notebooks' spelling)
from .state_tree import join, split

FORMAT = 2
CONFIG = "config.json"
WEIGHTS, STATE, STATE_JSON = "weights", "state", "state_json"  # roles of the files in config.json's "files"
_STEMS = {WEIGHTS: ("model", ".safetensors"), STATE: ("training_state", ".safetensors"), STATE_JSON: ("training_state", ".json")}
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
MAX_CONFIG_BYTES = 16 * 2**20
MIGRATE = "python scripts/migrate_checkpoints.py"


def _digest(info: dict) -> str:
    """The SHA-256 of config.json's contents without its own "sha256" field."""
    body = {k: v for k, v in info.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _listed(folder: Path) -> tuple[dict | None, set[str]]:
    """The checkpoint in an existing folder and the names of its files (for `folders.claim`)."""
    if not (folder / CONFIG).is_file():
        return None, set()
    try:
        info = read_info(folder)
    except ValueError as err:
        raise ValueError(f"{err} Nothing is written there: vit_tutorial replaces only checkpoints it can read; "
                         "choose another folder, or empty this one yourself.") from None
    return info, {CONFIG} | {e["name"] for e in info["files"].values()}


def writing(path: str | os.PathLike):
    """Claim folder `path` for checkpoints and hold its lock while the block runs (`folders.writing`):
    yields (folder, info of the checkpoint already there, or None). `train.fit` holds it for a whole run."""
    return folders.writing(path, _listed)


def exists(path: str | os.PathLike) -> bool:
    """Whether `path` holds a checkpoint (a config.json; `read_info` checks it)."""
    return (expand(path) / CONFIG).is_file()


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
    """Write `model` (and, for resuming, optimizer/scheduler/`state`) into folder `path`, replacing the
    checkpoint there in one atomic step.

    `extra` (profile, seed, epoch, metrics, history, ...) goes into config.json as is; `state` is
    any further training state with tensors in it (train.py keeps the RNG states there).
    """
    model = getattr(model, "_orig_mod", model)
    kind = kind or kind_of(model)
    if type(model) is not model_class(kind):
        raise ValueError(f"a {type(model).__name__} cannot be saved as kind {kind!r} ({model_class(kind).__name__}): leave kind out.")
    if not hasattr(model, "config") or not hasattr(model.config, "to_dict"):
        raise ValueError(f"{type(model).__name__} has no .config.to_dict(); checkpoints rebuild models from it.")
    with writing(path) as (folder, old):
        staged: dict[str, dict] = {}
        try:
            weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            write = lambda p: safetensors.torch.save_file(weights, str(p), metadata={"format": "pt"})  # noqa: E731
            staged[WEIGHTS] = stage(folder, WEIGHTS, write, _STEMS[WEIGHTS])
            training = {"optimizer": optimizer, "scheduler": scheduler, "state": state}
            if any(v is not None for v in training.values()):
                tensors: dict[str, torch.Tensor] = {}
                skeleton = {k: split(v.state_dict() if hasattr(v, "state_dict") else v, tensors, k) for k, v in training.items()}
                staged[STATE] = stage(folder, STATE, lambda p: safetensors.torch.save_file(tensors, str(p)), _STEMS[STATE])
                staged[STATE_JSON] = stage(folder, STATE_JSON, lambda p: p.write_text(json.dumps(skeleton)), _STEMS[STATE_JSON])
            info = {"format": FORMAT, "kind": kind, "model": model.config.to_dict()}
            info |= {k: v for k, v in (extra or {}).items() if k not in (*info, "files", "sha256")}
            info["files"] = {role: {k: v for k, v in e.items() if k != "tmp"} for role, e in staged.items()}
            try:
                info["sha256"] = _digest(info)
            except TypeError as err:  # a value in `extra` that JSON cannot hold
                raise ValueError(f"cannot store {err} in config.json: pass plain values in extra "
                                 "(numbers, strings, lists, dicts).") from None
            for e in staged.values():  # new names: the current config.json still names only the old files
                os.replace(e["tmp"], folder / e["name"])
                del e["tmp"]
            staged["config"] = stage(folder, "config", lambda p: p.write_text(json.dumps(info, indent=1) + "\n"), None)
            os.replace(staged["config"]["tmp"], folder / CONFIG)  # the switch from the old checkpoint to the new
            del staged["config"]["tmp"]
            fsync_dir(folder)
        except OSError as err:
            raise ValueError(f"could not write the checkpoint into {folder} ({err.strerror or err}); "
                             "the checkpoint that was there, if any, is unchanged.") from None
        finally:
            for e in staged.values():
                if "tmp" in e:
                    e["tmp"].unlink(missing_ok=True)
        keep = {CONFIG} | {e["name"] for e in info["files"].values()}
        old_names = {e["name"] for e in (old or {}).get("files", {}).values()}
        for p in folder.iterdir():  # after the switch: the old checkpoint's files, and leftovers of killed saves
            if p.name not in keep and (p.name in old_names or provably_ours(p)):
                p.unlink(missing_ok=True)
    return folder


# --- reading ------------------------------------------------------------------------------------

def _refuse_pickles(path: Path) -> None:
    """A pickle is refused unread; safetensors files (8-byte length, then '{') are not mistaken for one."""
    head = b""
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(9)
    if path.suffix.lower() in PICKLE_SUFFIXES or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05" and head[8:9] != b"{"):
        raise ValueError(
            f"{path} is a pickle file: vit_tutorial never unpickles (a pickle can run code when loaded). "
            "Load only checkpoint folders written by vit_tutorial.checkpoint.save."
        )


def folder_of(path: str | os.PathLike) -> Path:
    """The checkpoint folder for `path` (the folder, its config.json or its weights file)."""
    path = expand(path)
    if path.is_file():
        _refuse_pickles(path)
        if path.name == CONFIG or NAME.match(path.name):
            return path.parent
        raise ValueError(f"{path} is not a checkpoint: pass the folder holding {CONFIG}.")
    if not (path / CONFIG).is_file():
        for candidate in sorted(path.iterdir())[:100] if path.is_dir() else []:
            _refuse_pickles(candidate)
        raise ValueError(f"no checkpoint at {path}: expected a folder with {CONFIG} and the files it names.")
    return path


def read_info(path: str | os.PathLike) -> dict:
    """The contents of a checkpoint's config.json (kind, model config, metrics, history, ...), verified."""
    file = folder_of(path) / CONFIG
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{file} is {file.stat().st_size} bytes, far more than any checkpoint's config.json: it is not one.")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{file} is not valid JSON ({str(err)[:80]}); the checkpoint is damaged.") from None
    if not isinstance(info, dict) or "format" not in info:
        raise ValueError(f"{file} is not a vit_tutorial checkpoint (format {FORMAT}).")
    if info["format"] == 1:
        raise ValueError(f"{file.parent} is a checkpoint of an older vit_tutorial (format 1, without a hash of its "
                         f"config.json): convert it once with `{MIGRATE} {file.parent}`.")
    if info["format"] != FORMAT:
        raise ValueError(f"{file} is a checkpoint of format {info['format']!r}; this vit_tutorial reads format {FORMAT}.")
    if info.get("sha256") != _digest(info):
        raise ValueError(
            f"{file} was edited or damaged after it was written (its SHA-256 differs from the one it records): "
            "restore it (`git checkout` for a shipped checkpoint) or retrain. A changed setting such as heads "
            "would load the weights into another model, so it is not loaded."
        )
    files = info.get("files")
    if not isinstance(info.get("kind"), str) or not isinstance(info.get("model"), dict):
        raise ValueError(f"{file} names no model kind or config ('kind', 'model'); the checkpoint is incomplete.")
    if not isinstance(files, dict) or WEIGHTS not in files or not all(
        isinstance(e, dict) and NAME.match(str(e.get("name"))) and isinstance(e.get("bytes"), int) for e in files.values()
    ):
        raise ValueError(f"{file} does not name its files as vit_tutorial writes them; the checkpoint is damaged.")
    return info


def _read_tensors(folder: Path, role: str, info: dict) -> dict[str, torch.Tensor]:
    """One tensor file of the checkpoint, after checking its size and SHA-256 against config.json."""
    entry = info["files"][role]
    file = folder / entry["name"]
    if not file.is_file():
        raise ValueError(f"{file} is missing; the checkpoint is incomplete.")
    if file.stat().st_size != entry["bytes"] or sha256_of(file) != entry.get("sha256"):
        raise ValueError(f"{file} was changed or truncated after it was written (its size or SHA-256 differs from {CONFIG}).")
    try:
        return safetensors.torch.load_file(str(file))
    except Exception as err:  # SafetensorError and friends: a damaged header or body
        raise ValueError(f"{file} is not a readable safetensors file ({err}).") from None


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model saved at `path` and load its weights: returns `(model, info)`, model in eval mode."""
    device = devices.resolve(device) if device is not None else torch.device("cpu")
    folder = folder_of(path)
    info = read_info(folder)
    model = build(info["kind"], **info["model"])
    load_weights(folder, model, info)
    return model.to(device).eval(), info


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
    if STATE not in info["files"] or STATE_JSON not in info["files"]:
        raise ValueError(f"{folder} holds no training state (saved without optimizer), so it cannot be resumed.")
    tensors = _read_tensors(folder, STATE, info)
    entry = info["files"][STATE_JSON]
    file = folder / entry["name"]
    if not file.is_file() or sha256_of(file) != entry.get("sha256"):
        raise ValueError(f"{file} is missing or was changed after it was written; the training state cannot be trusted.")
    return join(json.loads(file.read_text()), tensors)
