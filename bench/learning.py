"""What each model learns in a profile, and how fast: test accuracy, training seconds, parameters, images/s.

Trains the runs of a profile (default: cpu, the digits on a 56 x 56 canvas) exactly as the notebooks
and `python -m vit_tutorial train` do, or reads the shipped checkpoints' JSON instead of training.
Images/s is the training throughput that the progress bar shows: training images over the
wall-clock seconds of the epochs (data loading included, evaluation excluded). The load average
is recorded because other processes on the machine slow training down; the process CPU time
(evaluation included) is a figure that other processes change less.
Writes bench/results/learning.json.

    python bench/learning.py                       # train the cpu runs of all six models
    python bench/learning.py --from-checkpoints    # report data/checkpoints/* without training
    python bench/learning.py --profile smoke --kinds vit
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vit_tutorial import checkpoint, experiments, profiles

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["cnn", "vit", "deit", "convit", "cait", "mixer"]
# The canvas recipe's targets (cpu profile, one thread): model -> (least test accuracy, most training seconds)
TARGETS = {"vit": (0.85, 300.0), "cnn": (0.97, None)}


def row(kind: str, info: dict, params: int) -> dict:
    s = info["summary"]
    return {
        "model": kind, "profile": info.get("profile"), "dataset": info.get("dataset"), "epochs": s["epochs"],
        "test_acc": info["metrics"]["test_acc"], "best_test_acc": s["best_test_acc"],
        "train_seconds": s["train_seconds"], "params": params, "images_per_s": s["images_per_s"],
        "threads": info.get("made_by", {}).get("threads", torch.get_num_threads()),
        "cpu_seconds": info.get("made_by", {}).get("cpu_seconds"),  # process CPU time, evaluation included
        "load_average": info.get("made_by", {}).get("load_average"),
    }


def target(r: dict) -> dict:
    """Whether a row meets its model's target in TARGETS (accuracy, and training time where there is one)."""
    acc, seconds = TARGETS[r["model"]]
    met = r["test_acc"] >= acc and (seconds is None or r["train_seconds"] <= seconds)
    return {"test_acc": acc, "train_seconds": seconds, "met": met}


def trained(kind: str, profile: str, seed: int) -> dict:
    import tempfile

    start = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = experiments.fit_profile(kind, profile, seed=seed, out=tmp, progress=sys.stderr.isatty())  # no bar in logs
        info = checkpoint.read_info(tmp)
    return row(kind, info, sum(p.numel() for p in model.parameters())) | {
        "cpu_seconds": time.process_time() - start, "load_average": os.getloadavg()}


def shipped(kind: str) -> dict:
    model, info = checkpoint.load(ROOT / "data" / "checkpoints" / kind)
    return row(kind, info, sum(p.numel() for p in model.parameters()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=KINDS, help=f"models (default: {' '.join(KINDS)})")
    parser.add_argument("--profile", default="cpu", choices=profiles.NAMES, help="profile to train (default: cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-checkpoints", action="store_true", help="read data/checkpoints/<kind> instead of training")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "learning.json")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    try:
        rows = [shipped(k) if args.from_checkpoints else trained(k, args.profile, args.seed) for k in args.kinds]
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"{'model':8} {'test acc':>9} {'best':>7} {'epochs':>6} {'train s':>8} {'CPU s':>7} {'params':>9} {'images/s':>9}")
    for r in rows:
        cpu = f"{r['cpu_seconds']:7.0f}" if r["cpu_seconds"] is not None else f"{'-':>7}"
        print(f"{r['model']:8} {r['test_acc']:9.2%} {r['best_test_acc']:7.2%} {r['epochs']:6d} "
              f"{r['train_seconds']:8.1f} {cpu} {r['params']:9,d} {r['images_per_s']:9.0f}")
    for r in rows:
        if args.profile == "cpu" and r["model"] in TARGETS:
            r["target"] = target(r)
            acc, seconds = TARGETS[r["model"]]
            print(f"target {r['model']}: at least {acc:.0%}" + (f" in at most {seconds:.0f} s" if seconds else "")
                  + f": {'met' if r['target']['met'] else 'not met'} ({r['test_acc']:.2%} in {r['train_seconds']:.0f} s)")
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "command": " ".join(["python", "bench/learning.py", *(argv if argv is not None else sys.argv[1:])]),
        "source": "shipped checkpoints" if args.from_checkpoints else f"trained, profile {args.profile}",
        "load_before": load_before, "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
