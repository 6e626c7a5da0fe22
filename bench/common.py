"""Shared helpers of the bench scripts: command-line options, timing with warm-up and median,
the machine description, a plain-text table, and the JSON result file.

Every script writes `<out>/<name>.json` with the date, the machine (platform, CPU count, GPU),
the torch version, the threads, the load average before and after (other processes slow a
benchmark down) and the command line, so that a figure can always be traced to its run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every bench script has: --out, --quick, --threads."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=RESULTS, help=f"folder for the JSON result (default: {RESULTS})")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: checks that the script runs")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: all cores)")
    return p


def set_threads(threads: int) -> int:
    """Use `threads` CPU threads (0: one per core) for every measurement of the run; returns the number."""
    n = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return torch.get_num_threads()


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(dev: torch.device | str) -> None:
    """Wait for queued GPU work, so that a timer measures it (a no-op on CPU)."""
    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize()


def seconds(fn: Callable[[], object], dev: torch.device | str = "cpu") -> float:
    """Wall-clock seconds of one call of `fn`, GPU work included."""
    sync(dev)
    start = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 2, dev: torch.device | str = "cpu") -> float:
    """Median seconds of `repeats` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(seconds(fn, dev) for _ in range(repeats))


def alternate(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2,
              dev: torch.device | str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each of `fns`, taking turns round by round (A B, B A, A B, ...), so that a
    change in the machine's load hits all of them alike and none always goes first. Each function
    is warmed up first."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else reversed(list(fns)):
            times[name].append(seconds(fns[name], dev))
    return times


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (`uptime`), or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine() -> dict:
    """Where the figures come from: platform, CPU, cores, threads, GPU, library versions, load."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(
        platform=platform.platform(), processor=_cpu_name(), cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(), gpu=gpu, python=platform.python_version(), torch=torch.__version__,
        load_average=load_average(),
    )


def header(info: dict) -> str:
    """One line saying where the run happens, with a warning when other processes load the CPUs:
    then several threads per op wait on each other and small ops slow down by orders of magnitude."""
    line = f"{info['processor']}, {info['cpu_count']} cores, torch threads {info['threads']}, gpu {info['gpu']}, " \
           f"load {info['load_average']}"
    load = (info["load_average"] or [0])[0]
    if info["threads"] > 1 and load > (info["cpu_count"] or 1):
        line += f"\nwarning: load {load} > {info['cpu_count']} cores: multi-threaded timings are unreliable; try --threads 1"
    return line


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(rows: Sequence[dict], columns: Sequence[str], formats: dict[str, str] | None = None) -> str:
    """Rows of dicts as a fixed-width text table; `formats` maps a column to a format spec ('.2f')."""
    formats = formats or {}

    def cell(row: dict, col: str) -> str:
        value = row.get(col, "")
        if value is None:
            return "-"
        return format(value, formats[col]) if col in formats and isinstance(value, (int, float)) else str(value)

    cells = [[cell(r, c) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def write(name: str, out: Path, rows: list[dict], started: dict, argv: list[str] | None = None, **extra) -> Path:
    """Write `<out>/<name>.json`: date, machine (as measured at the start, with the load at the end
    added), the command line (`bench/<name>.py` with `argv`, default sys.argv[1:]), any `extra`
    fields and the rows. Returns the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    argv = sys.argv[1:] if argv is None else argv
    info = dict(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        machine=started | {"load_average_after": load_average()},
        command=" ".join(["python", f"bench/{name}.py", *argv]),
        **extra,
        rows=rows,
    )
    path = out / f"{name}.json"
    path.write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {path}")
    return path
