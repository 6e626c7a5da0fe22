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

import contextlib
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import checkpoint, data, devices, display, profiles, resuming
from .checks import check_data, check_settings
from .history import History  # noqa: F401  (train.History: the notebooks' spelling)

EVAL_BATCH = 500


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
    """LR factor per step: linear warmup to 1 over `warmup_steps` (at most half the run), then cosine decay to 0
    at `total_steps`."""
    warmup_steps = min(warmup_steps, total_steps // 2)

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


class NonFiniteLoss(ArithmeticError):
    """Raised by `train_epoch` at the first step whose loss is NaN or infinite (1-based `step`)."""

    def __init__(self, step: int):
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


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
    overwrite: bool = False,
    on_epoch_end: Callable | None = None,
    progress: bool = True,
    compile: bool = False,
    info: dict | None = None,
    eval_every: int = 1,
) -> History:
    """Train `model` for `epochs` with AdamW, warmup + cosine LR per step, label smoothing and gradient clipping.

    `augment` adds batch-level mixup/cutmix (per-image augmentation belongs to the data set);
    `criterion(outputs, targets, images)` replaces the cross-entropy (DeiT's distillation loss).
    With `out`, a checkpoint is written there after every epoch (`info` adds fields to its JSON). A
    checkpoint already in `out` is never replaced unless asked: `resume=True` continues that run (only
    if its settings match: they are named otherwise), `overwrite=True` starts over (the old checkpoint
    stays until the first epoch's replaces it). A loss or weights that turn NaN or infinite stop the
    run with an error naming the epoch and step; the last good checkpoint stays. `on_epoch_end(epoch, model,
    history)` is called after every epoch. `compile=True` trains through `torch.compile(model)`: a
    slow first epoch, faster steps after (bench/fit_speed.py measures when that pays off).
    The test set is scored every `eval_every` epochs and after the last (long runs on a few images
    have thousands of short epochs). Returns the `History`, also for a resumed run's earlier epochs.
    """
    given = dict(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                 label_smoothing=label_smoothing, clip_grad=clip_grad, seed=seed)
    given = check_settings(given)
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be a whole number of epochs >= 1, got {eval_every!r}.")
    epochs, batch_size, clip_grad, seed = given["epochs"], given["batch_size"], given["clip_grad"], given["seed"]
    device = devices.resolve(device)
    num_classes = getattr(getattr(model, "config", None), "num_classes", None)
    check_data(train_data, "train_data", num_classes)
    if test_data is not None:
        check_data(test_data, "test_data", num_classes)
    if out is None and (resume or overwrite):
        raise ValueError("resume=True and overwrite=True act on a checkpoint: pass out= (the run's folder) too.")
    kind = (info or {}).get("kind") or (checkpoint.kind_of(model) if out is not None else None)
    if out is not None and not hasattr(model, "config"):
        raise ValueError(f"{type(model).__name__} has no .config, so it cannot be checkpointed; train it with out=None.")
    settings = {k: given[k] for k in ("epochs", "lr", "batch_size", "weight_decay", "warmup_epochs", "label_smoothing",
                                       "clip_grad")} | {"augment": asdict(augment) if augment else None}
    with contextlib.ExitStack() as stack:
        folder, saved = stack.enter_context(checkpoint.writing(out)) if out is not None else (None, None)
        to_dict = getattr(getattr(model, "config", None), "to_dict", None)
        run = {**(info or {}), "kind": kind, "model": to_dict() if to_dict else None, "seed": seed, "settings": settings}
        resuming_run = folder is not None and resuming.plan(folder, saved, run, resume, overwrite)
        profiles.seed_everything(seed)
        model.to(device)
        train_loader = _loader(train_data, batch_size, True, seed, device)
        steps = len(train_loader)  # batches per epoch
        optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(round(warmup_epochs * steps), epochs * steps))
        if criterion is None:
            criterion = cross_entropy(label_smoothing)
        data_classes = getattr(getattr(train_data, "dataset", train_data), "num_classes", None)  # a DataLoader's data set
        mix = data.mixer(augment, data_classes or num_classes) if augment else None
        history, start = History(), 0
        if resuming_run:
            saved_history, start = resuming.restore(folder, saved, model, optimizer, scheduler)
            history = History.from_dict(saved_history)
        net = torch.compile(model) if compile else model
        step = dict(optimizer=optimizer, scheduler=scheduler, criterion=criterion, mix=mix, clip_grad=clip_grad)
        bar = display.progress(epochs * steps, start * steps, enabled=progress)
        for epoch in range(start + 1, epochs + 1):
            bar.set_description(f"epoch {epoch}/{epochs}")
            if train_loader.generator is not None:
                train_loader.generator.manual_seed(seed * 100_003 + epoch)  # the epoch's order, also after a resume
            try:
                train_loss, train_acc, seconds, seen = train_epoch(net, train_loader, device=device, bar=bar, **step)
                if not torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all():
                    raise NonFiniteLoss(steps)
            except NonFiniteLoss as err:
                bar.close()
                kept = (f"the checkpoint in {folder} ({resuming.describe(checkpoint.read_info(folder))}) is kept"
                        if folder is not None and checkpoint.exists(folder) else "no checkpoint was written")
                raise ValueError(
                    f"training diverged at epoch {epoch}, step {err.step} of {steps}: the loss or the weights became NaN or "
                    f"infinite. Check the data for NaN/inf values and try a lower lr (now {lr}); {kept}."
                ) from None
            scored = test_data is not None and (epoch % eval_every == 0 or epoch == epochs)
            test = evaluate(model, test_data, device=device) if scored else {"loss": None, "acc": None}
            history.append(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test["loss"], test_acc=test["acc"],
                           lr=scheduler.get_last_lr()[0], seconds=seconds, images_per_s=seen / seconds)
            bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", img_s=f"{seen / seconds:.0f}",
                            **({"test_acc": f"{test['acc']:.3f}"} if test["acc"] is not None else {}))
            if folder is not None:
                metrics = {"test_acc": test["acc"], "test_loss": test["loss"], "train_acc": train_acc, "train_loss": train_loss}
                extra = {**run, "epoch": epoch, "metrics": metrics, "summary": history.summary(), "history": history.as_dict()}
                checkpoint.save(folder, model, kind=kind, optimizer=optimizer, scheduler=scheduler, extra=extra,
                                state={"rng": resuming.rng_state()})
            if on_epoch_end is not None:  # after the checkpoint: a callback that stops the run loses nothing
                on_epoch_end(epoch, model, history)
        bar.close()
    return history


def train_epoch(net: nn.Module, loader: DataLoader, *, optimizer, scheduler, criterion: Callable, mix: Callable | None,
                clip_grad: float | None, device: torch.device, bar) -> tuple[float, float, float, int]:
    """One pass over `loader`, an optimizer and a scheduler step per batch: (loss, accuracy, seconds, images)."""
    net.train()
    loss_sum, correct, seen, t0 = torch.zeros((), device=device), torch.zeros((), device=device), 0, time.perf_counter()
    first_bad = torch.zeros((), dtype=torch.long, device=device)  # 1-based step of the first non-finite loss, 0: none
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
        first_bad = torch.where((first_bad == 0) & ~loss.detach().isfinite(), i + 1, first_bad)  # no wait for the GPU
        loss_sum += loss.detach() * len(x)
        correct += (_mean_logits(outputs).argmax(-1) == (y.argmax(-1) if y.ndim > 1 else y)).sum()
        seen += len(x)
        bar.update()
        if i % 10 == 0 or i == len(loader) - 1:  # reading values waits for the GPU: not at every step
            if first_bad.item():
                raise NonFiniteLoss(first_bad.item())
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
