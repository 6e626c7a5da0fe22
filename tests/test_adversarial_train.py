"""Adversarial training runs: bad settings and data refused before training, divergence stopped with
the epoch and step named, and no checkpoint replaced or continued unless asked."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from vit_tutorial import ViT, checkpoint, train

TINY = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, dim=16, depth=1, heads=2, mlp_ratio=2.0)
BASE = dict(epochs=1, lr=3e-3, batch_size=16, warmup_epochs=0, device="cpu", progress=False)


def _data(n=48, seed=0, nan_at=None):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    if nan_at is not None:
        x[nan_at, 0, 3, 3] = float("nan")  # one NaN pixel in one image
    return TensorDataset(x, y)


def _fit(out=None, model=None, data=None, **kwargs):
    torch.manual_seed(0)
    data = data if data is not None else _data()
    return train.fit(model or ViT(**TINY), data, _data(24, seed=1), out=out, **{**BASE, **kwargs})


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


BAD_SETTINGS = {  # fit keyword -> (value, words of the error)
    "epochs 1.5": ("epochs", 1.5, "epochs must be a whole number (an int), got 1.5 (float)"),
    "epochs True": ("epochs", True, "epochs must be a whole number (an int), got True (bool)"),
    "epochs 0": ("epochs", 0, "epochs must be at least 1, got 0"),
    "lr inf": ("lr", float("inf"), "lr must be a finite number, got inf"),
    "lr nan": ("lr", float("nan"), "lr must be a finite number, got nan"),
    "lr 0": ("lr", 0.0, "lr must be positive (at most 1000), got 0.0"),
    "lr 1e40": ("lr", 1e40, "lr must be positive (at most 1000), got 1e+40"),
    "lr '3e-3'": ("lr", "3e-3", "lr must be a number, got '3e-3' (str)"),
    "batch_size 0": ("batch_size", 0, "batch_size must be at least 1"),
    "batch_size 16.0": ("batch_size", 16.0, "write batch_size=16"),
    "weight_decay -0.1": ("weight_decay", -0.1, "weight_decay must be 0 or more, got -0.1"),
    "label_smoothing -0.1": ("label_smoothing", -0.1, "label_smoothing must be in [0, 1), got -0.1"),
    "label_smoothing 1": ("label_smoothing", 1.0, "label_smoothing must be in [0, 1), got 1.0"),
    "warmup_epochs -1": ("warmup_epochs", -1, "warmup_epochs must be 0 or more"),
    "clip_grad -1": ("clip_grad", -1.0, "clip_grad must be positive (None: no clipping), got -1.0"),
    "clip_grad 0": ("clip_grad", 0, "clip_grad must be positive (None: no clipping), got 0.0"),
    "clip_grad nan": ("clip_grad", float("nan"), "clip_grad must be a finite number"),
    "seed -1": ("seed", -1, "seed must be in [0, 2**32), got -1"),
    "seed 2**70": ("seed", 2**70, "seed must be in [0, 2**32)"),
    "seed 1.0": ("seed", 1.0, "write seed=1"),
    "device tpu9": ("device", "tpu9", "unknown device 'tpu9'"),
    "device meta": ("device", "meta", "device 'meta' cannot be used here"),
    "device cuda:7": ("device", "cuda:7", "cuda:7"),
    "resume without out": ("resume", True, "pass out= (the run's folder) too"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_settings_are_refused_before_training(case, tmp_path):
    name, value, words = BAD_SETTINGS[case]
    calls = []
    with pytest.raises(ValueError) as err:
        _fit(on_epoch_end=lambda *a: calls.append(a), **{name: value})
    assert words in str(err.value) and calls == []


BAD_DATA = {
    "empty training set": (dict(data=TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))), "train_data is empty"),
    "label 3 of 3 classes": (dict(data=TensorDataset(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))),
                             "train_data has labels from 0 to 3, but the model has 3 classes"),
    "negative label": (dict(data=TensorDataset(torch.zeros(4, 1, 8, 8), torch.tensor([0, -1, 2, 1]))), "labels from -1 to 2"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_before_training(case):
    kwargs, words = BAD_DATA[case]
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        _fit(**kwargs)


def test_an_empty_test_set_is_refused():
    with pytest.raises(ValueError, match="test_data is empty"):
        train.fit(ViT(**TINY), _data(), TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), **BASE)


# --- divergence -----------------------------------------------------------------------------------
def test_a_nan_pixel_stops_the_run_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    _fit(tmp_path, epochs=1)  # a good first epoch, saved
    before = _snapshot(tmp_path)
    data = _data(nan_at=list(range(48)))  # NaN in every image: the first step of epoch 2 diverges

    calls = []
    with pytest.raises(ValueError) as err:
        _fit(tmp_path, data=data, epochs=1, overwrite=True, on_epoch_end=lambda *a: calls.append(a))
    assert "training diverged at epoch 1, step 1 of 3" in str(err.value) and "Check the data for NaN/inf" in str(err.value)
    assert f"the checkpoint in {tmp_path} (vit, epoch 1 of 1" in str(err.value) and "is kept" in str(err.value)
    assert _snapshot(tmp_path) == before and calls == []


def test_a_loss_that_turns_nan_later_names_that_epoch_and_step(tmp_path):
    steps = []

    def criterion(outputs, targets, images):
        steps.append(1)
        loss = F.cross_entropy(outputs, targets)
        return loss * float("nan") if len(steps) == 5 else loss  # epoch 2 (3 steps an epoch), step 2

    with pytest.raises(ValueError, match="training diverged at epoch 2, step 2 of 3.*vit, epoch 1 of 3.*is kept"):
        _fit(tmp_path, epochs=3, criterion=criterion)
    assert checkpoint.read_info(tmp_path)["epoch"] == 1


def test_weights_that_go_infinite_after_a_finite_loss_are_caught_before_saving(tmp_path):
    model, steps = ViT(**TINY), []

    def criterion(outputs, targets, images):  # finite losses, but the last step of epoch 1 gets an infinite gradient
        steps.append(1)
        return F.cross_entropy(outputs, targets)

    model.head.weight.register_hook(lambda grad: grad * float("inf") if len(steps) == 3 else grad)

    with pytest.raises(ValueError, match="training diverged at epoch 1, step 3 of 3.*no checkpoint was written"):
        _fit(tmp_path, model=model, criterion=criterion)
    assert not checkpoint.exists(tmp_path)


# --- an existing checkpoint: continued or replaced only when asked -----------------------------------
@pytest.fixture
def finished(tmp_path):
    _fit(tmp_path, epochs=2, info={"profile": "smoke", "dataset": "mnist5k"})
    return tmp_path


def test_a_finished_checkpoint_is_not_replaced_by_running_again(finished):
    before = _snapshot(finished)
    with pytest.raises(ValueError, match=r"already holds a checkpoint \(vit, epoch 2 of 2, test acc .*\): continue it with "
                                         r"resume=True \(--resume\), start over with overwrite=True \(--overwrite\)"):
        _fit(finished, epochs=2, info={"profile": "smoke", "dataset": "mnist5k"})
    assert _snapshot(finished) == before


def test_overwrite_starts_over(finished):
    history = _fit(finished, epochs=1, overwrite=True, seed=5)
    info = checkpoint.read_info(finished)
    assert (info["epoch"], info["seed"], len(history)) == (1, 5, 1)


def test_resume_and_overwrite_together_are_refused(finished):
    with pytest.raises(ValueError, match="choose one"):
        _fit(finished, epochs=2, resume=True, overwrite=True)


OTHER_RUNS = {  # how this run differs from the saved one -> the difference named
    "seed": (dict(seed=1), "seed: 0 -> 1"),
    "profile": (dict(info={"profile": "cpu", "dataset": "mnist5k"}), "profile: 'smoke' -> 'cpu'"),
    "data set": (dict(info={"profile": "smoke", "dataset": "cifar10"}), "dataset: 'mnist5k' -> 'cifar10'"),
    "learning rate": (dict(lr=1e-3), "settings.lr: 0.003 -> 0.001"),
    "epochs": (dict(epochs=4), "settings.epochs: 2 -> 4"),
    "model": (dict(model=ViT(**{**TINY, "dim": 32})), "holds another model"),
}


@pytest.mark.parametrize("case", OTHER_RUNS)
def test_resume_refuses_another_run_naming_the_differences(finished, case):
    change, words = OTHER_RUNS[case]
    before = _snapshot(finished)
    kwargs = {"epochs": 2, "info": {"profile": "smoke", "dataset": "mnist5k"}, **change}
    with pytest.raises(ValueError) as err:
        _fit(finished, resume=True, **kwargs)
    assert words in str(err.value)
    assert _snapshot(finished) == before


def test_resume_refuses_a_checkpoint_without_training_state(tmp_path):
    checkpoint.save(tmp_path, ViT(**TINY), extra={"seed": 0})
    with pytest.raises(ValueError, match="settings: None|no training state or history"):
        _fit(tmp_path, resume=True)


@pytest.mark.parametrize("out,words", [("", "names no folder"), ("/proc/vit_run", "cannot create the folder"),
                                       ("{tmp}/afile", "is a file, not a folder"), ("{tmp}/notes", "holds files that are not part")])
def test_a_bad_out_is_refused_before_training(tmp_path, out, words):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("x")
    calls = []
    with pytest.raises(ValueError, match=words):
        _fit(out.format(tmp=tmp_path), on_epoch_end=lambda *a: calls.append(a))
    assert calls == [] and (tmp_path / "afile").read_text() == "x" and (tmp_path / "notes" / "thesis.tex").read_text() == "x"


def test_an_interrupted_run_keeps_its_last_checkpoint_and_frees_the_folder(tmp_path):
    def stop(epoch, model, history):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, epochs=3, on_epoch_end=stop)
    assert checkpoint.read_info(tmp_path)["epoch"] == 2
    history = _fit(tmp_path, epochs=3, resume=True)  # the folder is free again, and the run continues
    assert history.epoch == [1, 2, 3] and json.loads((tmp_path / "config.json").read_text())["epoch"] == 3
