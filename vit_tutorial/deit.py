"""DeiT (Touvron et al., 2021, "Training data-efficient image transformers & distillation through attention").

DeiT trains a plain ViT on ImageNet alone by using strong augmentation, stochastic depth, and a
teacher. Its distilled variant adds a second learned token, the *distillation token*, with its
own head: the class head learns from the labels, the distillation head learns from the teacher,
and at test time the two predictions are averaged. Everything else is the ViT of `vit.py`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import init_weights
from .checks import make_config
from .vit import ViT, ViTConfig

Logits = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
KINDS = ("none", "soft", "hard")


class DistilledViT(ViT):
    """ViT with a distillation token: tokens are [cls, dist, patches], each with a position.

    In training it returns both heads' logits `(cls_logits, dist_logits)`, so that a
    `DistillationLoss` can send each to its own target; in eval it returns their mean.
    """

    def __init__(self, config: ViTConfig | None = None, **kwargs):
        config = make_config(ViTConfig, config, kwargs)
        if config.pool != "cls":
            raise ValueError(f"DistilledViT reads its class and distillation tokens; use pool='cls', not {config.pool!r}.")
        super().__init__(config)
        self.dist_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        nn.init.trunc_normal_(self.dist_token, std=0.02)  # as DeiT initialises it
        self.head_dist = nn.Linear(config.dim, config.num_classes)
        init_weights(self.head_dist)

    def prefix_tokens(self) -> list[nn.Parameter]:
        """The class token, then the distillation token."""
        return super().prefix_tokens() + [self.dist_token]

    @property
    def num_prefix_tokens(self) -> int:
        return 2

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised tokens (B, 2 + N, D) -> (class-head logits, distillation-head logits), each (B, classes)."""
        return self.head(x[:, 0]), self.head_dist(x[:, 1])

    def forward_head(self, x: torch.Tensor) -> Logits:
        cls_logits, dist_logits = self.forward_heads(x)
        return (cls_logits, dist_logits) if self.training else (cls_logits + dist_logits) / 2


class DistillationLoss:
    """The DeiT training loss: `loss = DistillationLoss(nn.CrossEntropyLoss(), teacher, "hard")`,
    then `loss(outputs, targets, images)`.

    The class head learns from the targets through `base_criterion` (soft mixup targets are fine
    if the criterion takes them); the distillation head learns from the teacher's logits on the
    same images, and the two losses are mixed as `base * (1 - alpha) + kd * alpha`:
    - "soft": KL divergence between the softened distributions softmax(logits / tau), times tau^2,
      summed and divided by batch * classes (exactly as the official code does);
    - "hard": cross-entropy against the teacher's top class;
    - "none": no teacher; only the class head (or a plain model's logits) meets the targets, so a
      DistilledViT's distillation head stays untrained while eval still averages both heads: for a
      no-distillation baseline of a DistilledViT, train both heads on the labels (train.fit's default).
    The teacher runs in eval mode without gradients and is moved to the images' device.
    """

    def __init__(
        self,
        base_criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        teacher: nn.Module | None = None,
        kind: str = "none",
        alpha: float = 0.5,
        tau: float = 1.0,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown distillation kind {kind!r}: use one of {KINDS}.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha weighs the teacher's loss and must be in [0, 1], got {alpha}.")
        if tau <= 0:
            raise ValueError(f"the temperature tau must be positive, got {tau}.")
        if kind != "none" and teacher is None:
            raise ValueError(f"{kind!r} distillation needs a teacher model; pass teacher=... or use kind='none'.")
        self.base_criterion, self.teacher, self.kind, self.alpha, self.tau = base_criterion, teacher, kind, alpha, tau
        if teacher is not None:
            teacher.eval()

    def __call__(self, outputs: Logits, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        cls_logits, dist_logits = outputs if isinstance(outputs, (tuple, list)) else (outputs, None)
        base = self.base_criterion(cls_logits, targets)
        if self.kind == "none":
            return base
        if dist_logits is None:
            raise ValueError(
                f"{self.kind!r} distillation needs (cls_logits, dist_logits): train a DistilledViT "
                "in training mode, or use kind='none' for a model with one head."
            )
        teacher_logits = self.teacher_logits(images)  # (B, classes)
        if self.kind == "soft":
            t = self.tau
            kd = F.kl_div(
                F.log_softmax(dist_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                reduction="sum", log_target=True,
            ) * (t * t) / dist_logits.numel()
        else:
            kd = F.cross_entropy(dist_logits, teacher_logits.argmax(dim=1))
        return base * (1 - self.alpha) + kd * self.alpha

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (B, classes), in eval mode, on the images' device, without gradients."""
        first = next(self.teacher.parameters(), None)
        if first is not None and first.device != images.device:
            self.teacher.to(images.device)
        return self.teacher.eval()(images)

    def __repr__(self) -> str:
        teacher = type(self.teacher).__name__ if self.teacher is not None else None
        return f"DistillationLoss(kind={self.kind!r}, alpha={self.alpha}, tau={self.tau}, teacher={teacher})"


# --- Looking at the two heads ---------------------------------------------------------------


@torch.no_grad()
def heads(model: DistilledViT, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both heads' logits (cls, dist), each (B, classes), in eval mode and without averaging."""
    if not isinstance(model, DistilledViT):
        raise ValueError(f"heads() needs a DistilledViT, got a {type(model).__name__}.")
    was_training = model.training
    try:
        return model.eval().forward_heads(model.forward_features(images))
    finally:
        model.train(was_training)


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of samples where two predictions agree. Each argument is logits (B, classes),
    whose argmax is taken, or class indices (B,); logits against labels is accuracy."""
    a, b = (t.argmax(dim=1) if t.ndim == 2 else t for t in (a, b))
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected (B, classes) logits or (B,) classes of one batch size, got {tuple(a.shape)} and {tuple(b.shape)}.")
    return (a == b).float().mean().item()


@torch.no_grad()
def head_agreement(model: DistilledViT, teacher: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """How often the class head, the distillation head and the teacher pick the same class.

    DeiT's observation: the distillation head agrees with the teacher more than the class head does.
    """
    cls_logits, dist_logits = heads(model, images)
    was_training = teacher.training
    teacher_logits = teacher.eval()(images)
    teacher.train(was_training)
    return {
        "cls-teacher": agreement(cls_logits, teacher_logits),
        "dist-teacher": agreement(dist_logits, teacher_logits),
        "cls-dist": agreement(cls_logits, dist_logits),
    }


@torch.no_grad()
def teacher_disagreement(teacher: nn.Module, train_set, augment=None, batches: int = 20, batch_size: int = 64,
                         seed: int = 0) -> float:
    """How often the teacher's decision differs from the label on the views a student trains on: `batches`
    batches of `train_set` (whose per-image augmentation is its own) with `augment`'s mixup / cutmix on top;
    a mixed label counts as its larger class. Where this is near 0, hard distillation is the labels again."""
    from .data import loader, mixer

    torch.manual_seed(seed)
    mix = mixer(augment, train_set.num_classes) if augment is not None else None
    differ, seen = 0, 0
    for i, (x, y) in enumerate(loader(train_set, batch_size, shuffle=True, seed=seed, device="cpu")):
        if i == batches:
            break
        if mix is not None:
            x, y = mix(x, y)  # y: soft targets (B, classes)
        label = y.argmax(-1) if y.ndim > 1 else y
        differ += (teacher.eval()(x).argmax(-1) != label).sum().item()
        seen += len(x)
    return differ / seen
