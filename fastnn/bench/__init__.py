"""fastnn's benchmarks: `python -m fastnn.bench` prints one table, fastnn vs NumPy vs PyTorch.

Each op contributes a module `cases_<op>.py` defining `cases(quick: bool) -> list[Case]`, with
groups named `<op>` or `<op>/<sub>` (so `--only <op>` finds them). See _harness.py for the
timing method and thread pinning, peak.py for the FMA peak, threads.py for the test that idle
fastnn threads do not slow NumPy's BLAS down.
"""

from fastnn.bench._harness import Case

__all__ = ["Case"]
