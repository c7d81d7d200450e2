"""pytest-benchmark runs of the fastnn.bench cases (run them by naming them: pytest bench/).

Environment:
  FASTNN_BENCH_THREADS   thread count every library is pinned to (default 1)
  FASTNN_BENCH_QUICK=1   the --quick case lists (small shapes; what the smoke test runs)
"""

import os

import pytest

from fastnn.bench._harness import pinned_threads

THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "1"))
QUICK = os.environ.get("FASTNN_BENCH_QUICK", "").lower() in ("1", "true", "yes")


def case_params(cases):
    """pytest params (case, impl) for every timed case and impl, with readable ids."""
    return [
        pytest.param(case, impl, id=f"{case.name}-{impl}".replace(" ", "_"))
        for case in cases
        if case.kind == "time"
        for impl in case.impls
    ]


@pytest.fixture(autouse=True, scope="session")
def pinned():
    """fastnn, NumPy's BLAS and torch all on THREADS threads for the whole session."""
    with pinned_threads(THREADS):
        yield THREADS
