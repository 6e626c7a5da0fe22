"""Adversarial checkpoints: edited, forged, damaged or foreign folders; interrupted and concurrent saves.

Every case asserts the exact outcome: the error and the words that name the problem, and that no
file was changed or removed (bytes and mtimes) wherever something was refused.
"""
import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch

from vit_tutorial import ViT, checkpoint, folders

TINY = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, dim=16, depth=1, heads=2, mlp_ratio=2.0)


def _model(seed=0):
    torch.manual_seed(seed)
    return ViT(**TINY)


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def _config(folder):
    return json.loads((folder / "config.json").read_text())


def _write_config(folder, info, rehash=True):
    if rehash:
        info["sha256"] = checkpoint._digest(info)
    (folder / "config.json").write_text(json.dumps(info))


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "ckpt"
    checkpoint.save(folder, _model(), extra={"epoch": 3, "history": {"epoch": [1, 2, 3]}, "metrics": {"test_acc": 0.9}})
    return folder


# --- config.json edited without (A) and with (B) its hash recomputed -----------------------------
EDITS = {
    "heads 2 -> 1": lambda i: i["model"].update(heads=1),
    "dim": lambda i: i["model"].update(dim=32),
    "kind": lambda i: i.update(kind="deit"),
    "history removed": lambda i: i.pop("history"),
    "epoch": lambda i: i.update(epoch=30),
    "accuracy": lambda i: i["metrics"].update(test_acc=0.99),
    "weights file renamed": lambda i: i["files"]["weights"].update(name="model-0000000000000000.safetensors"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_config_is_refused(saved, edit):
    info = _config(saved)
    EDITS[edit](info)
    _write_config(saved, info, rehash=False)
    with pytest.raises(ValueError, match="config.json was edited or damaged after it was written.*heads"):
        checkpoint.load(saved)


FORGED = {  # edits with the hash recomputed: what a careful forger could do -> the words of the error
    "no kind": (lambda i: i.pop("kind"), "names no model kind or config"),
    "model not a dict": (lambda i: i.update(model=[1, 2]), "names no model kind or config"),
    "unknown kind": (lambda i: i.update(kind="nope"), "unknown model kind 'nope'"),
    "path traversal": (lambda i: i["files"]["weights"].update(name="../../outside.safetensors"), "does not name its files"),
    "no weights": (lambda i: i["files"].pop("weights"), "does not name its files"),
    "size not a number": (lambda i: i["files"]["weights"].update(bytes="big"), "does not name its files"),
    "huge heads": (lambda i: i["model"].update(heads=10**12), "cannot build ViT"),
    "huge image": (lambda i: i["model"].update(image_size=10**12 + 1), "image_size must be positive (at most 4096"),
}


@pytest.mark.parametrize("case", FORGED)
def test_a_forged_config_is_still_a_clear_error(saved, case):
    edit, words = FORGED[case]
    info = _config(saved)
    edit(info)
    _write_config(saved, info)
    with pytest.raises(ValueError) as err:
        checkpoint.load(saved)
    assert words in str(err.value)
    assert not (saved.parent / "outside.safetensors").exists()


# --- not a checkpoint at all ----------------------------------------------------------------------
class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


NOT_CHECKPOINTS = {
    "a pickle named config.json": (lambda f, m: (f / "config.json").write_bytes(pickle.dumps(_RunsCode(m))), "not valid JSON"),
    "17 MB of JSON": (lambda f, m: (f / "config.json").write_text(" " * (17 * 2**20) + "{}"), "far more than any checkpoint"),
    "deeply nested JSON": (lambda f, m: (f / "config.json").write_text("[" * 200_000), "not valid JSON"),
    "a JSON list": (lambda f, m: (f / "config.json").write_text("[1, 2]"), "is not a vit_tutorial checkpoint"),
    "format 1": (lambda f, m: (f / "config.json").write_text('{"format": 1, "files": {}}'), "convert it once with `python scripts/migrate"),
    "format 99": (lambda f, m: (f / "config.json").write_text('{"format": 99}'), "format 99"),
    "only a pickle": (lambda f, m: (f / "weights.pth").write_bytes(pickle.dumps(_RunsCode(m))), "is a pickle file"),
}


@pytest.mark.parametrize("case", NOT_CHECKPOINTS)
def test_a_folder_that_is_no_checkpoint_is_a_clear_error_and_runs_nothing(tmp_path, case):
    make, words = NOT_CHECKPOINTS[case]
    folder, marker = tmp_path / "x", tmp_path / "pwned"
    folder.mkdir()
    make(folder, marker)
    with pytest.raises(ValueError) as err:
        checkpoint.load(folder)
    assert words in str(err.value) and not marker.exists()


# --- tensor files --------------------------------------------------------------------------------
def test_missing_weights(saved):
    (saved / _config(saved)["files"]["weights"]["name"]).unlink()
    with pytest.raises(ValueError, match="is missing; the checkpoint is incomplete"):
        checkpoint.load(saved)


def test_a_50_gb_file_in_place_of_the_weights_is_refused_without_reading_it(saved):
    weights = saved / _config(saved)["files"]["weights"]["name"]
    os.truncate(weights, 50 * 2**30)  # sparse: costs no disk
    with pytest.raises(ValueError, match="was changed or truncated"):
        checkpoint.load(saved)


def test_the_hash_is_streamed_not_read_into_memory(saved):
    info = _config(saved)
    weights = saved / info["files"]["weights"]["name"]
    os.truncate(weights, 64 * 2**20)  # the recorded size matches: the hash must be computed
    info["files"]["weights"]["bytes"] = 64 * 2**20
    _write_config(saved, info)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="was changed or truncated"):
            checkpoint.load(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # far less than the 64 MB file


def test_a_changed_training_state_is_not_trusted(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters())
    checkpoint.save(tmp_path, model, optimizer=opt)
    skeleton = tmp_path / _config(tmp_path)["files"]["state_json"]["name"]
    skeleton.write_text('{"optimizer": {"__tensor__": "x"}}')
    with pytest.raises(ValueError, match="was changed after it was written; the training state cannot be trusted"):
        checkpoint.load_training_state(tmp_path)


@pytest.mark.parametrize("device,words", [("tpu9", "unknown device 'tpu9'"), ("meta", "it holds shapes, no data"),
                                          ("cuda:99", "cuda:99"), ("mps", "MPS is not available here")])
def test_loading_onto_a_device_that_is_not_there(saved, device, words):
    with pytest.raises(ValueError, match=words):
        checkpoint.load(saved, device=device)


# --- saves that must not happen: nothing changed, nothing removed ---------------------------------
def _notes(folder):
    folder.mkdir()
    (folder / "notes.txt").write_text("my thesis")


REFUSED_SAVES = {  # case -> (prepare(folder), save kwargs, words)
    "kind nope over a good checkpoint": (lambda f: checkpoint.save(f, _model()), dict(kind="nope"), "unknown model kind 'nope'"),
    "a ViT saved as a CNN": (lambda f: checkpoint.save(f, _model()), dict(kind="cnn"), "cannot be saved as kind 'cnn'"),
    "a tensor in extra": (lambda f: checkpoint.save(f, _model()), dict(extra={"x": torch.ones(1)}), "cannot store"),
    "a folder of other files": (_notes, {}, "holds files that are not part of a vit_tutorial checkpoint (notes.txt)"),
    "someone's temp file": (lambda f: (f.mkdir(), (f / ".config.json.tmp-99").write_text("x")), {}, ".config.json.tmp-99"),
    "a file posing as ours": (lambda f: (f.mkdir(), (f / "model-0123456789abcdef.safetensors").write_text("x")), {},
                              "model-0123456789abcdef.safetensors"),
    "a file, not a folder": (lambda f: f.write_text("a file"), {}, "is a file, not a folder"),
    "a format-1 checkpoint": (lambda f: (f.mkdir(), (f / "config.json").write_text('{"format": 1, "files": {}}')), {},
                              "convert it once"),
    "an edited checkpoint": (lambda f: (checkpoint.save(f, _model()), (f / "config.json").write_text(
        (f / "config.json").read_text().replace('"heads": 2', '"heads": 1'))), {}, "edited or damaged"),
}


@pytest.mark.parametrize("case", REFUSED_SAVES)
def test_a_refused_save_changes_and_removes_nothing(tmp_path, case):
    prepare, kwargs, words = REFUSED_SAVES[case]
    folder = tmp_path / "out"
    prepare(folder)
    before = _snapshot(folder) if folder.is_dir() else folder.read_bytes()
    with pytest.raises(ValueError) as err:
        checkpoint.save(folder, _model(1), **kwargs)
    assert words in str(err.value)
    assert (_snapshot(folder) if folder.is_dir() else folder.read_bytes()) == before


@pytest.mark.parametrize("path,words", [("", "names no folder"), ("/proc/vit_tutorial_test", "cannot create the folder"),
                                        ("{tmp}/file/sub", "cannot create the folder")])
def test_folders_that_cannot_be_made(tmp_path, path, words):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=words):
        checkpoint.save(path.format(tmp=tmp_path), _model())


def test_a_home_folder_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    checkpoint.save("~/runs/x", _model())
    assert checkpoint.exists(tmp_path / "runs" / "x") and not Path("~").exists()


# --- interrupted saves: one atomic switch -----------------------------------------------------------
class _Killed(BaseException):
    pass


def _kill_on(monkeypatch, target, when):
    real = getattr(target[0], target[1])

    def dying(*args, **kwargs):
        if when(*args):
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(*target, dying)


@pytest.mark.parametrize("moment", ["while writing the weights", "just before the switch", "just after the switch"])
def test_a_kill_at_any_moment_leaves_a_loadable_checkpoint_and_the_next_save_cleans_up(tmp_path, monkeypatch, moment):
    old, new = _model(0), _model(1)
    checkpoint.save(tmp_path, old, extra={"epoch": 1})
    with monkeypatch.context() as m:
        if moment == "while writing the weights":
            _kill_on(m, (checkpoint.safetensors.torch, "save_file"), lambda tensors, path, **kw: True)
        elif moment == "just before the switch":
            _kill_on(m, (checkpoint.os, "replace"), lambda src, dst: Path(dst).name == "config.json")
        else:
            _kill_on(m, (checkpoint, "provably_ours"), lambda p: True)
        with pytest.raises(_Killed):
            checkpoint.save(tmp_path, new, extra={"epoch": 2})
    model, info = checkpoint.load(tmp_path)
    assert info["epoch"] == (2 if moment == "just after the switch" else 1)
    want = new if info["epoch"] == 2 else old
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), want.state_dict().values()))
    assert not any(folders.TEMP.match(p.name) for p in tmp_path.iterdir())
    checkpoint.save(tmp_path, new, extra={"epoch": 3})  # the next save removes what the kill left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.json", _config(tmp_path)["files"]["weights"]["name"]])


def test_a_stale_temp_file_of_a_killed_save_is_removed_by_the_next(tmp_path):
    checkpoint.save(tmp_path, _model())
    (tmp_path / ".weights.tmp-123-0badcafe").write_bytes(b"half a file")
    checkpoint.save(tmp_path, _model(1))
    assert not (tmp_path / ".weights.tmp-123-0badcafe").exists()


# --- two writers -------------------------------------------------------------------------------------
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("holding", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(folders.fcntl is None, reason="no fcntl: nothing is locked")
def test_a_second_writer_is_refused_while_the_first_holds_the_folder(saved):
    before = _snapshot(saved)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(saved / folders.LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(ValueError, match=f"another process \\(pid {holder.pid}\\) is writing a checkpoint into"):
            checkpoint.save(saved, _model(1))
        assert {k: v for k, v in _snapshot(saved).items() if k != folders.LOCK} == before
    finally:
        holder.kill()
        holder.wait()
    checkpoint.save(saved, _model(1))  # a killed holder's lock goes with it
    assert not (saved / folders.LOCK).exists()


def test_an_old_checkpoint_migrates_with_the_same_weights(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        import migrate_checkpoints
    finally:
        sys.path.pop(0)
    import hashlib

    import safetensors.torch

    model = _model()
    safetensors.torch.save_file(model.state_dict(), str(tmp_path / "model.safetensors"), metadata={"format": "pt"})  # as format 1 did
    sha = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    (tmp_path / "config.json").write_text(json.dumps({"format": 1, "kind": "vit", "model": model.config.to_dict(),
                                                      "epoch": 5, "files": {"model.safetensors": sha}}))
    migrate_checkpoints.migrate(tmp_path)
    loaded, info = checkpoint.load(tmp_path)
    assert info["epoch"] == 5 and info["files"]["weights"]["sha256"] == sha  # bit for bit the same file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", f"model-{sha[:16]}.safetensors"]
