"""Convert checkpoints of an older vit_tutorial (format 1) to the current format, in place.

    python scripts/migrate_checkpoints.py data/checkpoints/* runs/vit

Format 1 kept `model.safetensors` (and `training_state.*`) under fixed names, with the SHA-256 of
each in config.json but no hash of config.json itself. This checks every file against those
hashes, writes the same weights, training state and info with `checkpoint.save` into a new folder
beside it, moves the new files in (content-addressed names, so nothing is replaced), switches
config.json in one rename, and only then removes the old files that the old config.json named.
Nothing is retrained: the weights are bit for bit the same.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import safetensors.torch

from vit_tutorial import checkpoint
from vit_tutorial.state_tree import join

OLD_FILES = ("model.safetensors", "training_state.safetensors", "training_state.json")


def _verified(folder: Path, name: str, info: dict) -> bytes:
    data = (folder / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != info["files"].get(name):
        raise ValueError(f"{folder / name} does not match the SHA-256 its config.json records: not migrated.")
    return data


def migrate(folder: Path) -> None:
    """Rewrite the format-1 checkpoint in `folder` in the current format (same weights, state and info)."""
    info = json.loads((folder / checkpoint.CONFIG).read_text())
    if info.get("format") != 1:
        raise ValueError(f"{folder} is not a format-1 checkpoint (format {info.get('format')!r}).")
    unknown = sorted({p.name for p in folder.iterdir()} - {checkpoint.CONFIG, *OLD_FILES})
    if unknown:
        raise ValueError(f"{folder} also holds {unknown}: move them out first.")
    model = checkpoint.build(info["kind"], **info["model"])
    model.load_state_dict(safetensors.torch.load(_verified(folder, "model.safetensors", info)))
    training = {}
    if "training_state.safetensors" in info["files"]:
        tensors = safetensors.torch.load(_verified(folder, "training_state.safetensors", info))
        training = join(json.loads(_verified(folder, "training_state.json", info)), tensors)
    new = folder.with_name(folder.name + ".migrating")
    if new.exists():
        raise ValueError(f"{new} exists (an earlier migration stopped?): remove it and run again.")
    extra = {k: v for k, v in info.items() if k not in ("format", "files")}
    checkpoint.save(new, model, kind=info["kind"], extra=extra, **training)
    names = [e["name"] for e in checkpoint.read_info(new)["files"].values()]
    for name in names:
        os.replace(new / name, folder / name)
    os.replace(new / checkpoint.CONFIG, folder / checkpoint.CONFIG)  # the switch
    shutil.rmtree(new)
    for name in info["files"]:
        if name in OLD_FILES:
            (folder / name).unlink(missing_ok=True)
    checkpoint.load(folder)  # reads back, every hash checked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="checkpoint folders of format 1")
    for folder in parser.parse_args(argv).folders:
        try:
            migrate(folder)
        except ValueError as err:
            sys.exit(f"error: {err}")
        print(f"{folder}: migrated to format {checkpoint.FORMAT}")


if __name__ == "__main__":
    main()
