"""A small ResNet (He et al., 2016): the CNN baseline of notebook 04 and the DeiT teacher of notebook 05.

A stem convolution (stride 1, or 2 for larger images), then three stages of BasicBlocks at widths
w, 2w, 4w; the second and third halve the resolution (28 -> 14 -> 7, 32 -> 16 -> 8; a 56 x 56
canvas with stem stride 2: 28 -> 14 -> 7); then global average pooling and a linear head. Convolutions
bring the inductive biases a ViT has to learn from data: locality and translation equivariance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checks import check_fields, check_size, make_config
from .tokens import check_images


@dataclass
class CNNConfig:
    """Everything that fixes the ResNet's shape; `blocks` is the number of BasicBlocks per stage."""

    in_channels: int = 3
    num_classes: int = 10
    width: int = 16
    blocks: tuple[int, ...] = (2, 2, 2)
    stem_stride: int = 1  # 2 halves the resolution in the stem (as ResNet's stem does): a 56 x 56 canvas costs like 28 x 28

    def __post_init__(self) -> None:
        check_fields(self)  # types and ranges; blocks becomes a tuple (a JSON round trip makes it a list)
        check_size(self, self.parameter_estimate())

    def parameter_estimate(self) -> int:
        """About how many parameters the ResNet has: two 3 x 3 convolutions per block."""
        return sum(n * 18 * w * w for n, w in zip(self.blocks, self.widths)) + self.widths[-1] * self.num_classes

    @property
    def widths(self) -> list[int]:
        return [self.width * 2**i for i in range(len(self.blocks))]  # w, 2w, 4w

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Convolution (no bias: BatchNorm has one) followed by BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """y = relu(x + F(x)), F = conv-bn-relu-conv-bn; a 1x1 conv on the shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.residual = nn.Sequential(conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True), conv_bn(c_out, c_out))
        nn.init.zeros_(self.residual[-1][1].weight)  # each block starts as the identity: easier to train
        self.shortcut = conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.residual(x))  # (B, c_out, H / stride, W / stride)


class ResNet(nn.Module):
    """The CNN baseline: `ResNet(CNNConfig(...))` or `ResNet(in_channels=1, num_classes=10, width=16)`."""

    def __init__(self, config: CNNConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = make_config(CNNConfig, config, kwargs)
        self.stem = nn.Sequential(conv_bn(c.in_channels, c.width, stride=c.stem_stride), nn.ReLU(inplace=True))
        stages, c_in = [], c.width
        for i, (n, c_out) in enumerate(zip(c.blocks, c.widths)):
            stride = 1 if i == 0 else 2  # keep full resolution in stage 1, then halve it
            stages += [BasicBlock(c_in if j == 0 else c_out, c_out, stride if j == 0 else 1) for j in range(n)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, c.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> globally pooled features (B, num_features) = (B, 4w) for three stages."""
        check_images(x, self.head.weight)
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images (B, {self.config.in_channels}, H, W), got shape {tuple(x.shape)}: "
                f"build the model with in_channels={x.shape[1] if x.ndim == 4 else '?'} or convert the images."
            )
        x = self.stages(self.stem(x))  # three stages: (B, 4w, H / 4, W / 4)
        return x.mean(dim=(2, 3))  # global average pool: (B, 4w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes)."""
        return self.head(self.forward_features(x))
