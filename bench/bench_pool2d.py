"""Max pooling 2x2 forward + backward vs the best NumPy (window reshape, max, mask) and
PyTorch: pytest-benchmark over the conv/pool2d cases of fastnn/bench/cases_conv.py.

    pytest bench/bench_pool2d.py            # FASTNN_BENCH_THREADS=N to pin every library
    python -m fastnn.bench --only conv/pool2d
"""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_conv

CASES = [c for c in cases_conv.cases(QUICK) if c.group == "conv/pool2d"]


@pytest.mark.parametrize(("case", "impl"), case_params(CASES))
def test_pool2d(benchmark, case, impl):
    benchmark.group = case.name
    benchmark(case.impls[impl])
