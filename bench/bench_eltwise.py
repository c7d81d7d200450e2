"""Element-wise kernels vs NumPy (and torch): pytest-benchmark over fastnn/bench/cases_eltwise.

    pytest bench/bench_eltwise.py [--benchmark-only]        # every case and impl, 1 thread
    python bench/bench_eltwise.py --threshold [--threads 2]  # thread break-even sizes

--threshold measures what the OpenMP thresholds in csrc/eltwise.c, optim.c and dropout.c are
set from: for each kernel, the time per element on one thread (t1 / n) and the cost of going
parallel, overhead = t_T(n) - t1(n) / T at a size where the kernel already uses T threads.
Threads pay from n* = overhead / ((1 - 1/T) * t1 / n) elements; the constants are about n*/T
per thread, rounded to a power of two.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import pytest

try:
    from fastnn.bench._harness import pinned_threads
    from fastnn.bench.cases_eltwise import cases
except ImportError:  # the harness is not installed: pytest skips, the script explains
    cases = pinned_threads = None

CASES = cases(quick=False) if cases is not None else []
PARAMS = [pytest.param(c, impl, id=f"{c.group}:{c.name}:{impl}") for c in CASES for impl in c.impls]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    if pinned_threads is None:
        pytest.skip("fastnn.bench harness not available")
    with pinned_threads(1):
        yield


@pytest.mark.parametrize("case,impl", PARAMS)
def test_eltwise(benchmark, case, impl):
    benchmark.group = f"{case.group}: {case.name}"
    benchmark(case.impls[impl])


# --- thread break-even ------------------------------------------------------------------------


def _kernels(n: int):
    """name -> zero-argument call doing one pass of n elements."""
    from fastnn import _kernels as K

    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    y, g = np.empty_like(x), rng.standard_normal(n).astype(np.float32)
    m, v, mask = np.zeros_like(x), np.zeros_like(x), np.empty(n, np.uint8)
    rows = x.reshape(-1, 10) if n % 10 == 0 else x[: n // 10 * 10].reshape(-1, 10)
    labels = rng.integers(0, 10, rows.shape[0]).astype(np.int64)
    grad = np.empty_like(rows)
    return {
        "relu fwd": lambda: K.act_fwd(x, y, act=1),
        "sigmoid fwd": lambda: K.act_fwd(x, y, act=2),
        "gelu fwd": lambda: K.act_fwd(x, y, act=4),
        "bias_grad (rows of 512)": lambda: K.bias_grad(x[: n // 512 * 512].reshape(-1, 512)),
        "softmax_xent (rows of 10)": lambda: K.softmax_xent(rows, labels, grad),
        "adam": lambda: K.adam_update(
            y, g, m, v, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1
        ),
        "sgd (no momentum)": lambda: K.sgd_update(y, g, lr=1e-3),
        "dropout fwd": lambda: K.dropout_fwd(x, mask, y, rate=0.5, seed=1),
    }


def _median_time(fn, reps: int = 31) -> float:
    fn()
    inner = max(1, int(2e-3 / max(_once(fn), 1e-7)))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def threshold(threads: int, n: int) -> None:
    import fastnn

    print(f"thread break-even, T = {threads}, measured at n = {n:,} (ISA {fastnn.get_isa()})")
    print(f"{'kernel':28s} {'ns/elem (1T)':>12s} {'overhead us':>12s} {'n* (elements)':>14s}")
    calls = _kernels(n)
    before = fastnn.get_num_threads()
    try:
        for name, fn in calls.items():
            fastnn.set_num_threads(1)
            t1 = _median_time(fn)
            fastnn.set_num_threads(threads)
            tt = _median_time(fn)
            per = t1 / n
            overhead = tt - t1 / threads
            n_star = overhead / ((1 - 1 / threads) * per) if overhead > 0 else 0.0
            print(f"{name:28s} {per * 1e9:12.3f} {overhead * 1e6:12.1f} {n_star:14,.0f}")
    finally:
        fastnn.set_num_threads(before)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", action="store_true", help="measure thread break-even sizes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--n",
        type=int,
        default=262_144,
        help="elements: large enough that threads engage, small enough for L2",
    )
    args = ap.parse_args()
    if not args.threshold:
        sys.exit(pytest.main([__file__, "-q"]))
    threshold(args.threads, args.n)
