"""The experiment layer: a learner's overrides honoured and recorded, equal-step fractions, cached runs
keyed by their settings, studies and their verdicts."""
import json
import time

import pytest
import torch

from vit_tutorial import checkpoint, experiments, profiles, studies


@pytest.fixture
def cached_profile(tmp_path, monkeypatch):
    """A profile that caches like `cpu` (its name) but trains the tiny smoke runs, with data/ in a temp folder."""
    monkeypatch.setenv("VIT_TUTORIAL_DATA", str(tmp_path))
    monkeypatch.delenv(studies.ENV_RERUN, raising=False)
    smoke = profiles.get("smoke")
    return profiles.Profile("cpu", smoke.dataset, smoke.runs, seeds=(0, 1, 2))


def test_model_overrides_are_honoured_and_recorded(tmp_path):
    model, history = experiments.fit_profile("vit", "smoke", model=dict(patch_size=4, depth=1), out=tmp_path / "run",
                                             progress=False)
    assert (model.config.patch_size, model.config.depth, model.config.grid_size) == (4, 1, 14)
    info = checkpoint.read_info(tmp_path / "run")
    assert info["model"]["patch_size"] == 4 and info["overrides"] == {"model": {"patch_size": 4, "depth": 1}}
    assert "out" not in info["overrides"] and "progress" not in info["overrides"]  # how it ran is not what it trained
    # the profile itself is untouched by the override and by changes to its copies
    run = profiles.get("smoke").run("vit")
    run["model"]["patch_size"] = 2
    assert profiles.get("smoke").run("vit")["model"]["patch_size"] == 7


def test_unknown_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['patch_size'\].*model=dict"):
        experiments.resolve("vit", profiles.get("smoke"), patch_size=4)
    with pytest.raises(ValueError, match="model= takes a dict"):
        experiments.resolve("vit", profiles.get("smoke"), model=4)


def test_a_fraction_trains_as_many_steps_as_the_whole_data():
    smoke = profiles.get("smoke")
    _, full = experiments.fit_profile("cnn", smoke, progress=False)
    _, part = experiments.fit_profile("cnn", smoke, fraction=0.1, progress=False)
    run = smoke.run("cnn")
    n_full = round(4000 * run["subset"])  # the smoke profile trains on a quarter of the data
    steps = lambda n, epochs: -(-n // run["batch_size"]) * epochs  # noqa: E731
    assert steps(n_full // 10, len(part)) >= steps(n_full, len(full)) > steps(n_full // 10, len(part) - 1)
    assert part.test_acc[-1] is not None  # the last epoch is always scored
    _, fixed = experiments.fit_profile("cnn", smoke, fraction=0.1, epochs=2, progress=False)
    assert len(fixed) == 2  # epochs= given: the learner's number of epochs


def test_runs_are_cached_by_their_settings(cached_profile, monkeypatch, capsys):
    record, cached = studies.run("cnn", cached_profile, seed=1, progress=False)
    assert not cached and 0 <= record["test_acc"] <= 1 and record["seed"] == 1
    files = list(studies.results_dir(cached_profile).glob("cnn-*-s1.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["test_acc"] == record["test_acc"]

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a cached run matched")

    monkeypatch.setattr(studies, "fit_profile", no_training)
    again, cached = studies.run("cnn", cached_profile, seed=1, progress=False)
    assert cached and again == record and "loaded the cached run" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="trained although"):  # another setting: another run
        studies.run("cnn", cached_profile, seed=1, lr=1e-3, progress=False)
    with pytest.raises(AssertionError, match="trained although"):  # asked to train again
        studies.run("cnn", cached_profile, seed=1, rerun=True, progress=False)
    monkeypatch.setenv(studies.ENV_RERUN, str(int(time.time()) + 60))  # make results: older runs are stale
    with pytest.raises(AssertionError, match="trained although"):
        studies.run("cnn", cached_profile, seed=1, progress=False)
    monkeypatch.setenv(studies.ENV_RERUN, str(int(time.time()) - 3600))  # ... and newer ones are kept
    assert studies.run("cnn", cached_profile, seed=1, progress=False)[1]


def test_smoke_never_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_TUTORIAL_DATA", str(tmp_path))
    studies.run("cnn", "smoke", progress=False)
    assert not (tmp_path / "results").exists()


def test_a_study_pairs_seeds_and_draws_the_verdict(cached_profile, capsys):
    arms = {"CNN": dict(kind="cnn", progress=False), "CNN, lr / 10": dict(kind="cnn", lr=6e-4, progress=False)}
    s = studies.study("demo", cached_profile, arms)
    assert s.arms == ["CNN", "CNN, lr / 10"] and set(s.values("CNN")) == {0, 1, 2}
    v = s.verdict("CNN", "CNN, lr / 10")
    assert len(v.differences) == 3 and v.words in ("CNN is higher", "CNN, lr / 10 is higher", "too close to call")
    assert "CNN, lr / 10" in s.table() and "6 runs trained" in capsys.readouterr().out
    again = studies.study("demo", cached_profile, arms)
    assert again.values("CNN") == s.values("CNN") and "6 runs (2 arms x 3 seeds) loaded" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no arm 'ViT'"):
        s.values("ViT")


def test_measures_are_recorded_and_a_missing_one_retrains(cached_profile):
    record, _ = studies.run("vit", cached_profile, measures=("attention_distance",), progress=False)
    distances = record["measures"]["attention_distance"]
    assert len(distances) == cached_profile.run("vit")["model"]["depth"] and all(d > 0 for row in distances for d in row)
    record2, cached = studies.run("vit", cached_profile, measures=("attention_distance", "digit_share"), progress=False)
    assert not cached and 0 < record2["measures"]["digit_share"]["area"] < 1


def test_bad_studies_are_refused(cached_profile):
    with pytest.raises(ValueError, match="unknown measures \\['nope'\\]"):
        studies.study("x", cached_profile, {"a": dict(kind="cnn")}, measures=("nope",))
    with pytest.raises(ValueError, match="each with a kind"):
        studies.study("x", cached_profile, {"a": dict(lr=1e-3)})
    with pytest.raises(ValueError, match="unknown setting"):
        studies.study("x", cached_profile, {"a": dict(kind="cnn", patch_size=3)})
    one_seed = studies.study("x", profiles.get("smoke"), {"a": dict(kind="cnn", progress=False),
                                                              "b": dict(kind="cnn", lr=1e-3, progress=False)})
    assert "no verdict" in str(one_seed.verdict("a", "b"))
    assert torch.isfinite(torch.tensor(one_seed.mean("a")))
