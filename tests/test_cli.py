"""The command line: documented options, one-line errors, and a real (smoke) training run."""
import json
import os
import subprocess
import sys

import pytest

from vit_tutorial import __main__ as cli
from vit_tutorial import checkpoint, profiles


def _run(*args, timeout=300):
    env = {**os.environ, "VIT_TUTORIAL_PROFILE": "smoke"}
    return subprocess.run([sys.executable, "-m", "vit_tutorial", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_help_documents_every_option():
    out = _run("train", "--help")
    assert out.returncode == 0
    for action in cli.parser()._subparsers._group_actions[0].choices["train"]._actions:
        assert action.help, action.dest
        assert any(opt in out.stdout for opt in action.option_strings)
    assert "train" in _run("--help").stdout


def test_the_choices_match_the_registries():
    assert set(cli.KINDS) == set(checkpoint.MODELS) and cli.PROFILES == profiles.NAMES


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "vit", "--out", "x", "--profile", "laptop"], "invalid choice: 'laptop'"),
        (["train", "--model", "vit", "--out", "x", "--epochs", "0"], "must be at least 1"),
        (["train", "--model", "vit", "--out", "x", "--epochs", "many"], "expected a whole number"),
        (["train", "--model", "resnet", "--out", "x"], "invalid choice: 'resnet'"),
        (["train", "--out", "x"], "required: --model"),
        (["train", "--model", "vit", "--out", "x", "--device", "tpu9"], "unknown device 'tpu9'"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    stderr = capsys.readouterr().err + (exit_.value.code if isinstance(exit_.value.code, str) else "")
    assert exit_.value.code != 0
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "error" in stderr and message in stderr


def test_a_bad_value_in_a_real_process_gives_no_traceback():
    out = _run("train", "--model", "vit", "--out", "x", "--epochs", "-3")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["python -m vit_tutorial train: error: argument --epochs: must be at least 1, got -3 (see --help)"]


def test_smoke_training_run_writes_a_checkpoint_and_resumes(tmp_path):
    out = _run("train", "--model", "vit", "--profile", "smoke", "--out", str(tmp_path), "--seed", "3", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "batch" in out.stderr  # the progress bar
    info = json.loads((tmp_path / "config.json").read_text())
    assert (info["kind"], info["profile"], info["seed"], info["epoch"]) == ("vit", "smoke", 3, 1)
    assert f"test acc {info['metrics']['test_acc']:.2%}" in out.stdout.splitlines()[-1]
    # the run is complete, so resuming it trains nothing and reports the same result
    again = _run("train", "--model", "vit", "--profile", "smoke", "--out", str(tmp_path), "--seed", "3", "--resume")
    assert again.returncode == 0 and again.stdout.splitlines()[-1].split(",")[0] == out.stdout.splitlines()[-1].split(",")[0]
    # another model cannot continue this run
    wrong = _run("train", "--model", "cnn", "--profile", "smoke", "--out", str(tmp_path), "--resume", "--no-progress")
    assert wrong.returncode == 1 and wrong.stderr.strip().count("\n") == 0 and wrong.stderr.startswith("error: ")
    assert "Traceback" not in wrong.stderr
