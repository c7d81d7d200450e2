"""Idle fastnn OpenMP threads must not steal cores from NumPy's OpenBLAS when calls alternate.

test_alternation times 50 fastnn matmuls alone, 50 NumPy matmuls alone, and 50 alternations,
2 threads each. test_wait_policy runs fastnn.bench.threads in a fresh interpreter per
OMP_WAIT_POLICY (libgomp reads it once, at load) and records the slowdowns in extra_info:
PASSIVE (what fastnn sets) should stay near 1.0; ACTIVE shows what spinning threads cost.
"""

import numpy as np
import pytest

import fastnn
from fastnn.bench import threads
from fastnn.bench._harness import pinned_threads

N = 50
THREADS = 2


@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("mode", ["fastnn", "numpy", "alternate"])
def test_alternation(benchmark, size, mode):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    c1, c2 = np.empty_like(a), np.empty_like(a)

    def run():
        for _ in range(N):
            if mode != "numpy":
                fastnn.ops.matmul(a, b, out=c1)
            if mode != "fastnn":
                np.matmul(a, b, out=c2)

    benchmark.group = f"alternation {size}x{size}, {THREADS} threads, {N} iterations"
    with pinned_threads(THREADS):
        benchmark(run)


@pytest.mark.parametrize("policy", threads.POLICIES)
def test_wait_policy(benchmark, policy):
    rows = benchmark.pedantic(
        threads.run_policy, args=(policy, THREADS, (256, 512), N, 3), rounds=1, iterations=1
    )
    benchmark.group = "OMP_WAIT_POLICY subprocesses"
    for row in rows:
        for key in ("slowdown_fastnn", "slowdown_numpy", "slowdown_pair"):
            benchmark.extra_info[f"{row['size']}:{key}"] = round(row[key], 3)
