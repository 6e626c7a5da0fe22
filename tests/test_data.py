"""The data module: bundled MNIST 5k, CIFAR-10 from a fake on-disk copy, subsets, augmentations, loaders."""
import hashlib
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from vit_tutorial import data


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k", "train"), data.load("mnist5k", "test")


def test_mnist5k_split_is_stratified_uint8_and_disjoint(mnist):
    train, test = mnist
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.bincount(train.targets).tolist() == [400] * 10
    assert torch.bincount(test.targets).tolist() == [100] * 10
    assert train.images.dtype == torch.uint8 and train.images.shape == (4000, 1, 28, 28)
    assert train.targets.dtype == torch.long
    assert (train.num_classes, train.image_size, train.in_channels) == (10, 28, 1)
    assert train.classes == [str(d) for d in range(10)]
    # No image of the test split appears in the training split.
    seen = {img.numpy().tobytes() for img in train.images}
    assert sum(img.numpy().tobytes() in seen for img in test.images) == 0


def test_items_are_normalised_float_images(mnist):
    train, _ = mnist
    x, y = train[0]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28) and isinstance(y, int)
    batch = torch.stack([train[i][0] for i in range(500)])
    assert abs(batch.mean().item()) < 0.1 and abs(batch.std().item() - 1) < 0.1  # mean/std of MNIST
    raw = train.images[0].float() / 255
    assert torch.allclose(train.denormalize(x), raw, atol=1e-6)


def test_bad_names_and_splits_say_the_fix():
    with pytest.raises(ValueError, match="mnist5k"):
        data.load("imagenet", "train")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load("mnist5k", "val")
    with pytest.raises(ValueError, match="flip"):
        data.load("mnist5k", "train", data.Augment(flip=True))
    with pytest.raises(ValueError, match="erasing"):
        data.Augment(erasing=1.5)


def test_subset_is_stratified_and_seeded(mnist):
    train, _ = mnist
    a, b, c = data.subset(train, 0.1, seed=0), data.subset(train, 0.1, seed=0), data.subset(train, 0.1, seed=1)
    assert a.indices == b.indices and a.indices != c.indices
    assert torch.bincount(a.targets).tolist() == [40] * 10
    assert torch.equal(a.targets, train.targets[a.indices])
    assert a.num_classes == 10 and a.image_size == 28 and len(a.images) == 400
    x, y = a[3]
    assert y == train.targets[a.indices[3]].item() and torch.equal(x, train[a.indices[3]][0])
    assert len(data.subset(train, 1.0)) == len(train)


def test_tiny_subset_keeps_every_class(mnist):
    train, _ = mnist
    tiny = data.subset(train, 1e-4)
    assert torch.bincount(tiny.targets, minlength=10).tolist() == [1] * 10
    nested = data.subset(data.subset(train, 0.5), 0.1, seed=3)  # a subset of a subset still knows its targets
    assert torch.bincount(nested.targets).tolist() == [20] * 10


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction(mnist, fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        data.subset(mnist[0], fraction)


def test_augmentation_changes_images_not_shapes(mnist):
    plain = mnist[0]
    torch.manual_seed(0)
    aug = data.load("mnist5k", "train", data.Augment(shift=3, erasing=1.0))
    x_aug, y_aug = aug[5]
    x, y = plain[5]
    assert x_aug.shape == x.shape == (1, 28, 28) and y_aug == y
    assert not torch.equal(x_aug, x)
    assert data.load("mnist5k", "train", data.Augment()).move is None  # a trivial Augment is no augmentation
    batch = data.load("mnist5k", "train", data.Augment(shift=2)).__getitems__(list(range(8)))
    assert [t[0].shape for t in batch] == [(1, 28, 28)] * 8


def test_shift_is_a_translation(mnist):
    """A padded random crop moves the digit: the pixels are the same, only in another place."""
    torch.manual_seed(0)
    aug = data.load("mnist5k", "train", data.Augment(shift=2))
    moved = [aug[0][0] for _ in range(10)]
    assert any(not torch.equal(m, mnist[0][0][0]) for m in moved)
    for m in moved:  # the digit sits near the centre, so no ink is lost by a 2-pixel shift
        assert torch.isclose(aug.denormalize(m).sum(), aug.denormalize(mnist[0][0][0]).sum(), rtol=0.02)


@pytest.mark.parametrize("augment", [data.Augment(mixup=0.8), data.Augment(cutmix=1.0), data.Augment(mixup=0.8, cutmix=1.0)])
def test_mixer_gives_soft_targets(mnist, augment):
    x = torch.stack([mnist[0][i][0] for i in range(16)])
    y = mnist[0].targets[:16]
    mixed, soft = data.mixer(augment, 10)(x, y)
    assert mixed.shape == x.shape and soft.shape == (16, 10)
    assert torch.allclose(soft.sum(1), torch.ones(16)) and (soft >= 0).all()
    assert data.mixer(data.Augment(shift=2), 10) is None and data.mixer(None, 10) is None


def test_loader_order_is_seeded(mnist):
    train = data.subset(mnist[0], 0.1)

    def order(seed):
        return torch.cat([y for _, y in data.loader(train, 64, shuffle=True, seed=seed, device="cpu")])

    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    dl = data.loader(train, 64, shuffle=False, device="cpu")
    assert dl.num_workers == 0 and not dl.pin_memory
    x, y = next(iter(dl))
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(y, train.targets[:64])


def _fake_cifar(root, per_batch=20, monkeypatch=None):
    """A small CIFAR-10 in the official python format: pickled dicts of uint8 (n, 3072) and labels.
    With `monkeypatch`, torchvision's list of checksums is made to name these files (the real ones are 30 MB)."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f for f, _ in CIFAR10.train_list + CIFAR10.test_list]):
        labels = [(j + i) % 10 for j in range(per_batch)]
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), "labels": labels}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / CIFAR10.meta["filename"], "wb") as f:
        pickle.dump({"label_names": data.CLASSES["cifar10"]}, f)
    if monkeypatch is not None:
        for attr in ("train_list", "test_list"):
            sums = [[name, hashlib.md5((folder / name).read_bytes()).hexdigest()] for name, _ in getattr(CIFAR10, attr)]
            monkeypatch.setattr(CIFAR10, attr, sums)
    return folder


def test_cifar10_reads_the_official_format(tmp_path, monkeypatch):
    folder = _fake_cifar(tmp_path, monkeypatch=monkeypatch)
    data._cifar10.cache_clear()
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    monkeypatch.delenv(data.ENV_SYNTHETIC, raising=False)
    assert data.data_dir() == tmp_path and data.cifar10_available()
    train, test = data.load("cifar10", "train"), data.load("cifar10", "test", data.Augment(shift=4, flip=True))
    assert (len(train), len(test)) == (100, 20)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert (train.in_channels, train.image_size, train.classes[0]) == (3, 32, "airplane")
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    # Rows are the R, G and B planes one after the other, each 32 x 32 row-major.
    assert torch.equal(train.images[0, 1, 2], torch.from_numpy(first["data"][0, 1024 + 64 : 1024 + 96]))
    assert train.targets[:20].tolist() == first["labels"]
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_cifar10_missing_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    monkeypatch.delenv(data.ENV_SYNTHETIC, raising=False)
    with pytest.raises(ValueError, match="download=True"):
        data.load("cifar10", "train")

    def offline(self):
        raise OSError("no network")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(ValueError, match="could not download.*no network"):
        data.load("cifar10", "train", download=True)
    # A profile that wants CIFAR-10 falls back to MNIST 5k with a one-line notice, flips dropped.
    train, test = data.for_profile(SimpleNamespace(dataset="cifar10"), data.Augment(shift=2, flip=True))
    assert (train.name, len(train), len(test), train.augment.flip) == ("mnist5k", 4000, 1000, False)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_synthetic_cifar10_is_small_and_deterministic(monkeypatch):
    monkeypatch.setenv(data.ENV_SYNTHETIC, "1")
    a, b = data.load("cifar10", "train"), data.load("cifar10", "train")
    test = data.load("cifar10", "test")
    assert a.images.shape == (5000, 3, 32, 32) and len(test) == 1000
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert torch.bincount(a.targets).tolist() == [500] * 10
    # Learnable: the per-class mean images differ from one class to the next.
    means = torch.stack([a.images[a.targets == c].float().mean(0) for c in range(10)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(1e9).min() > 100


def test_data_dir_defaults_to_the_repository(monkeypatch):
    monkeypatch.delenv(data.ENV_DATA, raising=False)
    assert (data.data_dir() / "mnist5k.npz").is_file()
