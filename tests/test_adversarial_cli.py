"""Adversarial command lines: every mistake ends in one line, before training, and touches no file.

The cases that need no training run the real `main` of `python -m vit_tutorial` in ONE child
process (a driver loops over them and records exit code, stderr and any traceback), so that the
suite stays fast; one more child runs a real training command.
"""
import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from vit_tutorial import ViT, checkpoint, profiles
from vit_tutorial import __main__ as cli

DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from vit_tutorial.__main__ import main
    results = []
    for argv in json.loads(sys.argv[1]):
        err, out = io.StringIO(), io.StringIO()
        code, tb = 0, None
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
            except BaseException:
                code, tb = -1, traceback.format_exc()
        results.append({"code": code, "stderr": err.getvalue(), "traceback": tb})
    print(json.dumps(results))
""")
RUN = ["train", "--model", "vit", "--profile", "smoke", "--epochs", "1", "--no-progress"]


def _smoke_vit_checkpoint(folder, seed=3, **extra):
    """A checkpoint such as `train --model vit --profile smoke --seed 3` writes (without training one)."""
    run = profiles.get("smoke").run("vit")
    settings = dict(epochs=1, lr=run["lr"], batch_size=run["batch_size"], weight_decay=0.05, warmup_epochs=run["warmup_epochs"],
                    label_smoothing=0.1, clip_grad=1.0, augment=dict(shift=2, flip=False, erasing=0.0, mixup=0.0, cutmix=0.0))
    info = dict(profile="smoke", run="vit", dataset="mnist5k", seed=seed, settings=settings, epoch=1, history={"epoch": [1]})
    checkpoint.save(folder, ViT(**run["model"]), extra={**info, **extra})


def _prepare(tmp):
    (tmp / "afile").write_text("x")
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "thesis.tex").write_text("x")
    _smoke_vit_checkpoint(tmp / "done")
    _smoke_vit_checkpoint(tmp / "edited")
    (tmp / "edited" / "config.json").write_text((tmp / "edited" / "config.json").read_text().replace('"history"', '"hist"'))
    (tmp / "old").mkdir()
    (tmp / "old" / "config.json").write_text('{"format": 1, "files": {}}')
    (tmp / "locked").mkdir()
    _smoke_vit_checkpoint(tmp / "run", seed=3)  # replaced by the one command that trains


# case -> (extra arguments, words of the one-line error); {tmp} is the test's folder
CASES = {
    "device mps": (["--out", "{tmp}/a", "--device", "mps"], "MPS is not available here"),
    "device meta": (["--out", "{tmp}/a", "--device", "meta"], "device 'meta' cannot be used here"),
    "device cuda:9": (["--out", "{tmp}/a", "--device", "cuda:9"], "cuda:9"),
    "device empty": (["--out", "{tmp}/a", "--device", ""], "unknown device ''"),
    "out is a file": (["--out", "{tmp}/afile"], "is a file, not a folder"),
    "out under a file": (["--out", "{tmp}/afile/sub"], "cannot create the folder"),
    "out under /proc": (["--out", "/proc/vit_tutorial_run"], "cannot create the folder"),
    "out empty": (["--out", ""], "argument --out: an empty name is no folder"),
    "out blank": (["--out", "  "], "argument --out: an empty name is no folder"),
    "out foreign folder": (["--out", "{tmp}/foreign"], "holds files that are not part of a vit_tutorial checkpoint (thesis.tex)"),
    "out locked by another process": (["--out", "{tmp}/locked"], "another process (pid {pid}) is writing a checkpoint into"),
    "out holds a checkpoint": (["--out", "{tmp}/done"], "already holds a checkpoint (vit, epoch 1 of 1): continue it with"),
    "resume another seed": (["--out", "{tmp}/done", "--resume", "--seed", "4"], "seed: 3 -> 4"),
    "resume an edited checkpoint": (["--out", "{tmp}/edited", "--resume", "--seed", "3"], "was edited or damaged"),
    "out an old checkpoint": (["--out", "{tmp}/old"], "convert it once with `python scripts/migrate_checkpoints.py"),
    "seed 2**70": (["--out", "{tmp}/a", "--seed", str(2**70)], "argument --seed: must be in [0, 2**32 - 1]"),
    "seed -1": (["--out", "{tmp}/a", "--seed", "-1"], "argument --seed: must be in [0, 2**32 - 1], got -1"),
    "seed 1.5": (["--out", "{tmp}/a", "--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
    "epochs 1.5": (["--out", "{tmp}/a", "--epochs", "1.5"], "argument --epochs: expected a whole number"),
    "resume and overwrite": (["--out", "{tmp}/done", "--resume", "--overwrite"], "choose one"),
    "a quoted home": (["--out", "~/foreign"], "{tmp}/foreign holds files that are not part"),
}
TRAINS = ["--out", "~/run", "--overwrite", "--seed", "4"]  # the last command: it trains, into a quoted home


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    """Run every case in one child process while this process holds the lock of {tmp}/locked."""
    tmp = tmp_path_factory.mktemp("cli")
    _prepare(tmp)
    before = {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file()}
    argvs = [[*RUN, *[a.format(tmp=tmp) for a in args]] for args, _ in CASES.values()] + [[*RUN, *TRAINS]]
    env = {**os.environ, "VIT_TUTORIAL_PROFILE": "smoke", "OMP_NUM_THREADS": "1", "HOME": str(tmp)}
    with checkpoint.writing(tmp / "locked"):
        out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True, text=True,
                             timeout=300, env=env, cwd=tmp)
    assert out.returncode == 0, out.stderr
    after = {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file()}
    return dict(zip([*CASES, "trains"], json.loads(out.stdout.splitlines()[-1]))), before, after, tmp


@pytest.mark.parametrize("case", CASES)
def test_a_mistake_on_the_command_line_is_one_line_before_training(driven, case):
    results, _, _, tmp = driven
    got, words = results[case], CASES[case][1].format(tmp=tmp, pid=os.getpid())
    assert got["traceback"] is None, got["traceback"]
    lines = got["stderr"].strip().splitlines()
    assert got["code"] != 0 and len(lines) == 1, got["stderr"]
    assert "error" in lines[0] and words in lines[0]


def test_no_command_line_mistake_changed_created_or_removed_a_file(driven):
    _, before, after, tmp = driven
    unchanged = {p: b for p, b in after.items() if p.parent.name != "run"}
    assert unchanged == {p: b for p, b in before.items() if p.parent.name != "run"}  # byte for byte, none added
    assert not (tmp / "a").exists() and not (tmp / "~").exists()


def test_overwrite_replaces_a_checkpoint_in_a_quoted_home(driven):
    results, _, _, tmp = driven
    assert results["trains"]["code"] == 0 and results["trains"]["traceback"] is None, results["trains"]
    info = checkpoint.read_info(tmp / "run")
    assert (info["seed"], info["epoch"], info["profile"]) == (4, 1, "smoke") and not (tmp / "~").exists()


# --- in this process: interrupts and full disks --------------------------------------------------
def _main(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    message = capsys.readouterr().err + (exit_.value.code if isinstance(exit_.value.code, str) else "")
    return exit_.value.code, message.strip().splitlines()


def test_ctrl_c_before_any_checkpoint_claims_none(tmp_path, monkeypatch, capsys):
    from vit_tutorial import experiments

    monkeypatch.setattr(experiments, "fit_profile", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    code, lines = _main([*RUN, "--out", str(tmp_path / "new")], capsys)
    assert code != 0 and lines == [f"interrupted before the first checkpoint: nothing was saved in {tmp_path / 'new'}; "
                                   "run the command again to start."]


def test_ctrl_c_after_a_checkpoint_names_its_epoch(tmp_path, monkeypatch, capsys):
    from vit_tutorial import experiments

    _smoke_vit_checkpoint(tmp_path, seed=0)
    monkeypatch.setattr(experiments, "fit_profile", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    code, lines = _main([*RUN, "--out", str(tmp_path), "--resume"], capsys)
    assert lines == [f"interrupted: the checkpoint in {tmp_path} holds epoch 1; continue with the same command plus --resume."]


@pytest.mark.parametrize("failure,words", [(OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
                                           (PermissionError(errno.EACCES, "Permission denied"), "Permission denied")])
def test_a_full_or_forbidden_disk_is_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys, failure, words):
    from vit_tutorial import experiments

    _smoke_vit_checkpoint(tmp_path, seed=0)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_write(tensors, path, **kwargs):
        open(path, "wb").write(b"half")
        raise failure

    def fit_profile(*args, **kwargs):  # the epoch's save, as fit makes it
        model, _ = checkpoint.load(tmp_path)
        checkpoint.save(kwargs["out"], model, extra={"epoch": 2})

    monkeypatch.setattr(experiments, "fit_profile", fit_profile)
    monkeypatch.setattr(checkpoint.safetensors.torch, "save_file", failing_write)
    code, lines = _main([*RUN, "--out", str(tmp_path), "--resume"], capsys)
    assert code != 0 and len(lines) == 1 and words in lines[0] and "is unchanged" in lines[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
