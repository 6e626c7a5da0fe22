"""Adversarial data files: a damaged or planted MNIST 5k or CIFAR-10 is a clear error and never runs code."""
import hashlib
import io
import pickle
import socket
import struct
import time

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from vit_tutorial import cifar10, data

BUNDLED = data._BUNDLED / "mnist5k.npz"


class RunsCode:
    """Unpickling this creates a file: the side effect a malicious pickle would have."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _digits(**change):
    with np.load(BUNDLED) as f:
        arrays = {k: f[k][:20] for k in f.files}
    return {**arrays, **change}


def _npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _write_case(case, path, marker):
    """Write the damaged mnist5k.npz of `case` to `path`."""
    good = io.BytesIO()
    np.savez(good, **_digits())
    arrays = _digits()
    writers = {
        "empty file": lambda: path.write_bytes(b""),
        "truncated zip": lambda: path.write_bytes(good.getvalue()[: len(good.getvalue()) // 2]),
        "random bytes": lambda: path.write_bytes(bytes(range(256)) * 8),
        "a pickle that runs code": lambda: path.write_bytes(pickle.dumps(RunsCode(marker))),
        "an object array that runs code": lambda: _npz(path, {**arrays, "x_test": np.array([RunsCode(marker)], dtype=object)}),
        "no test labels": lambda: _npz(path, {k: v for k, v in arrays.items() if k != "y_test"}),
        "float images": lambda: _npz(path, _digits(x_test=arrays["x_test"].astype(np.float32))),
        "labels above 9": lambda: _npz(path, _digits(y_test=arrays["y_test"] + 10)),
        "negative labels": lambda: _npz(path, _digits(y_test=arrays["y_test"] - 20)),
        "float labels": lambda: _npz(path, _digits(y_test=arrays["y_test"].astype(np.float64))),
        "wrong image size": lambda: _npz(path, _digits(x_test=np.zeros((20, 32, 32), np.uint8))),
        "fewer labels than images": lambda: _npz(path, _digits(y_test=arrays["y_test"][:5])),
        "no images at all": lambda: _npz(path, _digits(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.int64))),
    }
    writers[case]()


DAMAGED = {  # case -> words of the error
    "empty file": "is damaged or not the MNIST 5k file", "truncated zip": "is damaged or not the MNIST 5k file",
    "random bytes": "is damaged or not the MNIST 5k file", "a pickle that runs code": "is damaged or not the MNIST 5k file",
    "an object array that runs code": "is damaged or not the MNIST 5k file", "no test labels": "KeyError",
    "float images": "found float32 (20, 28, 28)", "labels above 9": "labels 0-9", "negative labels": "labels 0-9",
    "float labels": "float64 labels", "wrong image size": "(20, 32, 32)", "fewer labels than images": "does not hold uint8",
    "no images at all": "does not hold uint8",
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_mnist5k_is_a_clear_error_and_runs_nothing(case, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    _write_case(case, tmp_path / "mnist5k.npz", marker)
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    with pytest.raises(ValueError) as err:
        data.load("mnist5k", "test")
    assert "mnist5k.npz" in str(err.value) and DAMAGED[case] in str(err.value)
    assert "git checkout data/mnist5k.npz" in str(err.value)  # the fix
    assert not marker.exists()


# --- CIFAR-10 ------------------------------------------------------------------------------------
def _py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch exactly as the official files are: a Python 2 pickle (protocol 2) of numpy.core's array."""
    raw = images.tobytes()
    return b"".join([
        b"\x80\x02}q\x00(U\x04data", b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n", b"K\x00\x85U\x01b\x87R",
        b"(K\x01J" + struct.pack("<i", len(images)) + b"M\x00\x0c\x86", b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R",
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb", b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb",
        b"U\x06labels](" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu.",
    ])


def _official_like(root, monkeypatch, batch=None):
    """Every batch in the official (Python 2) format; `batch(name)` may replace one. Checksums made to match."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:
        content = batch(name) if batch else None
        (folder / name).write_bytes(content if content is not None else
                                    _py2_batch(rng.integers(0, 256, (4, 3072), dtype=np.uint8), [1, 2, 3, 9]))
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(CIFAR10, attr, [[n, hashlib.md5((folder / n).read_bytes()).hexdigest()] for n, _ in getattr(CIFAR10, attr)])
    monkeypatch.setenv(data.ENV_DATA, str(root))
    monkeypatch.delenv(data.ENV_SYNTHETIC, raising=False)
    return folder


def test_the_official_python2_format_is_read(tmp_path, monkeypatch):
    folder = _official_like(tmp_path, monkeypatch)
    train = data.load("cifar10", "train")
    assert train.images.shape == (20, 3, 32, 32) and train.targets.tolist() == [1, 2, 3, 9] * 5
    first = cifar10.read_batch(folder / "data_batch_1", None)[0]
    assert torch.equal(train.images[0].flatten(), torch.from_numpy(first[0]))


class _Evil:
    def __init__(self, module, name, arg):
        self.module, self.name, self.arg = module, name, arg

    def __reduce__(self):
        return (getattr(__import__(self.module, fromlist=[self.name]), self.name), (self.arg,))


def _evil_batch(marker, how):
    calls = {
        "os.system": _Evil("os", "system", f"touch {marker}"),
        "builtins.eval": _Evil("builtins", "eval", f"open({str(marker)!r}, 'w')"),
        "builtins.open": RunsCode(marker),
        "subprocess.getoutput": _Evil("subprocess", "getoutput", f"touch {marker}"),
        "numpy.load": _Evil("numpy", "load", str(marker)),
    }
    return pickle.dumps({"data": calls[how], "labels": [0]}, protocol=2)


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "builtins.open", "subprocess.getoutput", "numpy.load"])
def test_a_planted_batch_with_the_right_checksum_still_runs_no_code(how, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    _official_like(tmp_path, monkeypatch, batch=lambda name: _evil_batch(marker, how) if name == "data_batch_3" else None)
    with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR-10 batch \(it asks for .*not part of the CIFAR-10 format"):
        data.load("cifar10", "train")
    assert not marker.exists()


def test_a_planted_batch_without_the_published_checksum_is_not_even_read(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    folder = tmp_path / CIFAR10.base_folder
    folder.mkdir()
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:  # torchvision's real checksums stay
        (folder / name).write_bytes(_evil_batch(marker, "builtins.open"))
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    monkeypatch.delenv(data.ENV_SYNTHETIC, raising=False)
    with pytest.raises(ValueError, match="data_batch_1 is not the published CIFAR-10 file.*MD5"):
        data.load("cifar10", "train")
    assert not marker.exists()


WRONG_CONTENT = {
    "truncated": (lambda: _py2_batch(np.zeros((4, 3072), np.uint8), [0, 1, 2, 3])[:500], "is not a CIFAR-10 batch"),
    "float images": (lambda: pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}), "does not hold CIFAR-10 images"),
    "label 10": (lambda: _py2_batch(np.zeros((2, 3072), np.uint8), [0, 10]), "labels 0-9"),
    "too few labels": (lambda: _py2_batch(np.zeros((2, 3072), np.uint8), [0]), "does not hold CIFAR-10 images"),
    "a list, not a dict": (lambda: pickle.dumps([1, 2, 3]), "does not hold CIFAR-10 images"),
}


@pytest.mark.parametrize("case", WRONG_CONTENT)
def test_a_batch_of_the_wrong_content_is_refused(case, tmp_path, monkeypatch):
    make, words = WRONG_CONTENT[case]
    _official_like(tmp_path, monkeypatch, batch=lambda name: make() if name == "test_batch" else None)
    with pytest.raises(ValueError) as err:
        data.load("cifar10", "test")
    assert "test_batch" in str(err.value) and words in str(err.value) and "download CIFAR-10 again" in str(err.value)


def test_a_download_that_gets_no_answer_times_out_with_the_offline_help(tmp_path, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)  # accepts connections, never answers
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{server.getsockname()[1]}/cifar-10-python.tar.gz")
    monkeypatch.setattr(cifar10, "DOWNLOAD_TIMEOUT", 0.3)
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    monkeypatch.delenv(data.ENV_SYNTHETIC, raising=False)
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=r"within 0.3 s: the download timed out.*VIT_TUTORIAL_SYNTHETIC=1"):
            data.load("cifar10", "train", download=True)
    finally:
        server.close()
    assert time.perf_counter() - start < 10
    assert socket.getdefaulttimeout() is None  # put back
