"""Looking inside trained models: recording attention weights from every layer.

`record_attention(model)` works for all four families because every attention variant
derives from `attention.RecordsAttention`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .attention import RecordsAttention


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """The model's attention modules, in the order `modules()` visits them."""
    return [m for m in model.modules() if isinstance(m, RecordsAttention)]


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect attention weights during forward passes: one (B, H, queries, keys) tensor per
    attention layer, in forward order. Layers take their explicit path only while recording.

        with record_attention(model) as maps:
            model(images)
        maps[0].shape  # (B, heads, 1 + N, 1 + N)
    """
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no attention layers to record.")
    sink: list[torch.Tensor] = []
    before = [layer.sink for layer in layers]
    for layer in layers:
        layer.sink = sink
    try:
        yield sink
    finally:
        for layer, old in zip(layers, before):
            layer.sink = old
