"""The bench scripts run end to end in their tiny --quick mode and write well-formed JSON.

No timed assertions: speed goals live in the scripts, which print their ratios and targets.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def run_script(monkeypatch, tmp_path):
    """Run bench/<name>.py's main() in this process (torch and timm are imported once), in --quick
    mode with one thread, writing to tmp_path; returns the JSON it wrote after checking its header."""
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their neighbour `common`
    threads = torch.get_num_threads()

    def run(name: str) -> dict:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            module.main(["--quick", "--threads", "1", "--out", str(tmp_path)])
        finally:
            torch.set_num_threads(threads)
        info = json.loads((tmp_path / f"{name}.json").read_text())
        for key in ("date", "machine", "command", "rows"):
            assert key in info, key
        assert info["machine"]["torch"] == torch.__version__ and info["machine"]["cpu_count"] >= 1
        assert info["machine"]["threads"] == 1
        assert info["command"].startswith(f"python bench/{name}.py --quick")
        assert info["rows"], "no rows"
        return info

    return run


def test_throughput_quick(run_script):
    info = run_script("throughput")
    rows = info["rows"]
    assert {r["family"] for r in rows} == {"vit", "deit", "convit", "cait"}
    assert {(r["part"], r["mode"]) for r in rows} == {(p, m) for p in ("model", "attn") for m in ("inference", "train")}
    for r in rows:
        assert r["ours_img_s"] > 0 and r["timm_img_s"] > 0
        assert r["ratio_q1"] <= r["ratio"] <= r["ratio_q3"]
        assert r["meets"] == (r["ratio"] >= r["target"])


def test_attention_cost_quick(run_script):
    info = run_script("attention_cost")
    rows = info["rows"]
    variants = {"self_explicit", "self_fused", "class_explicit", "class_fused"}
    assert {r["variant"] for r in rows} == variants
    largest = max(r["tokens"] for r in rows)
    peak = {r["variant"]: r["peak_bytes"] for r in rows if r["tokens"] == largest}
    assert all(r["seconds"] > 0 and r["peak_bytes"] > 0 for r in rows)
    # explicit self-attention holds (B, H, N, N) weights; the others hold O(N) tensors only
    assert peak["self_explicit"] > 2 * peak["self_fused"]
    assert peak["self_explicit"] > 2 * peak["class_explicit"]
    assert set(info["summary"]["slopes"]) == variants
    assert "fused_faster_than_explicit_from_N" in info["summary"]["crossovers"]


def test_suite_quick(run_script):
    info = run_script("suite")
    (unit,) = info["rows"]
    assert unit["kind"] == "unit" and unit["rc"] == 0 and "passed" in unit["summary"]
    assert info["totals"]["total_s"] == pytest.approx(unit["seconds"], abs=0.01)
