"""python -m fastnn.bench: one table of every benchmark case, fastnn vs NumPy vs PyTorch.

    python -m fastnn.bench [--quick] [--threads N[,M]] [--only GROUP[,GROUP]] [--budget S]
                           [--json FILE] [--plot FILE.png]

Case modules are found as fastnn/bench/cases_*.py; one that fails to import or to build its
cases is reported at the end, and the others still run. Exit status: 0, or 1 if any module or
impl failed (2: bad arguments, or --plot without matplotlib).

Related commands: `python -m fastnn.bench.threads` (idle fastnn threads vs NumPy's OpenBLAS
when calls alternate, per OMP_WAIT_POLICY) and `python -m fastnn.bench.peak` (FMA peak).
pytest-benchmark runs of the same cases: `pytest bench/`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback

from fastnn.bench import _harness as h


def discover() -> list[str]:
    """Names of the case modules (cases_<op>), sorted."""
    import fastnn.bench

    return sorted(
        m.name for m in pkgutil.iter_modules(fastnn.bench.__path__) if m.name.startswith("cases_")
    )


def _wanted(group: str, only: list[str] | None) -> bool:
    return not only or any(group == g or group.startswith(g + "/") for g in only)


def collect(quick: bool, only: list[str] | None) -> tuple[list[h.Case], list[str]]:
    """Builds the cases of every module (those named in `only` first: a module cases_<op> is
    skipped when `only` names neither <op> nor a group of its; if no module name matches,
    every module is asked and its cases filtered by group)."""
    problems, found = [], []
    modules = discover()
    ops = {m: m[len("cases_") :] for m in modules}
    if only and any(ops[m] in only for m in modules):
        modules = [
            m for m in modules if any(o == ops[m] or o.startswith(ops[m] + "/") for o in only)
        ]
    for name in modules:
        try:
            mod = importlib.import_module(f"fastnn.bench.{name}")
            built = list(mod.cases(quick))
        except Exception as e:  # noqa: BLE001 (reported; the other modules still run)
            problems.append(f"{name}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}")
            continue
        if only and ops[name] not in only:
            built = [c for c in built if _wanted(c.group, only)]
        found += built
    return found, problems


def plot(results: list[h.Result], peaks: dict | None, isa: str, path: str) -> None:
    """GFLOP/s against size for the square GEMM cases: one line per impl and thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    per_core = h._peak_for(peaks, isa)
    colors = {"fastnn": "tab:red", "numpy": "tab:blue", "torch": "tab:green"}
    counts = sorted({r.threads for r in results})
    sizes = set()
    for n, style in zip(counts, ["-", "--", ":", "-."] * len(counts)):
        rows = [
            r
            for r in results
            if r.threads == n and r.case.group == "gemm" and "size" in r.case.params
        ]
        for impl in h.IMPL_ORDER:
            pts = [(r.case.params["size"], r.gflops(impl)) for r in rows if r.gflops(impl)]
            if pts:
                sizes.update(x for x, _ in pts)
                label = f"{impl}, {n} thread{'s' if n > 1 else ''}"
                ax.plot(*zip(*pts), style, marker="o", color=colors.get(impl), label=label)
        if per_core:
            ax.axhline(per_core * n, color="grey", linestyle=style, linewidth=1)
            ax.annotate(
                f"FMA peak ({isa}) x {n} thread{'s' if n > 1 else ''}",
                (0.01, per_core * n),
                fontsize=8,
                xycoords=("axes fraction", "data"),
                va="bottom",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes), [str(x) for x in sorted(sizes)])
    ax.set_xlabel("square size m = n = k")
    ax.set_ylabel("GFLOP/s (float32)")
    ax.set_title("fastnn GEMM vs NumPy (BLAS) vs PyTorch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_threads(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"--threads takes N or N,M with N >= 1, got {text!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.bench",
        description=__doc__.split("\n")[0],
        epilog="See also: python -m fastnn.bench.threads, python -m fastnn.bench.peak, "
        "pytest bench/",
    )
    p.add_argument("--quick", action="store_true", help="fewer, smaller cases; short budget")
    p.add_argument(
        "--threads",
        type=parse_threads,
        default=[1],
        help="thread counts, e.g. 1 or 1,2 (default 1); every library is pinned to it",
    )
    p.add_argument(
        "--only",
        type=lambda s: [g.strip() for g in s.split(",") if g.strip()],
        help="groups to run, e.g. gemm or gemm,dense",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timing per impl and case (default 1.0, --quick 0.2)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="fewest timed samples per impl (default: each case's own, usually 3)",
    )
    p.add_argument("--no-peak", action="store_true", help="skip the FMA peak measurement")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="PNG of GEMM GFLOP/s against size")
    args = p.parse_args(argv)
    budget = args.budget if args.budget is not None else (0.2 if args.quick else 1.0)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "--plot needs matplotlib, which is not installed: pip install matplotlib "
                "(or pip install 'fastnn[bench]'). Nothing was run.",
                file=sys.stderr,
            )
            return 2

    import fastnn

    cases, problems = collect(args.quick, args.only)
    peaks = None
    if not args.no_peak and any(c.group == "gemm" for c in cases):
        from fastnn.bench.peak import fma_peak

        peaks = fma_peak(0.1 if args.quick else 0.3)
    info = h.header_info(args.threads, peaks)
    print(h.format_header(info), flush=True)
    results = []
    t0 = time.perf_counter()
    for n in args.threads:
        with h.pinned_threads(n):
            for case in cases:
                results.append(h.run_case(case, n, budget, args.repeats))
                if sys.stderr.isatty():
                    print(f"  [{n}T] {case.group}: {case.name}", file=sys.stderr, flush=True)
    print(h.format_table(results, peaks, fastnn.get_isa()))
    print(f"({len(results)} rows in {time.perf_counter() - t0:.1f} s)")
    late = h.load_warning(info["usable_cpus"], where="above")
    if late:
        print(late)
    problems += h.errors_report(results)
    if problems:
        print("\nProblems (the rest of the table is valid):", file=sys.stderr)
        for msg in problems:
            print("  " + msg.rstrip().replace("\n", "\n    "), file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"header": info, "results": [r.to_dict() for r in results], "problems": problems},
                f,
                indent=1,
            )
    if args.plot:
        plot(results, peaks, fastnn.get_isa(), args.plot)
        print(f"plot written to {args.plot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
