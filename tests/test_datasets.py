"""Datasets: the shipped digits with their fixed split, and IDX/MNIST files written here."""

import gzip
import hashlib

import numpy as np
import pytest

from fastnn.datasets import digits, idx, mnist
from fastnn.errors import DataFileError


def test_digits_fixed_split():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1437, 8, 8) and y_train.shape == (1437,)
    assert x_test.shape == (360, 8, 8) and y_test.shape == (360,)
    assert x_train.dtype == np.uint8 and x_train.max() == 16 and set(y_train) == set(range(10))
    # The held-out 20% is fixed: these values pin it across releases and NumPy versions.
    assert np.bincount(y_test).tolist() == [43, 31, 37, 33, 38, 27, 44, 35, 38, 34]
    digest = hashlib.sha256(x_test.tobytes() + y_test.tobytes()).hexdigest()
    assert digest.startswith("6b8f36cb9a988054")
    train_rows = {r.tobytes() for r in np.concatenate([x_train.reshape(-1, 64),
                                                       y_train[:, None]], 1)}
    assert len(train_rows) + len(y_test) >= 1790  # disjoint up to duplicate images


def test_digits_other_splits():
    (x_train, _), (x_test, _) = digits.load_data(test_split=0.5, seed=1)
    assert len(x_train) == 898 and len(x_test) == 899
    assert not np.array_equal(digits.load_data(seed=1)[1][0], digits.load_data()[1][0])
    with pytest.raises(ValueError, match=r"test_split must be a finite number in \[0, 1\)"):
        digits.load_data(test_split=1.0)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        digits.load_data(seed=-1)


def _idx_bytes(array, code):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    return header + big_endian.tobytes()


CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
         np.float64: 0x0E}


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip(tmp_path, rng, dtype, compress):
    array = (rng.standard_normal((3, 4, 2)) * 50).astype(dtype)
    data = _idx_bytes(array, CODES[dtype])
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    loaded = idx.load_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


GOOD = _idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)


@pytest.mark.parametrize("content,match", [
    (b"\x00\x00", "truncated IDX file: expected 4 bytes of header, found 2"),
    (b"PK\x03\x04" + GOOD[4:], "not an IDX file: expected 00 00"),
    (b"\x00\x00\x07\x01" + GOOD[4:], "not an IDX file"),
    (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    (GOOD[:6], "expected 8 bytes of dimensions"),
    (GOOD[:-1], r"header declares shape \(3, 4\) \(12 bytes of data\), found 11 bytes"),
    (GOOD + b"\x00", "trailing bytes"),
    (gzip.compress(GOOD)[:-6], "damaged or truncated gzip data"),
    (gzip.compress(GOOD)[:12] + b"\xff" * 20, "bad.idx: (damaged|not an IDX)"),
])
def test_damaged_idx_files(tmp_path, content, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=match):
        idx.load_idx(path)


def _write_mnist(directory, n_train=5, n_test=3, labels_train=None):
    images = {"train": np.zeros((n_train, 4, 4), np.uint8), "t10k": np.ones((n_test, 4, 4),
                                                                             np.uint8)}
    labels = {"train": labels_train if labels_train is not None else np.arange(n_train) % 10,
              "t10k": np.arange(n_test) % 10}
    for part in ("train", "t10k"):
        (directory / f"{part}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(images[part], 0x08)))
        (directory / f"{part}-labels.idx1-ubyte").write_bytes(
            _idx_bytes(labels[part].astype(np.uint8), 0x08))


def test_mnist_from_local_files(tmp_path):
    _write_mnist(tmp_path)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(tmp_path)
    assert x_train.shape == (5, 4, 4) and y_train.tolist() == [0, 1, 2, 3, 4]
    assert x_test.shape == (3, 4, 4) and x_test.dtype == np.uint8 and len(y_test) == 3


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte"):
        mnist.load_data(tmp_path)
    _write_mnist(tmp_path, labels_train=np.arange(4))
    with pytest.raises(DataFileError, match=r"train images of shape \(5, 4, 4\) do not match "
                                            r"labels of shape \(4,\)"):
        mnist.load_data(tmp_path)
