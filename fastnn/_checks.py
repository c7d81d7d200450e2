"""Argument validation shared by the Python API; messages name the owner, expectation, value."""

from __future__ import annotations

import math
import numbers

import numpy as np


def real(owner: str, name: str, value, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a float if it is a finite real number within the given bounds.

    Raises:
        TypeError: not a real number (bools are rejected too).
        ValueError: NaN, infinite or out of bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, received "
                        f"{name}={value!r} of type {type(value).__name__}")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= low is not None and (value <= low if low_open else value < low)
    bad |= high is not None and (value >= high if high_open else value > high)
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}" \
                   f"{')' if high_open or high is None else ']'}"
        raise ValueError(f"{owner}: {name} must be a finite number in {interval}, "
                         f"received {name}={value!r}")
    return value


def integer(owner: str, name: str, value, low: int | None = None) -> int:
    """`value` as an int if it is an integral number (not a bool) >= low.

    Raises:
        TypeError: not an integer.
        ValueError: below `low`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, received {name}={value!r} "
                        f"of type {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, received {name}={value!r}")
    return int(value)


def one_of(owner: str, name: str, value, choices) -> str:
    """`value` if it is one of `choices`, else ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {list(choices)}, "
                         f"received {name}={value!r}")
    return value


def c_array(x, dtype=np.float32) -> np.ndarray:
    """x as a C-contiguous, aligned ndarray of `dtype`, copied only when it is not one already.

    The edge conversion before the C kernels: `np.ascontiguousarray` alone returns a C-ordered
    view at an odd byte offset (e.g. float32 data inside a byte buffer) as it is, and the
    kernels must not dereference such pointers (undefined behaviour in C).
    """
    return np.require(x, dtype=dtype, requirements=("C", "A", "E"))
