"""Separate q, k, v projections (as in the equations) vs one fused qkv linear (as timm): which is faster?

Prints forward+backward time per batch for both layouts on this machine and writes
bench/results/qkv_layout.json. The package uses the fused layout; this script is why.
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch
from torch import nn


class Separate(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        return self.q(x), self.k(x), self.v(x)


class Fused(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)

    def forward(self, x):
        return self.qkv(x).chunk(3, dim=-1)


def step_time(module, x, repeats=30):
    times = []
    for i in range(repeats + 5):
        t = time.perf_counter()
        q, k, v = module(x)
        (q.sum() + k.sum() + v.sum()).backward()
        if i >= 5:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    rows = []
    for d, n, b in [(64, 17, 128), (192, 197, 8), (384, 65, 64)]:
        x = torch.randn(b, n, d)
        sep, fus = Separate(d), Fused(d)
        ts, tf = [], []
        for _ in range(3):  # alternate so machine load hits both alike
            ts.append(step_time(sep, x))
            tf.append(step_time(fus, x))
        rows.append(dict(dim=d, tokens=n, batch=b, separate_ms=1e3 * min(ts), fused_ms=1e3 * min(tf),
                         speedup=min(ts) / min(tf)))
        print(f"D={d:4d} N={n:4d} B={b:4d}  separate {rows[-1]['separate_ms']:.2f} ms  fused {rows[-1]['fused_ms']:.2f} ms"
              f"  separate/fused = {rows[-1]['speedup']:.2f}")
    out = Path(__file__).parent / "results" / "qkv_layout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(date=str(date.today()), machine=platform.platform(), cpus=torch.get_num_threads(),
                                   torch=torch.__version__, command=" ".join(sys.argv), rows=rows), indent=1))


if __name__ == "__main__":
    main()
