"""Throughput of our ConViT against timm's ConVit with the same weights (CPU by default).

Our GPSA computes the positional attention once per forward (H, N, N) instead of once per image,
and runs the content attention through fused SDPA (the gate mix is linear in the attention);
timm builds every (B, H, N, N) tensor explicitly. Ours and timm alternate round by round, so that
other load on the machine hits both alike; we report the median images/s and the median of the
per-round ratios. The `*_gpsa_layer` rows time the first GPSA layer alone (a batch of token
sequences), where the two differ; the whole-model rows also spend time in the patch embedding,
MLPs and linear layers, the same code in both, which caps the whole-model ratio (Amdahl).
Writes bench/results/convit_speed.json.

    python bench/convit_speed.py            # MNIST-sized model and convit_tiny at 224
    python bench/convit_speed.py --quick    # fewer rounds
    python bench/convit_speed.py --threads 8
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

from vit_tutorial.convit import ConViT
from vit_tutorial.timm_compat import to_timm

MNIST = dict(image_size=28, patch_size=4, in_channels=1, num_classes=10, dim=64, depth=6, heads=4,
             mlp_ratio=2.0, local_up_to_layer=4)
CASES = [  # name, batch, our model's config ({} is ConViT-Tiny), whole model or its first GPSA layer only
    dict(name="mnist", batch=128, model=MNIST, part="model"),
    dict(name="mnist_gpsa_layer", batch=128, model=MNIST, part="gpsa"),
    dict(name="convit_tiny_224", batch=8, model={}, part="model"),
    dict(name="tiny_gpsa_layer", batch=8, model={}, part="gpsa"),
]


def build(case: dict) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """Our model (or its first GPSA layer), timm's with the same weights, and an input batch."""
    torch.manual_seed(0)
    ours = ConViT(**case["model"])
    theirs = to_timm(ours)
    c = ours.config
    if case["part"] == "gpsa":
        return ours.blocks[0].attn, theirs.blocks[0].attn, torch.randn(case["batch"], c.num_patches, c.dim)
    return ours, theirs, torch.randn(case["batch"], c.in_channels, c.image_size, c.image_size)


def images_per_second(model: torch.nn.Module, x: torch.Tensor, train: bool, steps: int) -> float:
    """Time `steps` inference passes (no grad) or training steps (forward, backward, SGD update)."""
    model.train(train)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4) if train else None
    start = time.perf_counter()
    for _ in range(steps):
        if train:
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()  # any scalar loss: the backward pass costs the same
            opt.step()
        else:
            with torch.no_grad():
                model(x)
    return steps * x.shape[0] / (time.perf_counter() - start)


def compare(case: dict, mode: str, rounds: int, steps: int) -> dict:
    ours, theirs, x = build(case)
    train = mode == "train"
    for model in (ours, theirs):  # warm-up
        images_per_second(model, x, train, 2)
    a, b = [], []
    for _ in range(rounds):  # alternate
        a.append(images_per_second(ours, x, train, steps))
        b.append(images_per_second(theirs, x, train, steps))
    row = dict(case=case["name"], mode=mode, batch=case["batch"], ours_img_s=statistics.median(a),
               timm_img_s=statistics.median(b), ratio=statistics.median(p / q for p, q in zip(a, b)))
    print(f"{row['case']:>16} {mode:>9}  ours {row['ours_img_s']:8.1f} img/s  timm {row['timm_img_s']:8.1f} img/s"
          f"  ours/timm {row['ratio']:.2f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--cases", nargs="*", default=[c["name"] for c in CASES])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else 7
    rows = []
    for case in CASES:
        if case["name"] not in args.cases:
            continue
        steps = 5 if case["batch"] >= 64 else 3
        for mode in ("inference", "train"):
            rows.append(compare(case, mode, rounds, steps))
    out = Path(__file__).parent / "results" / "convit_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(date=str(date.today()), machine=platform.platform(), threads=torch.get_num_threads(),
                                   torch=torch.__version__, command=" ".join(sys.argv), cases=CASES, rows=rows), indent=1))


if __name__ == "__main__":
    main()
