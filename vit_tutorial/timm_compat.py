"""Moving weights between timm and vit_tutorial: `from_timm(timm_model)` and `to_timm(model)`.

Both directions give identical logits (to float rounding). Each supported family registers
how to read its config from a timm model, how to build the timm model back, and how our
parameter names map onto timm's (most are the same by design; `timm_families`). A timm model
that uses anything we do not model is refused first, by name (`timm_audit`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .timm_families import FAMILIES, Family


def _find(model: nn.Module, by_timm: bool) -> Family:
    name = type(model).__name__
    for family in reversed(FAMILIES):  # subclasses register later and win
        if (name == family.timm_class) if by_timm else type(model) is family.ours:
            return family
    known = ", ".join(f.timm_class if by_timm else f.ours.__name__ for f in FAMILIES)
    raise ValueError(f"cannot convert a {name}: supported are {known}.")


def _timm_key(key: str, renames: dict[str, str]) -> str:
    for ours, theirs in renames.items():
        key = key.replace(ours, theirs)
    return key


def _copy(src: dict[str, torch.Tensor], dst: nn.Module, key_map: Callable[[str], str]) -> None:
    """Copy `src` into `dst`, where dst's key k reads src[key_map(k)]; every key must be used."""
    wanted = dst.state_dict()
    missing = [k for k in wanted if key_map(k) not in src]
    unused = set(src) - {key_map(k) for k in wanted}
    if missing or unused:
        raise ValueError(f"state_dicts do not line up: missing {missing[:5]}, unused {sorted(unused)[:5]}.")
    new = {}
    for k, v in wanted.items():
        t = src[key_map(k)]
        if t.shape != v.shape:
            raise ValueError(f"shape of {k} is {tuple(v.shape)} here but {tuple(t.shape)} in the source.")
        new[k] = t.detach().clone()
    dst.load_state_dict(new)


def from_timm(timm_model: nn.Module) -> nn.Module:
    """Our model with the architecture and weights of `timm_model` (same logits, eval mode)."""
    family = _find(timm_model, by_timm=True)
    model = family.from_timm_config(timm_model)
    _copy(timm_model.state_dict(), model, lambda k: _timm_key(k, family.renames))
    return model.train(timm_model.training)


def to_timm(model: nn.Module) -> nn.Module:
    """A timm model with the architecture and weights of our `model` (needs `pip install timm`)."""
    family = _find(model, by_timm=False)
    timm_model = family.to_timm_model(model)
    ours = model.state_dict()
    inverse = {_timm_key(k, family.renames): k for k in ours}
    _copy(ours, timm_model, lambda k: inverse.get(k, k))
    return timm_model.train(model.training)


def pretrained(name: str) -> nn.Module:
    """Download timm's pretrained `name` (e.g. 'deit_tiny_patch16_224') and convert it.

    Needs the network; offline it raises a ValueError that says so, so callers can fall back
    to a shipped checkpoint.
    """
    import timm

    try:
        timm_model = timm.create_model(name, pretrained=True)
    except Exception as err:  # no network, no cache, or unknown name
        raise ValueError(
            f"could not load pretrained {name!r} through timm ({type(err).__name__}: {str(err)[:120]}). "
            "Offline? Connect once to cache the weights, or use a checkpoint from data/checkpoints."
        ) from err
    return from_timm(timm_model.eval()).eval()
