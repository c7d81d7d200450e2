"""GEMM: fastnn.ops.matmul vs np.matmul vs torch.matmul on the cases of fastnn/bench/cases_gemm.py
(square sizes; dense-layer shapes with both backward products)."""

import pytest
from conftest import QUICK, case_params

from fastnn.bench import cases_gemm


@pytest.mark.parametrize(("case", "impl"), case_params(cases_gemm.cases(QUICK)))
def test_gemm(benchmark, case, impl):
    benchmark.group = case.name
    benchmark.extra_info["gflop"] = case.flops * 1e-9
    benchmark(case.impls[impl])
