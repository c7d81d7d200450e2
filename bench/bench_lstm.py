"""The recurrent ops of csrc/rnn_*.c (issue 5): LSTM, GRU and SimpleRNN forward + backward
through time and inference over whole sequences; fastnn vs the best NumPy version vs
torch.nn.LSTM / GRU / RNN on the cases of fastnn/bench/cases_lstm.py, cases_gru.py and
cases_simple_rnn.py."""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_gru, cases_lstm, cases_simple_rnn

CASES = [c for m in (cases_lstm, cases_gru, cases_simple_rnn) for c in m.cases(QUICK)]


@pytest.mark.parametrize(("case", "impl"), case_params(CASES))
def test_lstm(benchmark, case, impl):
    benchmark.group = case.name
    benchmark.extra_info["gflop"] = case.flops * 1e-9
    benchmark(case.impls[impl])
