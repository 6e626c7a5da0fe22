"""MLP-Mixer (Tolstikhin et al., 2021, "MLP-Mixer: An all-MLP Architecture for Vision"): no attention.

The same patch tokens as a ViT, then blocks that mix information in two ways, each a pre-norm
residual MLP: a token-mixing MLP that runs across the N patches, for every channel separately,
and a channel-mixing MLP that runs across the D channels, for every patch separately (the ViT's
MLP). The token-mixing MLP plays attention's part, with one difference that matters: its N x N
mixing is a learned matrix, the same for every image, where attention computes a new one from
each image's content. No class token, no position table (the token-mixing weights know where
each patch is); the head reads the mean of the patch tokens.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from torch import nn

from .blocks import MLP, DropPath, init_weights, layer_norm
from .checks import MAX_PATCHES, check_fields, check_size, make_config
from .tokens import PatchEmbed, check_patch_grid


@dataclass
class MixerConfig:
    """Everything that fixes a Mixer's shape. Defaults are Mixer-S/16 at 224 x 224 (timm `mixer_s16_224`):
    the token-mixing MLP's hidden width is `tokens_ratio` x dim, the channel-mixing one's `channels_ratio` x dim."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    dim: int = 512
    depth: int = 8
    tokens_ratio: float = 0.5
    channels_ratio: float = 4.0
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self)
        check_patch_grid(self.image_size, self.patch_size)
        if self.num_patches > MAX_PATCHES:
            raise ValueError(f"image_size {self.image_size} with patch_size {self.patch_size} gives {self.num_patches} "
                             f"patches, more than {MAX_PATCHES}: use larger patches or smaller images.")
        for name in ("tokens_ratio", "channels_ratio"):
            if int(self.dim * getattr(self, name)) < 1:
                raise ValueError(f"{name} {getattr(self, name)} gives its MLP no hidden units at dim {self.dim}.")
        check_size(self, self.parameter_estimate())

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def tokens_hidden(self) -> int:
        return int(self.dim * self.tokens_ratio)

    @property
    def channels_hidden(self) -> int:
        return int(self.dim * self.channels_ratio)

    def parameter_estimate(self) -> int:
        """About how many parameters the model has: per block two MLPs, across tokens and across channels."""
        per_block = 2 * self.num_patches * self.tokens_hidden + 2 * self.dim * self.channels_hidden
        return self.depth * per_block + self.in_channels * self.patch_size**2 * self.dim + self.dim * self.num_classes

    def to_dict(self) -> dict:
        return asdict(self)


class MixerBlock(nn.Module):
    """x = x + token-MLP(LN(x)) across the patches, then x = x + channel-MLP(LN(x)) across the channels."""

    def __init__(self, dim: int, num_patches: int, tokens_hidden: int, channels_hidden: int, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.mlp_tokens = MLP(num_patches, tokens_hidden)  # mixes the N patches, one channel at a time
        self.norm2 = layer_norm(dim)
        self.mlp_channels = MLP(dim, channels_hidden)  # mixes the D channels, one patch at a time
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mlp_tokens(rearrange(self.norm1(x), "b n d -> b d n"))  # (B, D, N): each channel across patches
        x = x + self.drop_path(rearrange(mixed, "b d n -> b n d"))  # (B, N, D)
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class Mixer(nn.Module):
    """MLP-Mixer: `Mixer(MixerConfig(...))` or `Mixer(image_size=56, patch_size=7, dim=32, ...)`."""

    def __init__(self, config: MixerConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = make_config(MixerConfig, config, kwargs)
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.dim)
        # one stochastic-depth rate in every block, as timm's MlpMixer (a ViT's grows with depth)
        self.blocks = nn.Sequential(*[MixerBlock(c.dim, c.num_patches, c.tokens_hidden, c.channels_hidden, c.drop_path)
                                      for _ in range(c.depth)])
        self.norm = layer_norm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(init_weights)

    def token_mixing(self, block: int = 0) -> torch.Tensor:
        """The first layer of a block's token-mixing MLP as spatial maps: one (grid, grid) map of input weights
        per hidden unit, (tokens_hidden, grid, grid) (the Mixer paper's Fig. 5)."""
        w = self.blocks[block].mlp_tokens.fc1.weight.detach()  # (hidden, N)
        return rearrange(w, "k (gh gw) -> k gh gw", gh=self.config.grid_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> normalised patch tokens (B, N, D)."""
        return self.norm(self.blocks(self.patch_embed(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(dim=1))  # (B, classes)


def at_image_size(model: Mixer, image_size: int) -> Mixer:
    """A copy of `model` for images of another size with the same patches. A ViT only has to resize its
    position table; a Mixer's token-mixing weights *are* its positions: every weight of the first layer of a
    token-mixing MLP belongs to one input patch, every output of its second layer to one patch. So each
    hidden unit's (grid, grid) map of weights is resized (bilinear) to the new grid, input weights scaled by
    old / new number of patches so that a unit sums about as much input as before."""
    from dataclasses import replace

    import torch.nn.functional as F

    c = model.config
    new = Mixer(replace(c, image_size=image_size))
    g, h = c.grid_size, new.config.grid_size
    resize = lambda t: F.interpolate(t, size=(h, h), mode="bilinear", align_corners=False)  # noqa: E731  (B, C, g, g)
    weights = model.state_dict()
    for i in range(c.depth):
        key = f"blocks.{i}.mlp_tokens"
        fc1 = rearrange(weights[f"{key}.fc1.weight"], "k (gh gw) -> k 1 gh gw", gh=g)  # (hidden, 1, g, g)
        weights[f"{key}.fc1.weight"] = rearrange(resize(fc1), "k 1 gh gw -> k (gh gw)") * (g * g) / (h * h)
        fc2 = rearrange(weights[f"{key}.fc2.weight"], "(gh gw) k -> k 1 gh gw", gh=g)  # (hidden, 1, g, g)
        weights[f"{key}.fc2.weight"] = rearrange(resize(fc2), "k 1 gh gw -> (gh gw) k")
        bias = rearrange(weights[f"{key}.fc2.bias"], "(gh gw) -> 1 1 gh gw", gh=g)
        weights[f"{key}.fc2.bias"] = resize(bias).flatten()
    new.load_state_dict(weights)
    return new.train(model.training)
