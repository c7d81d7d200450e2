"""conv2d vs the best NumPy (im2col + matmul, col2im) and PyTorch: pytest-benchmark over the
conv/conv2d cases of fastnn/bench/cases_conv.py (forward + backward to input, weights, bias)
and the conv/cnn training epoch.

    pytest bench/bench_conv2d.py            # FASTNN_BENCH_THREADS=N to pin every library
    python -m fastnn.bench --only conv      # the same cases as one table
"""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_conv

CASES = [c for c in cases_conv.cases(QUICK) if c.group in ("conv/conv2d", "conv/cnn")]


@pytest.mark.parametrize(("case", "impl"), case_params(CASES))
def test_conv2d(benchmark, case, impl):
    benchmark.group = case.name
    if case.group == "conv/cnn":  # seconds per call: a few rounds
        benchmark.pedantic(case.impls[impl], rounds=case.min_repeats, warmup_rounds=1)
    else:
        benchmark(case.impls[impl])
