"""Dense networks (issue 3): an MLP epoch through fit, one training step; fastnn vs the best NumPy
trainer vs PyTorch. Cases from fastnn/bench/cases_dense.py (peak memory: python -m fastnn.bench
--only dense)."""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_dense


@pytest.mark.parametrize(("case", "impl"), case_params(cases_dense.cases(QUICK)))
def test_dense(benchmark, case, impl):
    benchmark.group = case.name
    if case.name.startswith("epoch"):  # seconds per call: a few rounds, not pytest-benchmark's
        benchmark.pedantic(case.impls[impl], rounds=case.min_repeats, warmup_rounds=1)
    else:
        benchmark(case.impls[impl])
