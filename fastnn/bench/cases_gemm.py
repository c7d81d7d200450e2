"""GEMM cases: fastnn.ops.matmul vs np.matmul(out=) vs torch.matmul(out=), float32.

Square sizes, and the dense-layer shapes of an MLP at batch 128 with both backward products:
forward Y = X @ W, dW = Xᵀ @ dY (X.T passed as a view), dX = dY @ Wᵀ (W.T passed as a view).
Every impl writes into a preallocated output; inputs are built once.
"""

from __future__ import annotations

import numpy as np

import fastnn
from fastnn.bench._harness import Case, _maybe_torch

SQUARE = (32, 64, 128, 256, 512, 1024, 2048, 4096)
SQUARE_QUICK = (64, 256)
# (batch, input_size, units) of the dense layers benchmarked (MNIST MLP at batch 128)
DENSE = ((128, 784, 512), (128, 512, 10))


def _case(name: str, a: np.ndarray, b: np.ndarray, params: dict) -> Case:
    """One case computing a @ b (a and b may be transposed views) into a fresh C array."""
    m, k = a.shape
    n = b.shape[1]
    c_fnn = np.empty((m, n), np.float32)
    c_np = np.empty((m, n), np.float32)
    impls = {
        "fastnn": lambda: fastnn.ops.matmul(a, b, out=c_fnn),
        "numpy": lambda: np.matmul(a, b, out=c_np),
    }
    torch = _maybe_torch()
    if torch is not None:
        ta, tb = torch.from_numpy(_base(a)), torch.from_numpy(_base(b))
        ta = ta.T if a.flags.f_contiguous and not a.flags.c_contiguous else ta
        tb = tb.T if b.flags.f_contiguous and not b.flags.c_contiguous else tb
        tc = torch.empty((m, n), dtype=torch.float32)
        impls["torch"] = lambda: torch.matmul(ta, tb, out=tc)
    return Case("gemm", name, 2.0 * m * n * k, impls, params={**params, "m": m, "n": n, "k": k})


def _base(x: np.ndarray) -> np.ndarray:
    """The C-ordered array x is a view of (x itself, or x.T for a transposed view)."""
    return x if x.flags.c_contiguous else x.T


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    out = []
    for size in SQUARE_QUICK if quick else SQUARE:
        a, b = rand(size, size), rand(size, size)
        out.append(_case(f"square {size}", a, b, {"size": size}))
    for batch, fan_in, units in DENSE[1:] if quick else DENSE:
        x, w, dy = rand(batch, fan_in), rand(fan_in, units), rand(batch, units)
        out.append(_case(f"dense fwd X@W {batch}x{fan_in}@{fan_in}x{units}", x, w, {}))
        out.append(_case(f"dense dW X.T@dY {fan_in}x{batch}@{batch}x{units}", x.T, dy, {}))
        out.append(_case(f"dense dX dY@W.T {batch}x{units}@{units}x{fan_in}", dy, w.T, {}))
    return out
