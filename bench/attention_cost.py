"""What attention costs as the number of tokens N grows: explicit vs fused self-attention, and class attention.

Four layers of the package, forward only (inference), on one sequence of N tokens:
- `self_explicit`: `MultiHeadSelfAttention` with `fused = False` (builds the N x N weights),
- `self_fused`: the same layer on `F.scaled_dot_product_attention` (never builds them),
- `class_explicit` / `class_fused`: CaiT's `ClassAttention` (one query, the class token, against N keys).
Each includes its linear projections, as a model pays them. Time: the median over rounds in which
the four take turns. Peak memory: the bytes allocated during one call above what was allocated
before it; on CUDA `torch.cuda.max_memory_allocated`, on CPU the allocator events that
`torch.profiler` records (or, where that fails, an estimate from the tensor shapes; the JSON
says which). Then log-log slopes (cost ~ N^slope) and the crossovers: the N from which fused
self-attention is faster than explicit, and from which class attention costs 10x less than
self-attention. Writes bench/results/attention_cost.json.

    python bench/attention_cost.py                  # N = 16 .. 4096 on CPU (.. 16384 on a GPU)
    python bench/attention_cost.py --quick --out /tmp
"""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

import common
from vit_tutorial import profiles
from vit_tutorial.attention import MultiHeadSelfAttention
from vit_tutorial.cait import ClassAttention

VARIANTS = ["self_explicit", "self_fused", "class_explicit", "class_fused"]
MiB = 2**20


def layers(dim: int, heads: int) -> dict[str, nn.Module]:
    """The four attention layers, in eval mode; explicit and fused share nothing but their shapes."""
    out = {}
    for name in VARIANTS:
        layer = (MultiHeadSelfAttention if name.startswith("self") else ClassAttention)(dim, heads)
        layer.fused = name.endswith("fused")
        out[name] = layer.eval()
    return out


def peak_bytes(fn, dev: torch.device) -> tuple[int, str]:
    """Peak bytes allocated while `fn` runs, above those allocated before; and how it was measured."""
    if dev.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before, "cuda max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocs = [e.extra_fields for e in _walk(prof.profiler.kineto_results.experimental_event_tree())
              if hasattr(e.extra_fields, "alloc_size") and hasattr(e.extra_fields, "total_allocated")]
    if not allocs:
        raise RuntimeError("the profiler recorded no allocations")
    start = allocs[0].total_allocated - allocs[0].alloc_size
    return max(a.total_allocated for a in allocs) - start, "cpu torch.profiler allocation events"


@contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ start/stop lines, written straight to file descriptor 2."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _walk(nodes):
    for node in sorted(nodes, key=lambda n: n.start_time_ns):
        yield node
        yield from _walk(node.children)


def estimate_bytes(name: str, batch: int, n: int, dim: int, heads: int) -> int:
    """fp32 bytes of what a layer holds at its peak: its (B, H, Nq, Nk) score and weight tensors
    (explicit paths only) plus the (B, N, D) projections (q, k, v and the output)."""
    queries = n if name.startswith("self") else 1
    matrices = 2 * batch * heads * queries * n if name.endswith("explicit") else 0
    return 4 * (matrices + batch * (3 * n + queries) * dim)


def measure(n: int, mods: dict[str, nn.Module], batch: int, dim: int, heads: int, dev: torch.device,
            budget_s: float) -> list[dict]:
    """Rows for one N: median seconds (rounds fitted to the time budget) and peak bytes of each layer."""
    x = torch.randn(batch, n, dim, device=dev)
    calls = {name: (lambda m=m: m(x)) for name, m in mods.items()}
    with torch.inference_mode():
        probe = sum(common.seconds(f, dev) for f in calls.values())
        rounds = max(3, min(30, int(budget_s / max(probe, 1e-9))))
        times = common.alternate(calls, rounds, warmup=1, dev=dev)
        rows = []
        for name, fn in calls.items():
            try:
                peak, method = peak_bytes(fn, dev)
            except Exception as err:  # a torch without these profiler internals: say so, estimate
                peak, method = estimate_bytes(name, batch, n, dim, heads), f"estimate ({type(err).__name__})"
            rows.append(dict(variant=name, tokens=n, batch=batch, heads=heads, dim=dim, rounds=rounds,
                             seconds=float(np.median(times[name])), peak_bytes=int(peak), memory_method=method,
                             estimate_bytes=estimate_bytes(name, batch, n, dim, heads)))
    return rows


def slope(ns: list[int], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log N: cost ~ N^slope."""
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys) if y > 0]
    return float(np.polyfit(*zip(*pts), 1)[0]) if len(pts) >= 2 else None


def crossover(ns: list[int], ratio: list[float], threshold: float) -> float | None:
    """Smallest N from which `ratio` stays >= threshold, interpolated in log-log between grid
    points; None if it never gets there (or is there already at the smallest N: then ns[0])."""
    above = [r >= threshold for r in ratio]
    if not above[-1]:
        return None
    i = len(above) - 1
    while i > 0 and above[i - 1]:
        i -= 1
    if i == 0:
        return float(ns[0])
    (n0, r0), (n1, r1) = (ns[i - 1], ratio[i - 1]), (ns[i], ratio[i])
    t = (math.log(threshold) - math.log(r0)) / (math.log(r1) - math.log(r0))
    return float(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))


def summarise(rows: list[dict]) -> dict:
    """Slopes (all N, and the upper half of the range where the leading term rules) and crossovers."""
    by = {v: [r for r in rows if r["variant"] == v] for v in VARIANTS}
    ns = [r["tokens"] for r in by["self_fused"]]
    t = {v: [r["seconds"] for r in by[v]] for v in VARIANTS}
    m = {v: [r["peak_bytes"] for r in by[v]] for v in VARIANTS}
    half = len(ns) // 2
    out = {"slopes": {v: dict(time_all=slope(ns, t[v]), time_upper=slope(ns[half:], t[v][half:]),
                              memory_all=slope(ns, m[v]), memory_upper=slope(ns[half:], m[v][half:]))
                      for v in VARIANTS}}
    ratio = lambda a, b: [x / y if y > 0 else math.inf for x, y in zip(a, b)]  # noqa: E731
    out["crossovers"] = {
        "fused_faster_than_explicit_from_N": crossover(ns, ratio(t["self_explicit"], t["self_fused"]), 1.0),
        "fused_uses_10x_less_memory_from_N": crossover(ns, ratio(m["self_explicit"], m["self_fused"]), 10.0),
        "class_10x_faster_than_self_fused_from_N": crossover(ns, ratio(t["self_fused"], t["class_fused"]), 10.0),
        "class_10x_faster_than_self_explicit_from_N": crossover(ns, ratio(t["self_explicit"], t["class_explicit"]), 10.0),
        "class_10x_less_memory_than_self_explicit_from_N": crossover(ns, ratio(m["self_explicit"], m["class_explicit"]), 10.0),
    }
    return out


def report(rows: list[dict], summary: dict) -> None:
    ns = sorted({r["tokens"] for r in rows})
    cell = {(r["variant"], r["tokens"]): r for r in rows}
    wide = [{"N": n} | {f"{v} ms": 1e3 * cell[v, n]["seconds"] for v in VARIANTS} for n in ns]
    print(common.table(wide, list(wide[0]), {k: ".3f" for k in wide[0] if k != "N"}))
    wide = [{"N": n} | {f"{v} MiB": cell[v, n]["peak_bytes"] / MiB for v in VARIANTS} for n in ns]
    print(f"\npeak memory ({rows[0]['memory_method']}):")
    print(common.table(wide, list(wide[0]), {k: ".3f" for k in wide[0] if k != "N"}))
    print("\nlog-log slopes (cost ~ N^slope; 'upper' = the upper half of the N range):")
    slopes = [{"variant": v} | s for v, s in summary["slopes"].items()]
    print(common.table(slopes, list(slopes[0]), {k: ".2f" for k in slopes[0] if k != "variant"}))
    print("\ncrossovers (interpolated N; '-' = not reached in this range):")
    for k, v in summary["crossovers"].items():
        print(f"  {k:48s} {'-' if v is None else round(v)}")


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--max-tokens", type=int, default=0, help="largest N (default: 4096 on CPU, 16384 on a GPU)")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    dev = common.device()
    settings = profiles.get("gpu" if dev.type == "cuda" else "cpu").runs.get("self_attention", {})
    heads, head_dim = settings.get("cost_heads", 4), settings.get("cost_head_dim", 32)
    batch = 1
    top = args.max_tokens or (256 if args.quick else 16384 if dev.type == "cuda" else 4096)
    ns = [2**k for k in range(4, int(math.log2(top)) + 1, 2 if args.quick else 1)]
    started = common.machine()
    print(common.header(started) + f"\n{dev.type}: B={batch}, H={heads}, hd={head_dim}, N={ns}")
    torch.manual_seed(0)
    mods = {k: m.to(dev) for k, m in layers(heads * head_dim, heads).items()}
    rows = []
    for n in ns:
        rows += measure(n, mods, batch, heads * head_dim, heads, dev, budget_s=0.05 if args.quick else 1.0)
    summary = summarise(rows)
    report(rows, summary)
    common.write("attention_cost", args.out, rows, started, argv, device=dev.type, summary=summary,
                 memory_method=rows[0]["memory_method"])


if __name__ == "__main__":
    main()
