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


MODEL_OF_RUN = {"vit": "vit", "vit_learned": "vit", "cnn": "cnn", "norm_placement": "vit", "cnn_weak": "cnn", "deit": "deit", "deit_ablation": "vit", "convit": "convit",
                "convit_vit": "vit", "layerscale": "vit", "cait": "cait", "mixer": "mixer"}


@pytest.mark.parametrize("name", profiles.NAMES)
def test_every_model_of_every_profile_builds_and_takes_a_step(name):
    # The gpu profile is never trained in CI: this is where a bad size in it shows up before a workshop.
    from vit_tutorial import checkpoint

    runs = {key: run for key, run in profiles.get(name).runs.items() if "model" in run}
    assert runs.keys() <= MODEL_OF_RUN.keys(), f"name the model kind of the new runs {runs.keys() - MODEL_OF_RUN.keys()}"
    for key, run in runs.items():
        config = dict(run["model"])
        size = config.get("image_size", 32 if config["in_channels"] == 3 else 28)
        torch.manual_seed(0)
        model = checkpoint.build(MODEL_OF_RUN[key], **config).train()
        out = model(torch.randn(2, config["in_channels"], size, size))
        logits = out if isinstance(out, torch.Tensor) else torch.stack(out)
        assert logits.shape[-2:] == (2, config["num_classes"]), key
        logits.float().sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), key
