"""Retrain the shipped checkpoints in data/checkpoints/<kind>/ with the cpu profile (`make checkpoints`).

The notebooks load these in the smoke profile instead of training for minutes. Each is trained on
the CPU (so that its recorded test accuracy is reproduced exactly by evaluating it there) and
saved without optimizer state, which keeps it to a few hundred KB.

    python scripts/make_checkpoints.py             # every kind in KINDS
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
KINDS = ["cnn", "vit", "deit", "convit", "cait"]  # add a kind here once profiles.py has a cpu run for it; deit after its teacher


def make(kind: str, profile: str = "cpu", seed: int = 0, root: Path = ROOT) -> dict:
    """Train `kind` with `profile`'s run on the CPU and save it, weights only, to root/kind; returns its info."""
    cpu_start = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        model, history = experiments.fit_profile(kind, profile, seed=seed, out=tmp, device="cpu")  # deit: from its teacher
        info = checkpoint.read_info(tmp)
    extra = dict(info)  # profile, seed, epoch, settings, metrics, summary, history (, distillation)
    extra["made_by"] = {
        "command": "python scripts/make_checkpoints.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
        "cpu_seconds": time.process_time() - cpu_start, "load_average": os.getloadavg(),  # other work slows training
    }
    checkpoint.save(root / kind, model, kind=kind, extra=extra)  # no optimizer state: small, not resumable
    return checkpoint.read_info(root / kind)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds", nargs="*", default=KINDS, help=f"models to retrain (default: {' '.join(KINDS)})")
    parser.add_argument("--profile", default="cpu", help="profile whose runs to train (default: cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for kind in args.kinds:
        start = time.perf_counter()
        try:
            info = make(kind, args.profile, args.seed)
        except ValueError as err:
            sys.exit(f"error: {err}")
        s, size = info["summary"], sum(p.stat().st_size for p in (ROOT / kind).iterdir()) / 1024
        print(f"{kind}: test acc {info['metrics']['test_acc']:.2%} after {s['epochs']} epochs, "
              f"{s['train_seconds']:.0f} s of training ({time.perf_counter() - start:.0f} s in all), {size:.0f} KB")


if __name__ == "__main__":
    main()
