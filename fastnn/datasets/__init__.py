"""Datasets, as `keras.datasets`: the UCI digits shipped in the package, MNIST-format IDX."""

from fastnn.datasets import digits, idx, mnist

__all__ = ["digits", "idx", "mnist"]
