"""Utilities, as `keras.utils`: seeding, one-hot labels, the progress bar."""

from __future__ import annotations

import random

import numpy as np

from fastnn import _checks, _random
from fastnn._progbar import Progbar

__all__ = ["Progbar", "set_random_seed", "to_categorical"]


def set_random_seed(seed: int) -> None:
    """Seed everything random in fastnn (initializers, dropout, shuffling), plus Python's
    `random` and NumPy's legacy global RNG for the user's own code, as Keras does.

    Same seed, same script order and same thread count give the same bits.
    """
    seed = _checks.integer("set_random_seed", "seed", seed, low=0)
    _random.set_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """One-hot float32 encoding of integer class labels: shape (..., num_classes).

    A trailing dimension of size 1 is dropped first, as Keras does.

    Raises:
        ValueError: labels that are not non-negative integers below num_classes.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or (x.size and (x.dtype.kind == "f"
                                                 and not np.array_equal(x, np.floor(x)))):
        raise ValueError(f"to_categorical: labels must be integers, received dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    num_classes = _checks.integer("to_categorical", "num_classes", num_classes, low=0)
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in [0, {num_classes}), received "
                         f"labels from {x.min()} to {x.max()}")
    out = np.zeros(x.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out
