"""Adversarial configs: every wrong value is a ValueError that names it, fast, before anything is built."""
import time

import numpy as np
import pytest
import torch

from vit_tutorial import ViT, ViTConfig, checkpoint
from vit_tutorial.cait import CaiT, CaiTConfig
from vit_tutorial.cnn import CNNConfig, ResNet
from vit_tutorial.convit import ConViT, ConViTConfig
from vit_tutorial.deit import DistilledViT

SMALL = dict(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=2, heads=2, mlp_ratio=2.0)
NAN, INF = float("nan"), float("inf")

# (config class, bad settings, words the error must contain)
CASES = [
    (ViTConfig, dict(image_size=10**12 + 1), "image_size must be positive (at most 4096"),
    (ViTConfig, dict(dim=10**12 + 1, heads=2), "dim must be positive (at most 8192"),
    (ViTConfig, dict(depth=10**7), "depth must be positive (at most 256"),
    (ViTConfig, dict(heads=2.0), "heads must be a whole number (an int), got 2.0 (float): write heads=2"),
    (ViTConfig, dict(heads=True), "heads must be a whole number (an int), got True (bool)"),
    (ViTConfig, dict(depth="12"), "depth must be a whole number (an int), got '12' (str)"),
    (ViTConfig, dict(image_size=28.0), "write image_size=28"),
    (ViTConfig, dict(num_classes=2.5), "num_classes must be a whole number"),
    (ViTConfig, dict(dim=0), "dim must be positive"),
    (ViTConfig, dict(num_classes=0), "num_classes must be positive"),
    (ViTConfig, dict(in_channels=-1), "in_channels must be positive"),
    (ViTConfig, dict(patch_size=0), "patch_size must be positive"),
    (ViTConfig, dict(mlp_ratio=0), "mlp_ratio must be in (0, 64], got 0.0"),
    (ViTConfig, dict(mlp_ratio=-1.0), "mlp_ratio must be in (0, 64]"),
    (ViTConfig, dict(mlp_ratio=NAN), "mlp_ratio must be a finite number, got nan"),
    (ViTConfig, dict(mlp_ratio=INF), "mlp_ratio must be a finite number, got inf"),
    (ViTConfig, dict(mlp_ratio=0.01), "gives the MLP no hidden units"),
    (ViTConfig, dict(mlp_ratio="4"), "mlp_ratio must be a number"),
    (ViTConfig, dict(qkv_bias="False"), "qkv_bias must be True or False, got 'False' (str): write qkv_bias=False"),
    (ViTConfig, dict(qkv_bias=1), "qkv_bias must be True or False, got 1 (int)"),
    (ViTConfig, dict(drop_path=1.0), "drop_path must be in [0, 1), got 1.0"),
    (ViTConfig, dict(drop_path=NAN), "drop_path must be a finite number"),
    (ViTConfig, dict(drop=-0.1), "drop must be in [0, 1), got -0.1"),
    (ViTConfig, dict(drop=INF), "drop must be a finite number, got inf"),
    (ViTConfig, dict(pool="max"), "pool must be 'cls' or 'mean', got 'max'"),
    (ViTConfig, dict(pos_embed="rope"), "pos_embed must be 'learned' or 'sincos', got 'rope'"),
    (ViTConfig, dict(image_size=30), "image_size 30 is not divisible by patch_size 7"),
    (ViTConfig, dict(dim=30, heads=4), "dim 30 is not divisible by heads 4: use heads in [1, 2, 3, 5, 6, 10, 15]"),
    (ViTConfig, dict(image_size=4096, patch_size=1), "gives 16777216 patches, more than 16384"),
    (ViTConfig, dict(dim=8192, depth=256, heads=8), "billion parameters"),
    (ViTConfig, dict(dim=4096, depth=64, heads=8, mlp_ratio=16.0), "more than the limit of 1 billion"),
    (ConViTConfig, dict(locality_strength=NAN), "locality_strength must be a finite number, got nan"),
    (ConViTConfig, dict(locality_strength=INF), "locality_strength must be a finite number, got inf"),
    (ConViTConfig, dict(locality_strength=-1.0), "locality_strength must be in [0, 1000]"),
    (ConViTConfig, dict(local_up_to_layer=2), "local_up_to_layer 2 must be in [0, depth - 1 = 1]"),
    (ConViTConfig, dict(local_up_to_layer=1.0), "local_up_to_layer must be a whole number"),
    (ConViTConfig, dict(qkv_bias="True"), "qkv_bias must be True or False"),
    (ConViTConfig, dict(heads=3), "dim 32 is not divisible by heads 3"),
    (CaiTConfig, dict(init_values=NAN), "init_values must be a finite number, got nan"),
    (CaiTConfig, dict(init_values=INF), "init_values must be a finite number, got inf"),
    (CaiTConfig, dict(init_values=0.0), "init_values must be positive (or None"),
    (CaiTConfig, dict(init_values=-1e-5), "init_values must be positive"),
    (CaiTConfig, dict(init_values="1e-5"), "init_values must be a number or None"),
    (CaiTConfig, dict(depth_token_only=0), "depth_token_only must be positive"),
    (CaiTConfig, dict(depth_token_only=2.0), "depth_token_only must be a whole number"),
    (CaiTConfig, dict(talking_heads="yes"), "talking_heads must be True or False"),
    (CaiTConfig, dict(depth=1000), "depth must be positive (at most 256"),
    (CNNConfig, dict(blocks=0), "blocks must be a tuple of whole numbers, got 0 (int)"),
    (CNNConfig, dict(blocks=()), "blocks must be 1 to 8 stages of 1 to 64 blocks each"),
    (CNNConfig, dict(blocks=(2, 0, 2)), "blocks must be 1 to 8 stages"),
    (CNNConfig, dict(blocks=(2.0, 2)), "blocks must be a tuple of whole numbers"),
    (CNNConfig, dict(width=0), "width must be positive"),
    (CNNConfig, dict(width=2.5), "width must be a whole number"),
    (CNNConfig, dict(in_channels=True), "in_channels must be a whole number (an int), got True (bool)"),
    (CNNConfig, dict(width=4096, blocks=(64,) * 8), "billion parameters"),
]
GRID = {ViTConfig, ConViTConfig, CaiTConfig}


@pytest.mark.parametrize("cls,bad,words", CASES, ids=[f"{c.__name__}-{sorted(b)[0]}-{i}" for i, (c, b, _) in enumerate(CASES)])
def test_a_bad_config_value_is_named_at_once(cls, bad, words):
    settings = {**(SMALL if cls in GRID else dict(in_channels=1, num_classes=10)), **bad}
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        cls(**settings)
    assert words in str(err.value)
    assert time.perf_counter() - start < 0.5  # bounded work, whatever the numbers


# (model class, config, ignored keyword settings)
KWARGS = [
    (ViT, ViTConfig(**SMALL), dict(dim=64)),
    (DistilledViT, ViTConfig(**SMALL), dict(depth=1)),
    (ConViT, ConViTConfig(**SMALL, local_up_to_layer=1), dict(heads=4)),
    (CaiT, CaiTConfig(**SMALL), dict(init_values=0.1)),
    (ResNet, CNNConfig(in_channels=1), dict(width=4)),
]


@pytest.mark.parametrize("cls,config,kwargs", KWARGS, ids=[c.__name__ for c, _, _ in KWARGS])
def test_a_config_plus_keyword_settings_is_refused_not_ignored(cls, config, kwargs):
    with pytest.raises(ValueError, match=f"also the settings \\['{next(iter(kwargs))}'\\]: they would be ignored"):
        cls(config, **kwargs)


@pytest.mark.parametrize("cls,config", [(ViT, CaiTConfig(**SMALL)), (ResNet, ViTConfig(**SMALL)), (CaiT, dict(SMALL))],
                         ids=["vit-cait-config", "cnn-vit-config", "cait-dict"])
def test_a_config_of_another_class_is_refused(cls, config):
    with pytest.raises(ValueError, match=f"expected a {cls.__name__}Config|expected a CNNConfig"):
        cls(config)


def test_a_refused_float_heads_leaves_no_trace_for_a_correct_model():
    with pytest.raises(ValueError, match="heads must be a whole number"):
        ViT(**{**SMALL, "heads": 2.0})
    model = ViT(**SMALL)  # einops would have cached the float recipe if the float had got through
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_numpy_numbers_are_accepted_and_stored_as_plain_python():
    config = ViTConfig(**{**SMALL, "heads": np.int64(2), "mlp_ratio": np.float32(2.0), "qkv_bias": np.bool_(False)})
    assert (type(config.heads), type(config.mlp_ratio), type(config.qkv_bias)) == (int, float, bool)
    assert CNNConfig(blocks=[np.int32(1), 2]).blocks == (1, 2)  # a JSON list becomes a tuple


@pytest.mark.parametrize("hostile", [dict(image_size=10**12 + 1), dict(dim=10**12 + 1, heads=2), dict(depth=10**7)],
                         ids=["image_size", "dim", "depth"])
def test_a_checkpoint_config_cannot_make_the_loader_loop_or_allocate(hostile):
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cannot build ViT.*must be positive"):
        checkpoint.build("vit", **{**SMALL, **hostile})
    assert time.perf_counter() - start < 0.5
