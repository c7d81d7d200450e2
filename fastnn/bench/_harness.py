"""Benchmark harness: cases, timing, thread pinning, the header and the table.

A case module `fastnn/bench/cases_<op>.py` defines `cases(quick: bool) -> list[Case]`. Each impl
of a Case is a zero-argument callable doing one full iteration on inputs built beforehand, so a
timing measures only the work. Impl names are "fastnn", "numpy" and, when torch imports, "torch".

Timing (`time_impls`): the impls of a case take turns. Each gets one warm-up call (and calls
shorter than a millisecond are grouped `inner` at a time so each sample is >= 1 ms: timer
resolution and call jitter); then in rounds every impl runs a slice of budget / ROUNDS
seconds of samples (at least one), starting with one unrecorded call that brings its own data
back into cache (skipped for calls of 50 ms or more, where it would not matter); rounds go on
until the impls together have spent their budgets and each has `min_repeats` samples. A noisy
neighbour on a shared machine then slows every impl alike instead of whichever ran at the
time, so the ratios are side-by-side measurements. Reported: median and minimum per call. Ratios are median(other) /
median(fastnn): above 1 means fastnn is faster. `time_impl` times one callable the same way.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

IMPL_ORDER = ("fastnn", "numpy", "torch")
LOAD_PER_CORE_LIMIT = 0.3  # above this 1-minute load per core, timings are noise


@dataclass
class Case:
    """One benchmark: the same job done by each implementation.

    Args:
        group: table group, named after the module (cases_gemm.py -> "gemm").
        name: what the case computes, with its shapes.
        flops: floating-point operations of one iteration (0 if not meaningful).
        impls: impl name -> zero-argument callable doing one iteration. For kind="memory"
            the callable measures once and returns bytes (or None if it cannot).
        kind: "time" (default) or "memory".
        display: "auto" (GFLOP/s when flops > 0, else ms) or "time" (always ms).
        min_repeats: fewest timed samples, whatever the budget (slow cases: fewer).
        params: free metadata, e.g. {"size": 512} for the GFLOP/s-against-size plot.
        note: printed under the table (e.g. why an impl is missing).
    """

    group: str
    name: str
    flops: float
    impls: dict[str, Callable[[], object]]
    kind: str = "time"
    display: str = "auto"
    min_repeats: int = 3
    params: dict = field(default_factory=dict)
    note: str = ""


@dataclass
class Timing:
    median_s: float = math.nan
    min_s: float = math.nan
    samples: int = 0
    inner: int = 0
    value: float | None = None  # kind="memory": bytes
    error: str | None = None


ROUNDS = 5  # turns each impl takes within a case's budget (see the module docstring)
SLOW_CALL_S = 0.05  # calls at least this long get no re-warming call at the start of a slice


def _calibrate(fn: Callable[[], object]) -> tuple[int, float]:
    """(inner, seconds per call) after a warm-up call (first touch, lazy initialisation)."""
    t0 = time.perf_counter()
    fn()
    est = time.perf_counter() - t0
    if est >= 1e-3:
        return 1, est
    for _ in range(3):  # the first call is often slow; estimate from later ones
        t0 = time.perf_counter()
        fn()
        est = min(est, time.perf_counter() - t0)
    return min(10000, max(1, math.ceil(1e-3 / max(est, 1e-7)))), est


def time_impls(fns: dict[str, Callable[[], object]], budget_s: float,
               min_repeats: int) -> dict[str, Timing]:
    """Median and minimum seconds per call of each fn, timed in turns (module docstring).
    An fn that raises gets a Timing with its error; the others go on."""
    timings: dict[str, Timing] = {}
    plan: dict[str, tuple[int, float]] = {}
    for name, fn in fns.items():
        try:
            plan[name] = _calibrate(fn)
        except Exception as e:  # noqa: BLE001 (reported in the table, not fatal)
            timings[name] = _error_timing(e)
    samples: dict[str, list[float]] = {name: [] for name in plan}
    slice_s = budget_s / ROUNDS
    total_s = budget_s * len(plan)  # each impl's budget, as when timed alone
    start_all = time.perf_counter()
    while plan and (time.perf_counter() - start_all < total_s
                    or min(map(len, samples.values())) < max(1, min_repeats)):
        for name in list(plan):
            fn, (inner, est) = fns[name], plan[name]
            try:
                if est < SLOW_CALL_S:
                    fn()  # its own data back into cache after the other impls' turns
                start = time.perf_counter()
                while True:
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        fn()
                    now = time.perf_counter()
                    samples[name].append((now - t0) / inner)
                    if now - start >= slice_s or len(samples[name]) >= 10000:
                        break
            except Exception as e:  # noqa: BLE001
                timings[name] = _error_timing(e)
                del plan[name], samples[name]
    for name, got in samples.items():
        timings[name] = Timing(statistics.median(got), min(got), len(got), plan[name][0])
    return {name: timings[name] for name in fns}


def time_impl(fn: Callable[[], object], budget_s: float, min_repeats: int) -> Timing:
    """Median and minimum seconds per call of fn alone (see the module docstring)."""
    timing = time_impls({"fn": fn}, budget_s, min_repeats)["fn"]
    if timing.error is not None:
        raise RuntimeError(timing.error)
    return timing


def _error_timing(e: Exception) -> Timing:
    return Timing(error=f"{type(e).__name__}: {e}\n" + traceback.format_exc(limit=-3))


# ------------------------------------------------------------------------------------------
# Threads


_interop_set = False


@contextmanager
def pinned_threads(n: int, with_torch: bool = True):
    """Runs the body with fastnn, NumPy's BLAS and torch all limited to n threads.

    threadpoolctl limits every native pool it finds (OpenBLAS/MKL, OpenMP runtimes, and fastnn
    through the controller fastnn registers); fastnn and torch are also set through their own
    calls. torch's inter-op pool can be sized only once per process: the first n wins.
    with_torch=False leaves torch alone (and unimported, if it was not).
    """
    import fastnn

    global _interop_set
    before = fastnn.get_num_threads()
    torch = _maybe_torch() if with_torch else None
    torch_before = torch.get_num_threads() if torch else None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if torch is not None and not _interop_set:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # inter-op work already ran in this process
            pass
        _interop_set = True
    limits = threadpool_limits(limits=n) if threadpool_limits else _null()
    with limits:
        fastnn.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            fastnn.set_num_threads(before)
            if torch is not None:
                torch.set_num_threads(torch_before)


@contextmanager
def _null():
    yield


def _maybe_torch():
    """torch if it is installed (imported once), else None."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    try:
        import torch
    except Exception:  # noqa: BLE001 (ImportError, or a broken install raising anything)
        return None
    return torch


# ------------------------------------------------------------------------------------------
# Header


def cpu_model() -> str:
    from fastnn._config import cpu_model as model

    return model()


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl missing)"
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            arch = lib.get("architecture")
            return (
                f"{lib.get('internal_api')} {lib.get('version')}"
                + (f" ({arch})" if arch else "")
                + f", {lib.get('threading_layer', '?')} threads"
            )
    return "none found by threadpoolctl"


def load_warning(ncpu: int, where: str = "below") -> str | None:
    """A loud warning when other work is running, else None."""
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    if load1 / max(1, ncpu) > LOAD_PER_CORE_LIMIT:
        return (
            f"WARNING: 1-minute load {load1:.2f} on {ncpu} cores "
            f"({load1 / ncpu:.2f} per core > {LOAD_PER_CORE_LIMIT}): other processes are "
            f"running; the timings {where} are noise, not measurements."
        )
    return None


def header_info(threads: list[int], peaks: dict | None) -> dict:
    import numpy as np

    import fastnn
    from fastnn import _config

    ncpu = _config.usable_cpus()
    torch = _maybe_torch()
    info = {
        "cpu": cpu_model(),
        "usable_cpus": ncpu,
        "fastnn": fastnn.__version__,
        "isa": fastnn.get_isa(),
        "isa_reason": _config.isa_reason(),
        "threads": threads,
        "numpy": np.__version__,
        "blas": blas_description(),
        "torch": torch.__version__ if torch else None,
        "omp_wait_policy": _config.WAIT_POLICY,
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "fma_peak_gflops_per_core": peaks,
        "load_warning": load_warning(ncpu),
    }
    return info


def format_header(info: dict) -> str:
    peaks = info["fma_peak_gflops_per_core"]
    if peaks is None:
        peak_line = "not measured"
    elif "error" in peaks:
        peak_line = f"unavailable ({peaks['error']})"
    else:
        peak_line = ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) + " GFLOP/s per core"
    load = info["loadavg"]
    lines = [
        f"CPU        {info['cpu']} ({info['usable_cpus']} usable CPUs)",
        f"fastnn     {info['fastnn']}, ISA {info['isa']} ({info['isa_reason']})",
        (
            f"threads    {', '.join(map(str, info['threads']))} (fastnn, BLAS and torch pinned"
            f" alike; OMP_WAIT_POLICY={info['omp_wait_policy']})"
        ),
        f"NumPy      {info['numpy']}, BLAS {info['blas']}",
        f"torch      {info['torch'] or 'not installed'}",
        f"FMA peak   {peak_line}",
        "load       " + (" ".join(f"{x:.2f}" for x in load) if load else "unknown"),
    ]
    if info["load_warning"]:
        bar = "!" * 100
        lines += [bar, info["load_warning"], bar]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Running


@dataclass
class Result:
    case: Case
    threads: int
    timings: dict[str, Timing]

    def seconds(self, impl: str) -> float | None:
        t = self.timings.get(impl)
        if t is None or t.error is not None:
            return None
        return t.value if self.case.kind == "memory" else t.median_s

    def ratio(self, other: str) -> float | None:
        """other / fastnn (time or memory): above 1 means fastnn is better."""
        a, b = self.seconds("fastnn"), self.seconds(other)
        if not a or not b:
            return None
        return b / a

    def gflops(self, impl: str) -> float | None:
        s = self.seconds(impl)
        if self.case.kind != "time" or not self.case.flops or not s:
            return None
        return self.case.flops / s * 1e-9

    def to_dict(self) -> dict:
        return {
            "threads": self.threads,
            "group": self.case.group,
            "name": self.case.name,
            "kind": self.case.kind,
            "flops": self.case.flops,
            "params": self.case.params,
            "impls": {k: {**vars(t), "gflops": self.gflops(k)} for k, t in self.timings.items()},
            "ratio_vs_numpy": self.ratio("numpy"),
            "ratio_vs_torch": self.ratio("torch"),
        }


def run_case(case: Case, threads: int, budget_s: float, min_repeats: int | None) -> Result:
    """Times (or measures) every impl of case; an impl that raises is recorded, not fatal."""
    names = [k for k in IMPL_ORDER if k in case.impls] + [
        k for k in case.impls if k not in IMPL_ORDER
    ]
    if case.kind != "memory":
        reps = case.min_repeats if min_repeats is None else min_repeats
        return Result(case, threads,
                      time_impls({k: case.impls[k] for k in names}, budget_s, reps))
    timings = {}
    for name in names:
        try:
            timings[name] = Timing(value=case.impls[name](), samples=1, inner=1)
        except Exception as e:  # noqa: BLE001 (reported in the table, not fatal)
            timings[name] = _error_timing(e)
    return Result(case, threads, timings)


# ------------------------------------------------------------------------------------------
# Table


def _cell(result: Result, impl: str) -> str:
    t = result.timings.get(impl)
    if t is None:
        return "-"
    if t.error is not None:
        return "error"
    if result.case.kind == "memory":
        return "n/a" if t.value is None else f"{t.value / 2**20:.1f}"
    g = result.gflops(impl)
    if g is not None and result.case.display == "auto":
        return f"{g:.1f}"
    return f"{t.median_s * 1e3:.3g}" if t.median_s < 1 else f"{t.median_s * 1e3:.0f}"


def _unit(result: Result) -> str:
    if result.case.kind == "memory":
        return "MiB"
    if result.case.flops and result.case.display == "auto":
        return "GFLOP/s"
    return "ms"


def format_table(results: list[Result], peaks: dict | None, isa: str) -> str:
    """One block per thread count: impl columns, ratios, and % of FMA peak for GEMM rows."""
    present = {k for r in results for k in r.timings}
    impls = [k for k in IMPL_ORDER if k in present] + sorted(present - set(IMPL_ORDER))
    per_core = _peak_for(peaks, isa)
    cols = ["group", "case", "unit"] + impls + ["x numpy", "x torch"]
    if per_core:
        cols += ["fastnn %pk", "numpy %pk"]
    rows = []
    for r in results:
        row = [r.case.group, r.case.name, _unit(r)] + [_cell(r, k) for k in impls]
        row += [_fmt_ratio(r.ratio("numpy")), _fmt_ratio(r.ratio("torch"))]
        if per_core:
            peak = per_core * r.threads
            for k in ("fastnn", "numpy"):
                g = r.gflops(k) if r.case.group == "gemm" else None
                row.append(f"{100 * g / peak:.0f}%" if g else "")
        rows.append(row)
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def line(cells):
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            out.append(c.ljust(w) if i < 3 else c.rjust(w))
        return "  ".join(out).rstrip()

    blocks = []
    for n in sorted({r.threads for r in results}):
        sub = [row for row, r in zip(rows, results) if r.threads == n]
        blocks.append(f"\n== {n} thread{'s' if n > 1 else ''} ==")
        blocks.append(line(cols))
        blocks.append(line(["-" * w for w in widths]))
        blocks += [line(row) for row in sub]
    legend = (
        "x numpy / x torch: their median time (or MiB) divided by fastnn's; above 1 = fastnn "
        "better."
    )
    if per_core:
        legend += f"\n%pk: share of the FMA peak ({per_core:.1f} GFLOP/s per core x threads)."
    notes = sorted({f"{r.case.group}: {r.case.note}" for r in results if r.case.note})
    if notes:
        legend += "\n" + "\n".join("note: " + n for n in notes)
    return "\n".join(blocks) + "\n\n" + legend


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def _peak_for(peaks: dict | None, isa: str) -> float | None:
    if not peaks or "error" in peaks:
        return None
    return peaks.get(isa) or peaks.get("avx2")


def errors_report(results: list[Result]) -> list[str]:
    out = []
    for r in results:
        for name, t in r.timings.items():
            if t.error:
                out.append(f"[{r.threads}T] {r.case.group} / {r.case.name} / {name}: {t.error}")
    return out
