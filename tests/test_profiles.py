import pytest
import torch

from vit_tutorial import profiles


def test_get_reads_the_environment(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "cpu")
    assert profiles.get().name == "cpu"
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    assert profiles.get().name == "smoke"
    assert profiles.get("gpu").name == "gpu"


def test_default_follows_the_hardware(monkeypatch):
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    assert profiles.get().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "laptop")
    with pytest.raises(ValueError, match="unknown profile 'laptop'.*smoke, cpu, gpu"):
        profiles.get()


def test_every_profile_has_the_same_experiments():
    keys = {name: set(profiles.get(name).runs) for name in profiles.NAMES}
    assert keys["smoke"] == keys["cpu"] == keys["gpu"]
    with pytest.raises(ValueError, match="no experiment"):
        profiles.get("smoke").run("nonexistent")


def test_seed_everything_repeats_random_numbers():
    profiles.seed_everything(3)
    a = torch.randn(4)
    profiles.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    assert profiles.device().type in ("cpu", "cuda")
