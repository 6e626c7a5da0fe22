"""Training: deterministic on the CPU, exact resume, soft targets, two-headed outputs, evaluation."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from vit_tutorial import ViT, checkpoint, data, experiments, profiles, train

TINY = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, dim=16, depth=2, heads=2, mlp_ratio=2.0, drop_path=0.2)
NUMBERS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")  # not the timings


def _data(n: int = 96, seed: int = 0) -> TensorDataset:
    """Noise images with a brighter band of columns whose position is the class: learnable, and quick."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    for c, cols in enumerate((slice(0, 3), slice(3, 5), slice(5, 8))):
        x[y == c, :, :, cols] += 1.0
    return TensorDataset(x, y)


def _fit(seed: int = 0, epochs: int = 3, **kwargs):
    profiles.seed_everything(seed)
    model = ViT(**TINY)
    options = dict(epochs=epochs, lr=3e-3, batch_size=16, warmup_epochs=1, seed=seed, device="cpu", progress=False)
    history = train.fit(model, _data(), _data(48, seed=1), **{**options, **kwargs})
    return model, history


def _numbers(history):
    return {k: getattr(history, k) for k in NUMBERS}


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_numbers_other_seed_other_numbers():
    m1, h1 = _fit(0, augment=data.Augment(mixup=0.5))
    m2, h2 = _fit(0, augment=data.Augment(mixup=0.5))
    m3, h3 = _fit(1, augment=data.Augment(mixup=0.5))
    assert _numbers(h1) == _numbers(h2) and _same_weights(m1, m2)
    assert _numbers(h1) != _numbers(h3)
    assert h1.epoch == [1, 2, 3] and len(h1) == 3
    assert all(0 <= a <= 1 for a in h1.train_acc + h1.test_acc)


def test_it_learns_and_the_schedule_warms_up_then_decays():
    model, history = _fit(epochs=6, lr=1e-2)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_acc[-1] > 0.6  # chance is 1/3
    assert history.lr[-1] < 1e-6  # cosine ends at zero
    f = train.warmup_cosine(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(60) == pytest.approx(0.5) and f(110) == 0.0


class _Stop(Exception):
    pass


def _stop_after(k):
    def callback(epoch, model, history):
        if epoch == k:
            raise _Stop

    return callback


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    mix = data.Augment(mixup=0.5)  # uses the RNG every step, like drop path does
    full, h_full = _fit(epochs=4, augment=mix, out=tmp_path / "full")
    with pytest.raises(_Stop):
        _fit(epochs=4, augment=mix, out=tmp_path / "cut", on_epoch_end=_stop_after(2))
    assert checkpoint.read_info(tmp_path / "cut")["epoch"] == 2
    resumed, h_resumed = _fit(seed=0, epochs=4, augment=mix, out=tmp_path / "cut", resume=True)
    assert _same_weights(full, resumed)
    assert _numbers(h_full) == _numbers(h_resumed)  # the history comes back with the checkpoint
    info = checkpoint.read_info(tmp_path / "cut")
    assert info["epoch"] == 4 and info["metrics"]["test_acc"] == h_full.test_acc[-1]
    assert info["history"]["train_loss"] == h_full.train_loss
    # a finished run resumes to itself; another model in the same directory is a clear error
    again, _ = _fit(epochs=4, augment=mix, out=tmp_path / "cut", resume=True)
    assert _same_weights(full, again)
    with pytest.raises(ValueError, match="another model"):
        train.fit(ViT(**{**TINY, "dim": 32}), _data(), epochs=4, lr=1e-3, out=tmp_path / "cut", resume=True, progress=False)


def test_soft_targets_reach_the_criterion_and_accuracy_uses_their_argmax():
    seen = []

    def criterion(outputs, targets, images):
        seen.append((targets.shape, images.shape))
        return F.cross_entropy(outputs, targets)

    _, history = _fit(epochs=1, augment=data.Augment(mixup=1.0, cutmix=1.0), criterion=criterion)
    assert seen and all(t == (16, 3) and i == (16, 1, 8, 8) for t, i in seen)  # soft targets, the images too
    assert math.isfinite(history.train_loss[0]) and 0 <= history.train_acc[0] <= 1


class _TwoHeads(nn.Module):
    """Returns (h + c, h - c) in training, h in eval: only the mean of the two scores like h."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 3)
        self.register_buffer("c", torch.tensor([50.0, -50.0, 0.0]))

    def forward(self, x):
        h = self.linear(x.flatten(1))
        return (h + self.c, h - self.c) if self.training else h


def test_tuple_outputs_are_scored_by_their_mean():
    torch.manual_seed(0)
    model, ds = _TwoHeads(), _data()
    expected = train.evaluate(model, ds)["acc"]  # the accuracy of h, which lr ~ 0 keeps fixed
    assert expected != pytest.approx((ds.tensors[1] == 0).float().mean().item())  # what the first head alone gives
    history = train.fit(model, ds, epochs=1, lr=1e-12, batch_size=16, device="cpu", progress=False)
    assert history.train_acc[0] == pytest.approx(expected)


def test_evaluate_and_predict_match_a_direct_computation():
    logits, targets = torch.randn(10, 4), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    identity = nn.Identity()
    got = train.evaluate(identity, TensorDataset(logits, targets), batch_size=3)
    assert got["loss"] == pytest.approx(F.cross_entropy(logits, targets).item())
    assert got["acc"] == pytest.approx((logits.argmax(1) == targets).float().mean().item())
    out, tgt = train.predict(identity, TensorDataset(logits, targets), batch_size=3)
    assert torch.equal(out, logits) and torch.equal(tgt, targets)


def test_history_summary_and_bad_settings():
    h = train.History()
    h.append(epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.6, lr=1e-3, seconds=2.0, images_per_s=50.0)
    h.append(epoch=2, train_loss=0.5, train_acc=0.7, test_loss=0.9, test_acc=0.55, lr=0.0, seconds=1.0, images_per_s=100.0)
    s = h.summary()
    assert (s["best_test_acc"], s["best_epoch"], s["final_test_acc"]) == (0.6, 1, 0.55)
    assert s["train_seconds"] == 3.0 and s["images_per_s"] == pytest.approx(200 / 3)
    assert train.History.from_dict(h.as_dict()) == h
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        train.fit(ViT(**TINY), _data(), epochs=0, lr=1e-3)
    with pytest.raises(ValueError, match="unknown device"):
        train.fit(ViT(**TINY), _data(), epochs=1, lr=1e-3, device="tpu9")


def test_run_settings_split_a_profile_run():
    run = dict(model=dict(dim=8), epochs=2, lr=1e-3, augment=dict(shift=2, mixup=0.2), teacher="cnn")
    model, augment, fit_kwargs = experiments.run_settings(run)
    assert model == {"dim": 8} and augment == data.Augment(shift=2, mixup=0.2)
    assert fit_kwargs == {"epochs": 2, "lr": 1e-3}  # unknown keys are left to the notebooks
    for name in profiles.NAMES:
        for kind in ("vit", "cnn"):
            _, _, kw = experiments.run_settings(profiles.get(name).run(kind))
            assert {"epochs", "lr", "batch_size"} <= kw.keys()


def test_fit_profile_trains_the_smoke_run(tmp_path):
    model, history = experiments.fit_profile("cnn", "smoke", epochs=1, out=tmp_path, progress=False, device="cpu")
    info = checkpoint.read_info(tmp_path)
    assert (info["kind"], info["profile"], info["dataset"], info["epoch"]) == ("cnn", "smoke", "canvas", 1)
    assert info["metrics"]["test_acc"] == history.test_acc[-1]


def test_fit_profile_distils_deit_from_the_teacher_its_run_names(tmp_path, monkeypatch):
    from vit_tutorial import deit

    seen = []
    original = deit.DistillationLoss.__call__
    monkeypatch.setattr(deit.DistillationLoss, "__call__", lambda self, *a: seen.append(self.kind) or original(self, *a))
    experiments.fit_profile("deit", "smoke", epochs=1, out=tmp_path, progress=False, device="cpu")
    run = profiles.get("smoke").run("deit")
    assert seen and set(seen) == {run["distillation"]}  # every step used the teacher
    assert checkpoint.read_info(tmp_path)["distillation"] == {
        "teacher": run["teacher"], "kind": run["distillation"], "alpha": run["alpha"], "tau": run["tau"]}


def test_fit_profile_deit_without_its_teacher_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "data_dir", lambda: tmp_path)  # no checkpoints here
    with pytest.raises(ValueError, match="make it first"):
        experiments.fit_profile("deit", "smoke", epochs=1, progress=False, device="cpu")


def test_fit_profile_criterion_none_trains_deit_without_a_teacher(monkeypatch):
    def no_teacher(*args):
        raise AssertionError("looked for a teacher")

    monkeypatch.setattr(experiments, "_distillation", no_teacher)
    _, history = experiments.fit_profile("deit", "smoke", epochs=1, criterion=None, progress=False, device="cpu")
    assert len(history.epoch) == 1
