"""The per-epoch record of a training run: `History`, as `train.fit` returns it and checkpoints keep it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


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
