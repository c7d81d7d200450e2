"""Do idle fastnn OpenMP threads steal the cores NumPy's OpenBLAS needs when calls alternate?

    python -m fastnn.bench.threads [--threads 2] [--sizes 256,512] [--n 50] [--repeats 5]

For each size, on `threads` threads each: n fastnn matmuls alone, n NumPy matmuls alone, then
n alternations (fastnn, NumPy, fastnn, ...), each call timed on its own. slowdown = time per
call while alternating / time per call alone, per library: 1.0 means no interference.

libgomp reads OMP_WAIT_POLICY once, when it loads, so each scenario runs in a fresh subprocess:
PASSIVE is what fastnn sets before loading libgomp (fastnn/_config.py: threads that finish a
region sleep at once); ACTIVE makes them spin between regions, as the cost they would impose.
TORCH-FIRST imports torch before fastnn with the variable unset: torch's bundled libgomp has
the soname libgomp.so.1, so the loader hands fastnn that copy, already initialised with
libgomp's default policy (spin a while, then sleep), and fastnn's PASSIVE comes too late.
The reverse order makes torch share fastnn's PASSIVE libgomp instead. Each row records the
libgomp the child actually loaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

POLICIES = ("PASSIVE", "ACTIVE", "TORCH-FIRST")


def measure(threads: int = 2, sizes=(256, 512), n: int = 50, repeats: int = 5) -> list[dict]:
    """Per size: median over repeats of per-call ms alone and while alternating."""
    import fastnn
    from fastnn.bench._harness import pinned_threads

    out = []
    with pinned_threads(threads, with_torch=False):
        for size in sizes:
            rng = np.random.default_rng(0)
            a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
            c1, c2 = np.empty_like(a), np.empty_like(a)

            def fnn(a=a, b=b, c=c1):
                fastnn.ops.matmul(a, b, out=c)

            def npy(a=a, b=b, c=c2):
                np.matmul(a, b, out=c)

            runs = {"fastnn": [], "numpy": [], "alt_fastnn": [], "alt_numpy": []}
            for _ in range(repeats):
                for name, fn in (("fastnn", fnn), ("numpy", npy)):
                    t0 = time.perf_counter()
                    for _ in range(n):
                        fn()
                    runs[name].append((time.perf_counter() - t0) / n)
                tf = tn = 0.0
                for _ in range(n):
                    t0 = time.perf_counter()
                    fnn()
                    t1 = time.perf_counter()
                    npy()
                    t2 = time.perf_counter()
                    tf, tn = tf + t1 - t0, tn + t2 - t1
                runs["alt_fastnn"].append(tf / n)
                runs["alt_numpy"].append(tn / n)
            row = {"size": size, "threads": threads}
            row.update({k: 1e3 * statistics.median(v) for k, v in runs.items()})
            row["slowdown_fastnn"] = row["alt_fastnn"] / row["fastnn"]
            row["slowdown_numpy"] = row["alt_numpy"] / row["numpy"]
            row["slowdown_pair"] = (row["alt_fastnn"] + row["alt_numpy"]) / (
                row["fastnn"] + row["numpy"]
            )
            out.append(row)
    return out


def run_policy(policy: str, threads: int, sizes, n: int, repeats: int) -> list[dict]:
    """measure() in a fresh interpreter (the same fastnn) under one scenario: PASSIVE or
    ACTIVE set in OMP_WAIT_POLICY, or TORCH-FIRST: the variable unset and torch imported
    before fastnn, so fastnn shares torch's libgomp, loaded with libgomp's default policy."""
    import fastnn

    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    args = ["--child", "--threads", str(threads), "--sizes", ",".join(map(str, sizes))]
    args += ["--n", str(n), "--repeats", str(repeats)]
    if policy == "TORCH-FIRST":
        env.pop("OMP_WAIT_POLICY", None)
        code = "import sys, torch; from fastnn.bench.threads import main; sys.exit(main())"
        cmd = [sys.executable, "-c", code, *args]
    else:
        env["OMP_WAIT_POLICY"] = policy
        cmd = [sys.executable, "-m", "fastnn.bench.threads", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{policy} child failed:\n{proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout)
    for row in rows:
        row["policy"] = policy
    return rows


def format_rows(rows: list[dict]) -> str:
    cols = (
        "policy",
        "threads",
        "size",
        "fastnn",
        "numpy",
        "alt_fastnn",
        "alt_numpy",
        "slowdown_fastnn",
        "slowdown_numpy",
        "slowdown_pair",
    )
    head = (
        "OMP_WAIT_POLICY",
        "thr",
        "size",
        "fastnn ms",
        "numpy ms",
        "alt: fastnn ms",
        "alt: numpy ms",
        "slowdown fastnn",
        "slowdown numpy",
        "slowdown pair",
    )
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(hd), *(len(x[i]) for x in cells)) for i, hd in enumerate(head)]
    lines = ["  ".join(x.rjust(w) for x, w in zip(head, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in cells]
    lines.append(
        "ms: per call, median of repeats; 'alt:' while alternating fastnn and NumPy; "
        "slowdown: alternating / alone (1.0 = no interference)."
    )
    for policy in dict.fromkeys(r["policy"] for r in rows):
        gomp = next(r.get("libgomp", "?") for r in rows if r["policy"] == policy)
        lines.append(f"{policy}: libgomp loaded: {gomp}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastnn.bench.threads", description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--n", type=int, default=50, help="alternations per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--policies", default=",".join(POLICIES), help="scenarios, default: %(default)s")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        rows = measure(args.threads, sizes, args.n, args.repeats)
        with open("/proc/self/maps") as f:
            gomp = sorted({ln.split()[-1] for ln in f if "libgomp" in ln and "/" in ln})
        for row in rows:
            row["libgomp"] = ", ".join(gomp)
        print(json.dumps(rows))
        return 0
    from fastnn._config import usable_cpus
    from fastnn.bench._harness import load_warning

    warn = load_warning(usable_cpus())
    if warn:
        print(warn)
    rows = []
    for policy in args.policies.split(","):
        if policy.strip().upper() == "TORCH-FIRST" and importlib.util.find_spec("torch") is None:
            continue
        rows += run_policy(policy.strip().upper(), args.threads, sizes, args.n, args.repeats)
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
