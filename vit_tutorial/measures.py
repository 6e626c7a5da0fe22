"""What a study records of each trained model besides its accuracy (`experiments.study(..., measures=...)`).

Each measure is a function (trained model, test set) -> a JSON-able value, computed once when the
run trains and cached with it: how far each layer's attention reaches, how much of the class
token's attention lands on the digit, how often the model agrees with the shipped CNN, ConViT's
gates. Attention is measured on the first `IMAGES` test images.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from . import analysis, canvas, data

IMAGES = 500


def _inputs(model: nn.Module, test_set, n: int = IMAGES) -> torch.Tensor:
    device = next(model.parameters()).device
    idx = list(range(min(n, len(test_set))))
    return torch.stack([test_set[i][0] for i in idx]).to(device)  # (n, C, H, W)


def _square_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The recorded self-attention maps (B, H, T, T) of `model` on `x`; class-attention rows are left out."""
    was_training = model.training
    with torch.no_grad(), analysis.record_attention(model.eval()) as maps:
        model(x)
    model.train(was_training)
    return [a for a in maps if a.shape[-1] == a.shape[-2]]


def attention_distance(model: nn.Module, test_set) -> list[list[float]]:
    """Mean attention distance in pixels per layer and head (layers, heads): the ViT paper's Fig. 7 measure,
    over patch queries and keys (prefix tokens left out, each row renormalised over the patches)."""
    c = model.config
    maps = _square_maps(model, _inputs(model, test_set))
    return analysis.mean_attention_distance(maps, c.grid_size, c.patch_size, prefix=None).tolist()


def digit_share(model: nn.Module, test_set) -> dict[str, float]:
    """How much of the class token's rolled-out attention lands on the patches of the digit, against the share
    of the grid those patches cover (what looking everywhere alike would give). Models whose every layer
    sees the class token (ViT, DeiT) only; the others get the last layer's class row where they have one."""
    c, x = model.config, _inputs(model, test_set)
    mask = canvas.patch_mask(test_set.boxes[: len(x)], c.image_size, c.patch_size)  # (n, g, g)
    maps = _square_maps(model, x)
    prefix = maps[-1].shape[-1] - c.num_patches
    rolled = analysis.rollout(maps)[:, 0] if len({a.shape for a in maps}) == 1 else maps[-1].mean(1)[:, 0]  # (n, T)
    return {"on_digit": analysis.share_on(analysis.token_grid(rolled, prefix), mask).mean().item(),
            "area": mask.float().mean().item()}


def agreement_cnn(model: nn.Module, test_set) -> float:
    """The share of test images on which the model's prediction equals the shipped CNN's."""
    from . import checkpoint
    from .train import predict

    cnn, info = checkpoint.load(data.data_dir() / "checkpoints" / "cnn")
    if info.get("dataset") != test_set.name:
        raise ValueError(f"the shipped CNN was trained on {info.get('dataset')}, not {test_set.name}: run make checkpoints.")
    ours, _ = predict(model, test_set)
    theirs, _ = predict(cnn, test_set)
    return (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()


def gates(model: nn.Module, test_set) -> list[list[float]]:
    """ConViT's gates sigmoid(lambda) per GPSA layer and head: 1 = purely positional attention."""
    return model.gates().detach().cpu().tolist()


def position_relations(model: nn.Module, test_set) -> dict[str, float]:
    """Mean cosine similarity of the position table's rows by how their patches lie (`analysis.position_relations`)."""
    sim = analysis.position_similarity(model.pos_embed)
    return analysis.position_relations(sim, model.config.grid_size)


MEASURES: dict[str, Callable[[nn.Module, Any], Any]] = {
    "attention_distance": attention_distance, "digit_share": digit_share, "agreement_cnn": agreement_cnn, "gates": gates,
    "position_relations": position_relations,
}
