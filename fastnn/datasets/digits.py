"""The UCI 8x8 handwritten digits, shipped inside fastnn so examples run offline.

Data: the test set of "Optical Recognition of Handwritten Digits" by E. Alpaydin and
C. Kaynak (1998), UCI Machine Learning Repository, doi:10.24432/C50P49, licensed under
CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). 1,797 images of 8x8 pixels with
integer intensities 0..16 and their labels 0..9 (the file scikit-learn ships for
`load_digits`). See fastnn/data/README.md.
"""

from __future__ import annotations

import gzip
import importlib.resources

import numpy as np

from fastnn import _checks

NUM_SAMPLES = 1797


def _read_csv() -> np.ndarray:
    resource = importlib.resources.files("fastnn").joinpath("data/digits.csv.gz")
    with resource.open("rb") as raw, gzip.open(raw, "rt") as text:
        return np.loadtxt(text, delimiter=",", dtype=np.uint8, ndmin=2)


def load_data(test_split: float = 0.2, seed: int = 113):
    """Load the digits as ((x_train, y_train), (x_test, y_test)).

    The split is fixed: samples are ordered by a permutation derived only from `seed`
    (argsort of PCG64's raw output, which NumPy keeps stable across versions), and the last
    `test_split` fraction is held out. With the defaults, 1,437 training and 360 test samples.

    Args:
        test_split: fraction of samples held out, in [0, 1).
        seed: seed of the split's permutation (113, as Keras's datasets).

    Returns:
        x arrays of shape (samples, 8, 8), uint8 in 0..16; y arrays (samples,), uint8 0..9.

    Raises:
        ValueError / TypeError: test_split or seed out of range or of the wrong type.
    """
    test_split = _checks.real("digits.load_data", "test_split", test_split, low=0.0, high=1.0,
                              high_open=True)
    seed = _checks.integer("digits.load_data", "seed", seed, low=0)
    data = _read_csv()
    x, y = data[:, :64].reshape(-1, 8, 8), data[:, 64].copy()
    order = np.argsort(np.random.PCG64(seed).random_raw(len(data)), kind="stable")
    n_train = int(len(data) * (1.0 - test_split))
    train, test = order[:n_train], order[n_train:]
    return (x[train], y[train]), (x[test], y[test])
