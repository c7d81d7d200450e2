"""MNIST from local IDX files (fastnn downloads nothing)."""

from __future__ import annotations

import os

import numpy as np

from fastnn.datasets.idx import load_idx
from fastnn.errors import DataFileError

_FILES = {"x_train": "train-images", "y_train": "train-labels",
          "x_test": "t10k-images", "y_test": "t10k-labels"}


def _find(directory: str, stem: str, kind: str) -> str:
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            candidate = os.path.join(directory, f"{stem}{sep}{kind}-ubyte{suffix}")
            if os.path.exists(candidate):
                return candidate
    raise FileNotFoundError(f"mnist.load_data: no {stem}-{kind}-ubyte[.gz] in {directory}")


def load_data(path):
    """Load ((x_train, y_train), (x_test, y_test)) from a directory holding the four
    standard MNIST files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
    t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]).

    Returns:
        uint8 images (samples, rows, cols) and uint8 labels (samples,).

    Raises:
        FileNotFoundError: a file is missing.
        DataFileError: a file is damaged or images and labels do not match.
    """
    directory = os.fspath(path)
    arrays = {}
    for key, stem in _FILES.items():
        kind = "idx3" if key.startswith("x") else "idx1"
        arrays[key] = load_idx(_find(directory, stem, kind))
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataFileError(f"mnist.load_data: {part} images of shape {x.shape} do not "
                                f"match labels of shape {y.shape}")
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x.astype(np.uint8), y.astype(np.uint8)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
