"""Retrain the shipped checkpoints in data/checkpoints/<kind>/ with the cpu profile (`make checkpoints`).

The notebooks load these in the smoke profile instead of training for minutes. Each is trained on
the CPU (so that its recorded test accuracy is reproduced exactly by evaluating it there) and
saved without optimizer state, which keeps it to a few hundred KB.

    python scripts/make_checkpoints.py             # every checkpoint in SHIPPED
    python scripts/make_checkpoints.py cnn vit     # some of them
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vit_tutorial import checkpoint, experiments

ROOT = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
# name -> (model kind, profile run): a checkpoint per name, in this order (DeiT's students after their teachers)
SHIPPED = {"cnn": ("cnn", "cnn"), "vit": ("vit", "vit"), "vit_learned": ("vit", "vit_learned"), "cnn_weak": ("cnn", "cnn_weak"), "deit": ("deit", "deit"),
           "convit": ("convit", "convit"), "cait": ("cait", "cait"), "mixer": ("mixer", "mixer")}


def make(name: str, profile: str = "cpu", seed: int = 0, root: Path = ROOT) -> dict:
    """Train the checkpoint `name` (its kind and profile run from SHIPPED) on the CPU and save it, weights only,
    to root/name; returns its info."""
    kind, key = SHIPPED[name]
    cpu_start = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        model, history = experiments.fit_profile(kind, profile, key=key, seed=seed, out=tmp, device="cpu")  # deit: from its teacher
        info = checkpoint.read_info(tmp)
    extra = dict(info)  # profile, seed, epoch, settings, metrics, summary, history (, distillation)
    extra["made_by"] = {
        "command": "python scripts/make_checkpoints.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
        "cpu_seconds": time.process_time() - cpu_start, "load_average": os.getloadavg(),  # other work slows training
    }
    checkpoint.save(root / name, model, kind=kind, extra=extra)  # no optimizer state: small, not resumable
    return checkpoint.read_info(root / name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(SHIPPED), choices=list(SHIPPED), metavar="NAME",
                        help=f"checkpoints to retrain (default: all of {' '.join(SHIPPED)})")
    parser.add_argument("--profile", default="cpu", help="profile whose runs to train (default: cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in args.names:
        start = time.perf_counter()
        try:
            info = make(name, args.profile, args.seed)
        except ValueError as err:
            sys.exit(f"error: {err}")
        s, size = info["summary"], sum(p.stat().st_size for p in (ROOT / name).iterdir()) / 1024
        print(f"{name}: test acc {info['metrics']['test_acc']:.2%} after {s['epochs']} epochs, "
              f"{s['train_seconds']:.0f} s of training ({time.perf_counter() - start:.0f} s in all), {size:.0f} KB")


if __name__ == "__main__":
    main()
