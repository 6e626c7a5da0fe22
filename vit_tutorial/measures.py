"""What a study records of each trained model besides its accuracy (`experiments.study(..., measures=...)`).

Each measure is a function (trained model, test set) -> a JSON-able value, computed once when the
run trains and cached with it: how far each layer's attention reaches, how much of the class
token's attention lands on the digit, how often the model agrees with the shipped CNN, ConViT's
gates. Attention is measured on the first `IMAGES` test images. A measure that does not apply to a
model (attention distance of a CNN) records None, so that one study can hold several kinds of model.
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
    if not analysis.attention_layers(model):
        return None
    c = model.config
    maps = _square_maps(model, _inputs(model, test_set))
    return analysis.mean_attention_distance(maps, c.grid_size, c.patch_size, prefix=None).tolist()


def digit_distance(model: nn.Module, test_set) -> dict[str, list[list[float]]] | None:
    """Mean attention distance in pixels per layer and head, separately for query patches on the digit (its box
    touches them) and off it: a head can look locally around the digit's strokes while the empty patches look
    across the canvas at the digit, and the average over all queries would mix the two."""
    if not analysis.attention_layers(model) or getattr(test_set, "boxes", None) is None:
        return None
    c, x = model.config, _inputs(model, test_set)
    on = canvas.patch_mask(test_set.boxes[: len(x)], c.image_size, c.patch_size)  # (n, g, g)
    maps = _square_maps(model, x)
    return {"on": analysis.mean_attention_distance(maps, c.grid_size, c.patch_size, prefix=None, queries=on).tolist(),
            "off": analysis.mean_attention_distance(maps, c.grid_size, c.patch_size, prefix=None, queries=~on).tolist()}


def digit_share(model: nn.Module, test_set) -> dict[str, float] | None:
    """How much of the class token's attention lands on the patches of the digit, against the share of the
    grid those patches cover (what looking everywhere alike would give). For a ViT or DeiT, whose every
    layer sees the class token, its row of the attention rollout; for CaiT, the last class-attention
    block's maps; for ConViT, whose class token joins late, its row in the last layer; heads averaged."""
    if not analysis.attention_layers(model) or getattr(test_set, "boxes", None) is None:
        return None
    c, x = model.config, _inputs(model, test_set)
    mask = canvas.patch_mask(test_set.boxes[: len(x)], c.image_size, c.patch_size)  # (n, g, g)
    was_training = model.training
    with torch.no_grad(), analysis.record_attention(model.eval()) as maps:
        model(x)
    model.train(was_training)
    if maps[-1].shape[-2] == 1:  # CaiT's class attention: (n, H, 1, 1 + N)
        row = maps[-1].mean(1)[:, 0]  # (n, 1 + N)
    elif len({a.shape for a in maps}) == 1:  # every layer with the class token
        row = analysis.rollout(maps)[:, 0]
    else:  # ConViT: the class token is in the last layers only
        row = maps[-1].mean(1)[:, 0]
    shares = analysis.share_on(analysis.token_grid(row.cpu(), row.shape[-1] - c.num_patches), mask)  # (n,)
    return {"on_digit": shares.mean().item(), "area": mask.float().mean().item()}


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


def head_accuracies(model: nn.Module, test_set) -> dict[str, float] | None:
    """A DeiT student's test accuracy from its class head alone, its distillation head alone, and both
    averaged (what it predicts at test time)."""
    from .deit import DistilledViT, heads

    if not isinstance(model, DistilledViT):
        return None
    x, y = _inputs(model, test_set, len(test_set)), test_set.targets
    cls_logits, dist_logits = (t.cpu() for t in heads(model, x))
    acc = lambda logits: (logits.argmax(-1) == y).float().mean().item()  # noqa: E731
    return {"cls": acc(cls_logits), "dist": acc(dist_logits), "both": acc(cls_logits + dist_logits)}


@torch.no_grad()
def token_cosines(model: nn.Module, test_set) -> dict[str, Any] | None:
    """A DeiT student's class and distillation tokens: the cosine similarity of the two learned vectors, and
    of the two tokens' states after the embedding and after each block, averaged over the test images."""
    from .deit import DistilledViT
    from .tokens import prepend_tokens

    if not isinstance(model, DistilledViT):
        return None
    model.eval()
    x = _inputs(model, test_set)
    z = model.pos_embed(prepend_tokens(model.patch_embed(x), *model.prefix_tokens()))  # (B, 2 + N, D)
    per_layer = [torch.cosine_similarity(z[:, 0], z[:, 1], dim=-1).mean().item()]
    for block in model.blocks:
        z = block(z)
        per_layer.append(torch.cosine_similarity(z[:, 0], z[:, 1], dim=-1).mean().item())
    learned = torch.cosine_similarity(model.cls_token.flatten(), model.dist_token.flatten(), dim=0).item()
    return {"tokens": learned, "per_layer": per_layer}


def gates(model: nn.Module, test_set) -> list[list[float]]:
    """ConViT's gates sigmoid(lambda) per GPSA layer and head: 1 = purely positional attention."""
    return model.gates().detach().cpu().tolist() if hasattr(model, "gates") else None


def position_relations(model: nn.Module, test_set) -> dict[str, float]:
    """Mean cosine similarity of the position table's rows by how their patches lie (`analysis.position_relations`)."""
    if not hasattr(model, "pos_embed"):
        return None
    sim = analysis.position_similarity(model.pos_embed)
    return analysis.position_relations(sim, model.config.grid_size)


def positional_spread(model: nn.Module, test_set) -> list[list[float]] | None:
    """How wide each GPSA head's positional attention is, seen from the central query: the standard deviation
    of the offsets it attends to, in patches (GPSA layers, heads). A local kernel is narrow (about 1 patch)."""
    if not hasattr(model, "gpsa_layers"):
        return None
    with torch.no_grad():
        return [layer.kernel_centres_and_spread()[1].cpu().tolist() for layer in model.gpsa_layers()]


def content_distance(model: nn.Module, test_set) -> list[list[float]] | None:
    """How far each GPSA head's content attention reaches, in pixels (GPSA layers, heads): the gate-mixed map is
    (1 - g) content + g position, so content = (mixed - g position) / (1 - g). Where the gates barely move this
    shows what training did to the other half of the mix."""
    if not hasattr(model, "gpsa_layers"):
        return None
    c, layers = model.config, model.gpsa_layers()
    maps = _square_maps(model, _inputs(model, test_set))[: len(layers)]  # the GPSA layers come first
    with torch.no_grad():
        content = []
        for mixed, layer in zip(maps, layers):
            g = layer.gates()[:, None, None].to(mixed)  # (H, 1, 1)
            content.append((mixed - g * layer.positional_attention().to(mixed)) / (1 - g))  # (B, H, N, N)
    return analysis.mean_attention_distance(content, c.grid_size, c.patch_size, prefix=None).tolist()


MEASURES: dict[str, Callable[[nn.Module, Any], Any]] = {
    "attention_distance": attention_distance, "digit_distance": digit_distance, "digit_share": digit_share, "agreement_cnn": agreement_cnn, "gates": gates,
    "position_relations": position_relations, "head_accuracies": head_accuracies,
    "token_cosines": token_cosines, "positional_spread": positional_spread, "content_distance": content_distance,
}
