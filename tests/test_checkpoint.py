"""Checkpoints: a faithful round trip, atomic writes, and no pickle ever loaded."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vit_tutorial import ViT, checkpoint, folders

TINY = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, dim=16, depth=1, heads=2, mlp_ratio=2.0)


def _model(seed: int = 0) -> ViT:
    torch.manual_seed(seed)
    return ViT(**TINY)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_rebuilds_the_model_with_its_info(tmp_path):
    model = _model()
    checkpoint.save(tmp_path, model, kind="vit", extra={"epoch": 3, "metrics": {"test_acc": 0.5}})
    loaded, info = checkpoint.load(tmp_path)
    assert type(loaded) is ViT and not loaded.training
    assert _same_weights(model, loaded)
    assert info["kind"] == "vit" and info["epoch"] == 3 and info["metrics"] == {"test_acc": 0.5}
    assert info["model"] == model.config.to_dict()
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model.eval()(x), loaded(x))
    assert checkpoint.load(tmp_path / "config.json")[1] == info  # the JSON or the weights file name the checkpoint too
    weights = info["files"]["weights"]["name"]  # named by its content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", weights] and weights.startswith("model-")
    assert checkpoint.load(tmp_path / weights)[1] == info


def test_kind_is_found_from_the_class_and_unknown_kinds_are_clear():
    assert checkpoint.kind_of(_model()) == "vit"
    assert type(checkpoint.build("vit", **TINY)) is ViT
    with pytest.raises(ValueError, match="unknown model kind 'resnet'"):
        checkpoint.build("resnet")
    with pytest.raises(ValueError, match="not a registered model"):
        checkpoint.kind_of(torch.nn.Linear(2, 2))


def test_training_state_round_trips_through_safetensors_and_json(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    rng = {"numpy": np.random.get_state(), "python": (3, (1, 2, 3), None), "torch": torch.get_rng_state()}
    checkpoint.save(tmp_path, model, kind="vit", optimizer=opt, state={"rng": rng})
    state = checkpoint.load_training_state(tmp_path)
    saved, ref = state["optimizer"], opt.state_dict()
    assert saved["param_groups"] == ref["param_groups"]  # betas stay a tuple
    assert saved["state"].keys() == ref["state"].keys()  # integer keys stay integers
    for i, s in ref["state"].items():
        assert all(torch.equal(s[k], saved["state"][i][k]) for k in s)
    np_state = state["state"]["rng"]["numpy"]
    assert np_state[0] == "MT19937" and np.array_equal(np_state[1], rng["numpy"][1]) and np_state[1].dtype == np.uint32
    assert state["state"]["rng"]["python"] == (3, (1, 2, 3), None)
    assert torch.equal(state["state"]["rng"]["torch"], rng["torch"])
    assert state["scheduler"] is None
    # saving again without training state removes the stale files
    checkpoint.save(tmp_path, model, kind="vit")
    with pytest.raises(ValueError, match="no training state"):
        checkpoint.load_training_state(tmp_path)
    assert not list(tmp_path.glob("training_state-*"))


@pytest.mark.parametrize("failing", ["save_file", "json"])
def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch, failing):
    old = _model(0)
    checkpoint.save(tmp_path, old, kind="vit", extra={"epoch": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def half_written(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    if failing == "save_file":
        monkeypatch.setattr(checkpoint.safetensors.torch, "save_file", lambda tensors, path, **kw: half_written(path))
    else:  # tensors staged and moved in fine, then config.json fails
        real = checkpoint.stage
        monkeypatch.setattr(checkpoint, "stage", lambda folder, role, write, names: real(
            folder, role, half_written if role == "config" else write, names))
    with pytest.raises(ValueError, match="could not write the checkpoint.*disk full.*unchanged"):
        checkpoint.save(tmp_path, _model(1), kind="vit", extra={"epoch": 2})
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing replaced, no temp files left
    assert all(k in before or folders.provably_ours(tmp_path / k) for k in after)  # new files are removable
    loaded, info = checkpoint.load(tmp_path)
    assert info["epoch"] == 1 and _same_weights(loaded, old)


class _RunsCode:
    """Unpickling this creates a file: the side effect a malicious pickle would have."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "blob"])
def test_pickles_are_refused_without_being_run(tmp_path, name):
    marker = tmp_path / "pwned"
    evil = tmp_path / "ckpt" / name
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ValueError, match="pickle"):
        checkpoint.load(evil)
    with pytest.raises(ValueError, match="pickle"):
        checkpoint.load(evil.parent)  # a directory holding only a pickle
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # the control: this pickle really does run code
    assert marker.exists()


def test_a_pickle_in_place_of_the_weights_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint.save(tmp_path / "ckpt", _model(), kind="vit")
    weights = checkpoint.read_info(tmp_path / "ckpt")["files"]["weights"]["name"]
    (tmp_path / "ckpt" / weights).write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ValueError):
        checkpoint.load(tmp_path / "ckpt")
    assert not marker.exists()


def test_tampered_or_truncated_files_are_clear_errors(tmp_path):
    checkpoint.save(tmp_path, _model(), kind="vit")
    weights = tmp_path / checkpoint.read_info(tmp_path)["files"]["weights"]["name"]
    good = weights.read_bytes()
    flipped = bytearray(good)
    flipped[-5] ^= 0xFF  # one weight changed: still a valid safetensors file
    weights.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="changed or truncated"):
        checkpoint.load(tmp_path)
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="changed or truncated"):
        checkpoint.load(tmp_path)
    # a truncation that also rewrote the recorded hashes (config.json's own too) still cannot be read
    config = json.loads((tmp_path / "config.json").read_text())
    config["files"]["weights"] |= {"sha256": checkpoint.hashlib.sha256(good[:100]).hexdigest(), "bytes": 100}
    config["sha256"] = checkpoint._digest(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights.write_bytes(good[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        checkpoint.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        checkpoint.load(tmp_path)


def test_missing_checkpoint_and_mismatched_weights(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        checkpoint.load(tmp_path / "nothing")
    checkpoint.save(tmp_path, _model(), kind="vit")
    with pytest.raises(ValueError, match="do not fit"):
        checkpoint.load_weights(tmp_path, ViT(**{**TINY, "dim": 32}))


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "data" / "checkpoints").glob("*/config.json"))
SHIPPED_KINDS = {"cnn_weak": "cnn", "vit_learned": "vit"}  # checkpoints named after their run, not their kind


@pytest.mark.parametrize("config", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_checkpoints_reproduce_their_recorded_accuracy(config):
    from vit_tutorial import data, train

    model, info = checkpoint.load(config.parent)
    assert info["kind"] == SHIPPED_KINDS.get(config.parent.name, config.parent.name)
    assert info["dataset"] in ("canvas", "mnist5k") and info["profile"] == "cpu"
    assert checkpoint.STATE not in info["files"]  # weights only: small
    assert sum(p.stat().st_size for p in config.parent.iterdir()) < 1_000_000
    got = train.evaluate(model, data.load(info["dataset"], "test"), device="cpu")
    assert got["acc"] == pytest.approx(info["metrics"]["test_acc"], abs=1e-6)
    assert got["loss"] == pytest.approx(info["metrics"]["test_loss"], rel=1e-4)


def test_a_config_with_unknown_settings_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot build ViT.*wings"):
        checkpoint.build("vit", wings=2)
