"""How long the test suite takes: the unit tests, then every notebook under nbval in the smoke profile.

Runs what `make test` runs, piece by piece, one subprocess each, with VIT_TUTORIAL_PROFILE=smoke:
`pytest -q tests`, then for each notebook `pytest -q --nbval-lax --nbval-current-env
--nbval-sanitize-with notebooks/sanitize.cfg notebooks/XX.ipynb`. Targets: the whole of `make
test` (install excluded) under 5 minutes on 2 cores, and no notebook over 45 s. The children are
pinned to the first `--cores` CPUs where the OS allows it, so a bigger machine measures the
target's 2 cores. The sum is a slight upper bound of `make test`, which starts pytest twice, not
once per notebook. Works on whatever notebooks exist. Writes bench/results/suite.json.

    python bench/suite.py                          # unit tests and all notebooks
    python bench/suite.py --notebooks notebooks/04_vit.ipynb
    python bench/suite.py --quick --out /tmp       # one small test file, no notebooks (tests)
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
TOTAL_TARGET_S = 300.0  # the whole of `make test`
NOTEBOOK_TARGET_S = 45.0  # each notebook
QUICK_TESTS = ["tests/test_profiles.py"]
NBVAL = ["--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", "notebooks/sanitize.cfg"]


def pin(cores: int):
    """A preexec function that keeps a child on the first `cores` CPUs (None where that is not possible)."""
    if cores <= 0 or not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 0) <= cores:
        return None
    allowed = sorted(os.sched_getaffinity(0))[:cores]
    return lambda: os.sched_setaffinity(0, allowed)


def run_pytest(name: str, kind: str, args: list[str], cores: int, durations: int = 0) -> dict:
    """Run `python -m pytest -q <args>` in the smoke profile; seconds, exit code and pytest's summary."""
    cmd = [sys.executable, "-m", "pytest", "-q", *args] + ([f"--durations={durations}"] if durations else [])
    env = os.environ | {"VIT_TUTORIAL_PROFILE": "smoke"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=pin(cores))
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error)", ln)), "")
    row = dict(name=name, kind=kind, seconds=round(seconds, 2), rc=proc.returncode, summary=summary,
               command=" ".join(["python", "-m", "pytest", "-q", *args]))
    if durations:
        row["slowest"] = [ln.strip() for ln in lines if re.match(r"\s*\d+\.\d+s (call|setup|teardown)", ln)]
    if proc.returncode != 0:
        row["output_tail"] = (proc.stdout + proc.stderr)[-2000:]
    return row


def judge(rows: list[dict]) -> dict:
    """Each row against its target, and the total against the suite's; rows get `target_s` and `meets`."""
    for row in rows:
        row["target_s"] = NOTEBOOK_TARGET_S if row["kind"] == "notebook" else None
        row["meets"] = row["rc"] == 0 and (row["target_s"] is None or row["seconds"] <= row["target_s"])
    total = sum(r["seconds"] for r in rows)
    return dict(total_s=round(total, 2), total_target_s=TOTAL_TARGET_S,
                total_meets=total <= TOTAL_TARGET_S and all(r["rc"] == 0 for r in rows),
                slowest_notebook=max((r for r in rows if r["kind"] == "notebook"), key=lambda r: r["seconds"],
                                     default={}).get("name"))


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--tests", nargs="*", help="unit-test paths (default: tests; --quick: one small file)")
    p.add_argument("--notebooks", nargs="*", help="notebooks to run (default: notebooks/*.ipynb; --quick: none)")
    p.add_argument("--cores", type=int, default=2, help="pin the children to this many CPUs (0: no pinning)")
    args = p.parse_args(argv)
    common.set_threads(args.threads)  # recorded with the machine; the children choose their own
    tests = args.tests if args.tests is not None else (QUICK_TESTS if args.quick else ["tests"])
    notebooks = args.notebooks if args.notebooks is not None else (
        [] if args.quick else [str(nb.relative_to(ROOT)) for nb in sorted((ROOT / "notebooks").glob("*.ipynb"))])
    started = common.machine()
    pinned = pin(args.cores) is not None
    print(f"{started['cpu_count']} cores{f', children pinned to {args.cores}' if pinned else ''}, "
          f"load {started['load_average']}; {len(notebooks)} notebooks")
    rows = []
    if tests:
        rows.append(run_pytest("unit tests", "unit", tests, args.cores, durations=10))
        print(f"  unit tests {rows[-1]['seconds']:7.1f} s  {rows[-1]['summary']}", flush=True)
    for nb in notebooks:
        rows.append(run_pytest(Path(nb).stem, "notebook", NBVAL + [nb], args.cores))
        print(f"  {Path(nb).stem:18s} {rows[-1]['seconds']:7.1f} s  {rows[-1]['summary']}", flush=True)
    totals = judge(rows)
    print()
    print(common.table(rows, ["name", "kind", "seconds", "rc", "target_s", "meets", "summary"], {"seconds": ".1f"}))
    print(f"\ntotal {totals['total_s']:.1f} s (target <= {TOTAL_TARGET_S:.0f} s on 2 cores, install excluded): "
          f"{'meets' if totals['total_meets'] else 'MISSES'}; every notebook <= {NOTEBOOK_TARGET_S:.0f} s: "
          f"{'yes' if all(r['meets'] for r in rows if r['kind'] == 'notebook') else 'NO'}")
    if rows and rows[0].get("slowest"):
        print("slowest unit tests:\n  " + "\n  ".join(rows[0]["slowest"]))
    common.write("suite", args.out, rows, started, argv, totals=totals, cores=args.cores, pinned=pinned,
                 profile="smoke")


if __name__ == "__main__":
    main()
