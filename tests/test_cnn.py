"""The CNN baseline: shapes on 28 x 28 and 32 x 32 inputs, config round trip, errors that say the fix."""
import json

import pytest
import torch

from vit_tutorial.cnn import BasicBlock, CNNConfig, ResNet


@pytest.mark.parametrize("in_channels,size", [(1, 28), (3, 32)])
def test_logits_and_features_shapes(in_channels, size):
    model = ResNet(in_channels=in_channels, num_classes=7, width=4, blocks=(1, 1, 1)).eval()
    x = torch.randn(2, in_channels, size, size)
    assert model(x).shape == (2, 7)
    assert model.forward_features(x).shape == (2, 16) == (2, model.num_features)  # 4 * width
    feats = model.stem(x)
    assert feats.shape == (2, 4, size, size)
    assert model.stages(feats).shape == (2, 16, size // 4, size // 4)  # stages 2 and 3 halve the resolution


def test_config_round_trip_through_json():
    model = ResNet(CNNConfig(in_channels=1, num_classes=10, width=8, blocks=(2, 1, 1)))
    again = ResNet(**json.loads(json.dumps(model.config.to_dict())))
    assert again.config == model.config and again.config.blocks == (2, 1, 1)
    assert [n for n, _ in again.state_dict().items()] == [n for n, _ in model.state_dict().items()]
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 4


def test_blocks_start_as_identity_plus_shortcut():
    """The last BatchNorm of every residual branch starts at zero, so a fresh block is relu(shortcut(x))."""
    block = BasicBlock(4, 4).eval()
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), torch.relu(x))
    down = BasicBlock(4, 8, stride=2).eval()
    assert down(x).shape == (2, 8, 4, 4)


def test_default_profile_sizes_train_a_step():
    model = ResNet(in_channels=1, num_classes=10, width=16)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_wrong_channels_say_the_fix():
    model = ResNet(in_channels=3, width=4)
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(3, 32, 32))


@pytest.mark.parametrize("kwargs", [dict(width=0), dict(in_channels=0), dict(blocks=()), dict(blocks=(2, 0, 2))])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        CNNConfig(**kwargs)
