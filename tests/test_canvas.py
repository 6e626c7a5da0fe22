"""The digit canvas: deterministic, offline, boxes that hold the ink, clutter, relocation, patch masks."""
import hashlib

import pytest
import torch

from vit_tutorial import canvas, data


@pytest.fixture(scope="module")
def sets():
    return data.load("canvas", "train"), data.load("canvas", "test")


def test_canvas_keeps_the_mnist5k_split_and_labels(sets):
    train, test = sets
    digits_train, digits_test = data.load("mnist5k", "train"), data.load("mnist5k", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.shape == (4000, 1, 56, 56) and train.images.dtype == torch.uint8
    assert torch.equal(train.targets, digits_train.targets) and torch.equal(test.targets, digits_test.targets)
    assert (train.image_size, train.in_channels, train.num_classes, train.name) == (56, 1, 10, "canvas")
    # Each canvas holds exactly its digit's pixels: the same ink, moved.
    assert torch.equal(train.images.flatten(1).sum(1), digits_train.images.flatten(1).sum(1))


def test_canvas_is_the_same_bytes_on_every_call_and_machine(sets):
    data._canvas.cache_clear()
    again = data.load("canvas", "train")
    assert torch.equal(again.images, sets[0].images) and torch.equal(again.boxes, sets[0].boxes)
    # Pinned: the shipped results and checkpoints were made on exactly these images.
    digest = hashlib.sha256(sets[0].images.numpy().tobytes() + sets[1].images.numpy().tobytes()).hexdigest()
    assert digest[:16] == "b9d1da86278a55f8", digest[:16]


def test_boxes_hold_all_the_ink_and_fit_the_digit(sets):
    for ds in sets:
        b = ds.boxes
        assert b.shape == (len(ds), 4) and (b[:, :2] >= 0).all() and (b[:, 2:] <= 56).all()
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        assert (w > 0).all() and (h > 0).all() and (w <= 28).all() and (h <= 28).all()
        for i in range(0, len(ds), 97):
            x0, y0, x1, y1 = b[i].tolist()
            img = ds.images[i, 0]
            assert img[y0:y1, x0:x1].sum() == img.sum()  # no ink outside the box
            assert img[y0, x0:x1].any() and img[y1 - 1, x0:x1].any() and img[y0:y1, x0].any() and img[y0:y1, x1 - 1].any()


def test_digits_land_everywhere_on_the_canvas(sets):
    centres = (sets[0].boxes[:, :2] + sets[0].boxes[:, 2:]).float() / 2
    assert centres.min() <= 14 and centres.max() >= 42  # near every edge, not only in the middle
    mask = canvas.patch_mask(sets[0].boxes, 56, 7)  # (N, 8, 8)
    assert mask.any(0).all()  # every patch holds some digit
    assert 0.12 < mask.float().mean() < 0.25  # a digit covers about a fifth of the grid


def test_normalisation_statistics_are_the_canvas_own(sets):
    x = sets[0].images.float() / 255
    mean, std = data.STATS["canvas"]
    assert abs(x.mean().item() - mean[0]) < 1e-3 and abs(x.std().item() - std[0]) < 1e-3


def test_clutter_adds_fragments_and_keeps_the_digit():
    plain, cluttered = data.load("canvas", "test"), data.load("canvas", "test", clutter=6)
    assert (cluttered.images > 0).sum() > (plain.images > 0).sum() * 1.2
    assert torch.equal(cluttered.targets, plain.targets)
    for i in range(0, 1000, 111):  # the digit itself is there, whole, in its box
        x0, y0, x1, y1 = cluttered.boxes[i].tolist()
        digit = data.load("mnist5k", "test").images[i, 0]
        patch = cluttered.images[i, 0, y0:y1, x0:x1]
        inner = canvas.ink_boxes(digit[None, None])[0].tolist()
        assert (patch >= digit[inner[1]:inner[3], inner[0]:inner[2]]).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(size=27), "size must be a whole number from 28"),
    (dict(size=2000), "size must be a whole number from 28 to 1024"),
    (dict(size=56.0), "size must be a whole number"),
    (dict(size=True), "size must be a whole number"),
    (dict(clutter=-1), "clutter must be a whole number from 0"),
    (dict(clutter="3"), "clutter must be a whole number"),
])
def test_bad_canvas_parameters_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        data.load("canvas", "train", **kwargs)


def test_clutter_belongs_to_the_canvas_and_size_resizes_the_others():
    with pytest.raises(ValueError, match="clutter= strews digit fragments on the canvas"):
        data.load("mnist5k", "train", clutter=2)
    big = data.load("mnist5k", "test", size=42)
    assert big.images.shape == (1000, 1, 42, 42) and big.images.dtype == torch.uint8
    assert big.boxes[:, 2:].max() > 30  # boxes measured on the resized digits


def test_a_larger_canvas_has_more_room():
    big = data.load("canvas", "test", size=84)
    assert big.images.shape == (1000, 1, 84, 84) and big.boxes[:, 2:].max() > 60


def test_relocate_moves_each_digit_whole_and_keeps_it_inside(sets):
    train = sets[0]
    torch.manual_seed(0)
    moved = canvas.relocate(train.images[:64], train.boxes[:64])
    assert moved.shape == (64, 1, 56, 56)
    assert torch.equal(moved.flatten(1).sum(1), train.images[:64].flatten(1).sum(1))  # no ink lost or wrapped
    new_boxes = canvas.ink_boxes(moved)
    assert torch.equal(new_boxes[:, 2:] - new_boxes[:, :2], train.boxes[:64, 2:] - train.boxes[:64, :2])
    assert (new_boxes != train.boxes[:64]).any(1).float().mean() > 0.9  # almost all moved
    aug = data.load("canvas", "train", data.Augment(relocate=True))
    x, y = aug[3]
    assert x.shape == (1, 56, 56) and y == train.targets[3].item()


def test_relocation_needs_digits_on_black(monkeypatch):
    monkeypatch.setenv(data.ENV_SYNTHETIC, "1")
    with pytest.raises(ValueError, match="relocate"):
        data.load("cifar10", "train", data.Augment(relocate=True))
    with pytest.raises(ValueError, match="flip"):
        data.load("canvas", "train", data.Augment(flip=True))


def test_subsets_keep_their_boxes(sets):
    part = data.subset(sets[0], 0.1, seed=1)
    assert torch.equal(part.boxes, sets[0].boxes[part.indices])


def test_patch_mask_marks_the_patches_a_box_overlaps():
    boxes = torch.tensor([[0, 0, 7, 7], [6, 6, 8, 8], [50, 3, 56, 20]])
    m = canvas.patch_mask(boxes, 56, 7)
    assert m[0].sum() == 1 and m[0, 0, 0]
    assert m[1].sum() == 4 and m[1, :2, :2].all()  # pixels 6-7 touch patches 0 and 1 in both axes
    assert m[2].sum() == 3 and m[2, :3, 7].all()


def test_ink_boxes_of_an_empty_image_are_empty():
    assert canvas.ink_boxes(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).tolist() == [[0, 0, 0, 0]] * 2
