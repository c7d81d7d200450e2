"""Smoke test of the benchmarks: every case of `python -m fastnn.bench --quick` runs once, so
none rots. Timings are not checked (a shared machine makes them noise), only that each impl
runs, the table and JSON come out, and failures are reported rather than fatal."""

import json
import sys
import time

import pytest

from fastnn.bench import __main__ as bench_main
from fastnn.bench import _harness as h
from fastnn.bench import threads
from fastnn.bench.peak import fma_peak


def test_quick_run_every_case(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench_main.main(
        ["--quick", "--budget", "0", "--repeats", "1", "--no-peak", "--json", str(out)]
    )
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["problems"] == [] and rc == 0, report["problems"]
    groups = {r["group"] for r in report["results"]}
    assert {"gemm", "dense"} <= groups
    for r in report["results"]:
        assert "numpy" in r["impls"], r["name"]
        for impl, t in r["impls"].items():
            assert t["error"] is None, (r["name"], impl, t["error"])
            if r["kind"] == "time":
                assert t["median_s"] > 0
    assert "x numpy" in text and "square 64" in text and "CPU" in text


def test_only_and_threads_options(capsys):
    assert (
        bench_main.main(
            [
                "--quick",
                "--budget",
                "0",
                "--repeats",
                "1",
                "--only",
                "gemm",
                "--threads",
                "1,2",
                "--no-peak",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "== 1 thread ==" in text and "== 2 threads ==" in text and "epoch" not in text


def test_broken_case_module_is_reported_not_fatal(monkeypatch):
    monkeypatch.setattr(bench_main, "discover", lambda: ["cases_gemm", "cases_no_such_op"])
    cases, problems = bench_main.collect(quick=True, only=None)
    assert any(c.group == "gemm" for c in cases)
    assert len(problems) == 1 and "cases_no_such_op" in problems[0]


def test_failing_impl_is_reported_in_table():
    def boom():
        raise RuntimeError("kaput")

    case = h.Case("demo", "square 2", 16.0, {"fastnn": boom, "numpy": lambda: None})
    result = h.run_case(case, threads=1, budget_s=0.0, min_repeats=1)
    assert "kaput" in result.timings["fastnn"].error
    assert "error" in h.format_table([result], None, "avx2")
    assert "kaput" in h.errors_report([result])[0]


def test_bad_threads_argument():
    with pytest.raises(SystemExit):
        bench_main.main(["--threads", "0"])


def test_time_impl_groups_fast_calls():
    t = h.time_impl(lambda: None, budget_s=0.0, min_repeats=2)
    assert t.inner > 1 and t.samples == 2 and 0 < t.min_s <= t.median_s


def test_impls_take_turns():
    """Impls are timed in alternating slices, so a burst of outside load hits them alike."""
    order = []

    def slow(name):
        def fn():
            order.append(name)
            time.sleep(0.002)
        return fn

    t = h.time_impls({"fastnn": slow("a"), "numpy": slow("b")}, budget_s=0.05, min_repeats=1)
    switches = sum(x != y for x, y in zip(order, order[1:]))
    assert switches >= 2 * h.ROUNDS - 1  # a..b..a..b.. (warm-ups first, then the rounds)
    assert t["fastnn"].samples >= h.ROUNDS and t["numpy"].samples >= h.ROUNDS


def test_fma_peak():
    peaks = fma_peak(0.01)
    if "error" in peaks:
        pytest.skip(peaks["error"])
    assert all(v > 1.0 for v in peaks.values()), peaks


def test_plot(tmp_path, monkeypatch, capsys):
    path = tmp_path / "gemm.png"
    argv = ["--quick", "--budget", "0", "--repeats", "1", "--only", "gemm", "--plot", str(path)]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert bench_main.main(argv) == 2
        assert "needs matplotlib" in capsys.readouterr().err
        return
    assert bench_main.main(argv) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert bench_main.main(argv) == 2
    assert "needs matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize("policy", ["ACTIVE", "TORCH-FIRST"])
def test_alternation_runs(policy):
    if policy == "TORCH-FIRST":
        pytest.importorskip("torch")
    rows = threads.measure(threads=2, sizes=(32,), n=2, repeats=1)
    assert rows[0]["slowdown_pair"] > 0
    rows = threads.run_policy(policy, threads=2, sizes=(32,), n=2, repeats=1)
    assert rows[0]["policy"] == policy and rows[0]["fastnn"] > 0
    assert "libgomp" in rows[0]["libgomp"]
    assert "slowdown" in threads.format_rows(rows)
