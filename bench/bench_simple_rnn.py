"""SimpleRNN (issue 5): forward + backward through time and inference over whole sequences;
fastnn vs the best NumPy SimpleRNN vs torch.nn.RNN on the cases of
fastnn/bench/cases_simple_rnn.py."""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_simple_rnn


@pytest.mark.parametrize(("case", "impl"), case_params(cases_simple_rnn.cases(QUICK)))
def test_simple_rnn(benchmark, case, impl):
    benchmark.group = case.name
    benchmark.extra_info["gflop"] = case.flops * 1e-9
    benchmark(case.impls[impl])
