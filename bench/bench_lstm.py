"""LSTM (issue 5): forward + backward through time and inference over whole sequences; fastnn vs
the best NumPy LSTM vs torch.nn.LSTM on the cases of fastnn/bench/cases_lstm.py."""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_lstm


@pytest.mark.parametrize(("case", "impl"), case_params(cases_lstm.cases(QUICK)))
def test_lstm(benchmark, case, impl):
    benchmark.group = case.name
    benchmark.extra_info["gflop"] = case.flops * 1e-9
    benchmark(case.impls[impl])
