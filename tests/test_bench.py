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
    for v in info["verdicts"]:
        assert v["lowest"] <= v["median_model_ratio"] <= v["highest"]
        assert v["meets"] == (v["shortfall"] == 0) == (v["median_model_ratio"] >= v["target"])


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


def test_fit_speed_quick(run_script):
    info = run_script("fit_speed")
    assert info["profile"] == "smoke" and {r["family"] for r in info["rows"]} == {"vit", "convit", "cait"}
    for r in info["rows"]:
        assert len(r["epoch_seconds"]) == r["epochs"] == 2 and r["steady_img_s"] > 0
        assert r["steady_img_s"] == pytest.approx(r["images"] / r["steady_epoch_s"])
    e = info["vit_efficiency"]
    assert e["achieved_flop_s"] == pytest.approx(e["train_flops_per_image"] * info["rows"][0]["steady_img_s"])
    assert 0 < e["share"] == pytest.approx(e["achieved_flop_s"] / e["matmul_flop_s"])


def test_vit_flops_follow_the_shapes(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_fit_speed", BENCH / "fit_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from torch.utils.flop_counter import FlopCounterMode

    from vit_tutorial.vit import ViT, ViTConfig

    config = ViTConfig(image_size=56, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=4, heads=2, mlp_ratio=2.0)
    model, x = ViT(config), torch.randn(2, 1, 56, 56)
    for block in model.blocks:
        block.attn.fused = False  # explicit products: torch's counter sees them (it skips the fused kernel)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    assert module.vit_train_flops(config) == pytest.approx(counter.get_total_flops() / 2, rel=0.01)


def test_fit_speed_compare_break_even(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_fit_speed", BENCH / "fit_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = dict(family="vit", device="cpu", steps_per_epoch=10, peak_mem_mib=None)
    eager = row | dict(first_epoch_s=1.2, steady_epoch_s=1.0, steady_img_s=100.0)
    compiled = row | dict(first_epoch_s=30.8, steady_epoch_s=0.8, steady_img_s=125.0)
    c = module.compare(eager, compiled)
    assert c["ratio"] == pytest.approx(1.25)
    assert c["compile_overhead_s"] == pytest.approx(29.8)  # 30.0 extra in its first epoch, minus eager's 0.2
    assert c["break_even_steps"] == 1490  # 29.8 s / 0.02 s saved per step
    slower = module.compare(eager, compiled | dict(steady_epoch_s=1.1, steady_img_s=90.0))
    assert slower["break_even_steps"] is None


def _learning(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_learning", BENCH / "learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_trains_the_smoke_runs(monkeypatch, tmp_path):
    learning = _learning(monkeypatch)
    threads = torch.get_num_threads()
    try:
        learning.main(["--profile", "smoke", "--kinds", "cnn", "mixer", "--threads", "1", "--out", str(tmp_path / "l.json")])
    finally:
        torch.set_num_threads(threads)
    info = json.loads((tmp_path / "l.json").read_text())
    assert [r["model"] for r in info["rows"]] == ["cnn", "mixer"] and info["source"] == "trained, profile smoke"
    for r in info["rows"]:
        assert 0 <= r["test_acc"] <= 1 and r["train_seconds"] > 0 and r["params"] > 0 and r["epochs"] == 1
        assert "target" not in r  # targets are the cpu profile's


@pytest.mark.parametrize("model, acc, seconds, met", [
    ("vit", 0.86, 290.0, True), ("vit", 0.86, 310.0, False), ("vit", 0.84, 100.0, False),
    ("cnn", 0.975, 1e6, True), ("cnn", 0.965, 10.0, False),
])
def test_learning_targets(monkeypatch, model, acc, seconds, met):
    learning = _learning(monkeypatch)
    assert learning.target({"model": model, "test_acc": acc, "train_seconds": seconds})["met"] is met
