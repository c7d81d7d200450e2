"""This machine's single-core FMA peak (float32 GFLOP/s) for AVX2 and AVX-512.

Compiles peak_fma.c (beside this file) with the system C compiler (`$CC`, else cc) into a
temporary directory and runs it on one thread; see the C file for the method. Run alone:
    python -m fastnn.bench.peak
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from functools import cache

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peak_fma.c")


@cache
def fma_peak(seconds: float = 0.3) -> dict:
    """{"avx2": GFLOP/s, "avx512": GFLOP/s} for the ISAs the CPU has, or {"error": why}."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    if not shutil.which(cc[0]):
        return {"error": f"no C compiler ({cc[0]} not found; set CC)"}
    if not os.path.exists(SOURCE):
        return {"error": f"{SOURCE} is missing"}
    with tempfile.TemporaryDirectory(prefix="fastnn-peak-") as tmp:
        exe = os.path.join(tmp, "peak_fma")
        build = subprocess.run(
            cc + ["-O2", SOURCE, "-o", exe], capture_output=True, text=True, check=False
        )
        if build.returncode != 0:
            return {"error": f"{' '.join(cc)} failed: {build.stderr.strip()[:200]}"}
        try:
            run = subprocess.run(
                [exe, str(seconds)], capture_output=True, text=True, check=False, timeout=60
            )
        except subprocess.TimeoutExpired:
            return {"error": "peak_fma timed out"}
    if run.returncode != 0:
        return {"error": f"peak_fma exited {run.returncode}"}
    peaks = {}
    for line in run.stdout.splitlines():
        isa, value = line.split()
        peaks[isa] = float(value)
    return peaks or {"error": "CPU has neither AVX2+FMA nor AVX-512"}


if __name__ == "__main__":
    result = fma_peak(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
    for k, v in result.items():
        print(f"{k:7s} {v:.1f} GFLOP/s per core" if k != "error" else f"error: {v}")
