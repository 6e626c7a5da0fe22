"""Training: `fit` a model with AdamW and a warmup + cosine schedule, `evaluate` it, keep a `History`.

One code path for every device: bf16 autocast on CUDA, plain fp32 on the CPU. On the CPU a run
is deterministic: the same seed gives the same numbers, and a run stopped after k epochs and
resumed from its checkpoint (`out=..., resume=True`) ends with exactly the weights of an
uninterrupted run, because the checkpoint keeps the optimizer, the schedule and every RNG state.

Step by step (`experiments.fit_profile("vit", profile)` does the same in one line):

    model_kwargs, augment, fit_kwargs = experiments.run_settings(profile.run("vit"))
    model = checkpoint.build("vit", **model_kwargs)
    train_set, test_set = data.for_profile(profile, augment)
    history = fit(model, train_set, test_set, augment=augment, **fit_kwargs)
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from . import checkpoint, data, display, profiles

EVAL_BATCH = 500


@dataclass
class History:
    """Per-epoch numbers of a run, one list per quantity: `plt.plot(h.epoch, h.test_acc)`."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float | None] = field(default_factory=list)
    test_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # at the end of the epoch
    seconds: list[float] = field(default_factory=list)  # training time of the epoch (evaluation excluded)
    images_per_s: list[float] = field(default_factory=list)

    def append(self, **row: float) -> None:
        for name, value in row.items():
            getattr(self, name).append(value)

    def as_dict(self) -> dict[str, list]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**{f.name: list(d.get(f.name, [])) for f in fields(cls)})

    def __len__(self) -> int:
        return len(self.epoch)

    def summary(self) -> dict:
        """Final and best test accuracy, total training seconds and mean throughput."""
        tested = [(a, e) for a, e in zip(self.test_acc, self.epoch) if a is not None]
        best_acc, best_epoch = max(tested) if tested else (None, None)
        seconds = sum(self.seconds)
        images = sum(s * r for s, r in zip(self.seconds, self.images_per_s))
        return {
            "epochs": len(self), "final_train_acc": self.train_acc[-1] if self else None,
            "final_test_acc": self.test_acc[-1] if self else None, "best_test_acc": best_acc,
            "best_epoch": best_epoch, "train_seconds": seconds, "images_per_s": images / seconds if seconds else None,
        }


def _loader(source: Dataset | DataLoader, batch_size: int, shuffle: bool, seed: int, device) -> DataLoader:
    return source if isinstance(source, DataLoader) else data.loader(source, batch_size, shuffle, seed, device)


def _mean_logits(outputs: torch.Tensor | tuple) -> torch.Tensor:
    """DeiT returns one logits tensor per head while training: score their mean."""
    return torch.stack(list(outputs)).mean(0) if isinstance(outputs, (tuple, list)) else outputs


def predict(model: nn.Module, dataset: Dataset | DataLoader, batch_size: int = EVAL_BATCH,
            device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits (N, classes) in float32 on the CPU, and the targets (N,), in data order."""
    device = torch.device(device) if device else next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    logits, targets = [], []
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        for x, y in _loader(dataset, batch_size, False, 0, device):
            logits.append(_mean_logits(model(x.to(device))).float().cpu())  # (B, classes)
            targets.append(y)
    model.train(was_training)
    return torch.cat(logits), torch.cat(targets)


def evaluate(model: nn.Module, dataset: Dataset | DataLoader, batch_size: int = EVAL_BATCH, device=None) -> dict[str, float]:
    """Mean cross-entropy (no label smoothing) and accuracy of `model` on `dataset`."""
    logits, targets = predict(model, dataset, batch_size, device)
    return {"loss": F.cross_entropy(logits, targets).item(), "acc": (logits.argmax(-1) == targets).float().mean().item()}


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warmup to 1 over `warmup_steps`, then cosine decay to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return factor


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: not on biases, norms, tokens or position embeddings (as timm)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or "token" in name or "pos_embed" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _rng_state() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def fit(
    model: nn.Module,
    train_data: Dataset | DataLoader,
    test_data: Dataset | DataLoader | None = None,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    weight_decay: float = 0.05,
    warmup_epochs: float = 5,
    label_smoothing: float = 0.1,
    clip_grad: float | None = 1.0,
    augment: data.Augment | None = None,
    criterion: Callable | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable | None = None,
    progress: bool = True,
    compile: bool = False,
    info: dict | None = None,
) -> History:
    """Train `model` for `epochs` with AdamW, warmup + cosine LR per step, label smoothing and gradient clipping.

    `augment` adds batch-level mixup/cutmix (per-image augmentation belongs to the data set);
    `criterion(outputs, targets, images)` replaces the cross-entropy (DeiT's distillation loss).
    With `out`, a checkpoint is written there after every epoch (`info` adds fields to its JSON);
    `resume=True` continues the run saved in `out`, if there is one. `on_epoch_end(epoch, model,
    history)` is called after every epoch. `compile=True` trains through `torch.compile(model)`: a
    slow first epoch, faster steps after (bench/fit_speed.py measures when that pays off).
    Returns the `History`, also for a resumed run's earlier epochs.
    """
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 1, lr > 0 and batch_size >= 1; got {epochs}, {lr}, {batch_size}.")
    device = _device(device)
    kind = (info or {}).get("kind") or (checkpoint.kind_of(model) if out is not None else None)
    if out is not None and not hasattr(model, "config"):
        raise ValueError(f"{type(model).__name__} has no .config, so it cannot be checkpointed; train it with out=None.")
    profiles.seed_everything(seed)
    model.to(device)
    train_loader = _loader(train_data, batch_size, True, seed, device)
    steps = len(train_loader)  # batches per epoch
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    warmup = min(round(warmup_epochs * steps), epochs * steps // 2)  # at most half the run
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, epochs * steps))
    if criterion is None:
        criterion = cross_entropy(label_smoothing)
    num_classes = getattr(getattr(train_data, "dataset", train_data), "num_classes", None)  # a DataLoader's data set
    mix = data.mixer(augment, num_classes or model.config.num_classes) if augment else None
    history, start = History(), 0
    if resume and out is not None and (Path(out) / checkpoint.CONFIG).is_file():
        history, start = _resume(out, kind, model, optimizer, scheduler)
    net = torch.compile(model) if compile else model
    settings = dict(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                    label_smoothing=label_smoothing, clip_grad=clip_grad, augment=asdict(augment) if augment else None)
    step = dict(optimizer=optimizer, scheduler=scheduler, criterion=criterion, mix=mix, clip_grad=clip_grad)
    bar = display.progress(epochs * steps, start * steps, enabled=progress)
    for epoch in range(start + 1, epochs + 1):
        bar.set_description(f"epoch {epoch}/{epochs}")
        if train_loader.generator is not None:
            train_loader.generator.manual_seed(seed * 100_003 + epoch)  # the epoch's order, also after a resume
        train_loss, train_acc, seconds, seen = train_epoch(net, train_loader, device=device, bar=bar, **step)
        test = evaluate(model, test_data, device=device) if test_data is not None else {"loss": None, "acc": None}
        history.append(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test["loss"], test_acc=test["acc"],
                       lr=scheduler.get_last_lr()[0], seconds=seconds, images_per_s=seen / seconds)
        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", img_s=f"{seen / seconds:.0f}",
                        **({"test_acc": f"{test['acc']:.3f}"} if test["acc"] is not None else {}))
        if out is not None:
            metrics = {"test_acc": test["acc"], "test_loss": test["loss"], "train_acc": train_acc, "train_loss": train_loss}
            extra = {**(info or {}), "kind": kind, "seed": seed, "epoch": epoch, "settings": settings,
                     "metrics": metrics, "summary": history.summary(), "history": history.as_dict()}
            checkpoint.save(out, model, kind=kind, optimizer=optimizer, scheduler=scheduler, extra=extra,
                            state={"rng": _rng_state()})
        if on_epoch_end is not None:  # after the checkpoint: a callback that stops the run loses nothing
            on_epoch_end(epoch, model, history)
    bar.close()
    return history


def train_epoch(net: nn.Module, loader: DataLoader, *, optimizer, scheduler, criterion: Callable, mix: Callable | None,
                clip_grad: float | None, device: torch.device, bar) -> tuple[float, float, float, int]:
    """One pass over `loader`, an optimizer and a scheduler step per batch: (loss, accuracy, seconds, images)."""
    net.train()
    loss_sum, correct, seen, t0 = torch.zeros((), device=device), torch.zeros((), device=device), 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (B, C, H, W), (B,)
        if mix is not None:
            x, y = mix(x, y)  # y: soft targets (B, classes)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            outputs = net(x)
            loss = criterion(outputs, y, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(net.parameters(), clip_grad)
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(x)
        correct += (_mean_logits(outputs).argmax(-1) == (y.argmax(-1) if y.ndim > 1 else y)).sum()
        seen += len(x)
        bar.update()
        if i % 10 == 0 or i == len(loader) - 1:  # reading values waits for the GPU: not at every step
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
    train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen  # waits for the GPU to finish
    return train_loss, train_acc, time.perf_counter() - t0, seen


def cross_entropy(label_smoothing: float = 0.1) -> Callable:
    """The default criterion: cross-entropy with label smoothing (hard or soft targets), averaged over heads."""

    def criterion(outputs, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        heads = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return sum(F.cross_entropy(o, targets, label_smoothing=label_smoothing) for o in heads) / len(heads)

    return criterion


def _device(name: str | torch.device | None) -> torch.device:
    try:
        device = torch.device(name) if name else profiles.device()
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use 'cpu', 'cuda' or 'cuda:N'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here: use 'cpu'.")
    return device


def _resume(out, kind: str, model: nn.Module, optimizer, scheduler) -> tuple[History, int]:
    """Load the run saved in `out` into model/optimizer/scheduler and the RNGs; (history, last epoch)."""
    info = checkpoint.read_info(out)
    if (info["kind"], info["model"]) != (kind, json.loads(json.dumps(model.config.to_dict()))):
        raise ValueError(f"the checkpoint in {out} holds another model ({info['kind']}: {info['model']}); "
                         "resume with the same settings or use another output directory.")
    checkpoint.load_weights(out, model, info)
    state = checkpoint.load_training_state(out, info)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["state"]["rng"])
    return History.from_dict(info["history"]), int(info["epoch"])
