"""`python -m fastnn info`: what a bug report needs."""

from __future__ import annotations

import argparse
import os
import platform
import sys


def _loaded_openmp_runtimes() -> list[str]:
    """Paths of the OpenMP runtimes mapped into this process (Linux: /proc/self/maps)."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if name.startswith(("libgomp", "libomp", "libiomp")) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def _numpy_blas() -> str:
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except (TypeError, KeyError, AttributeError):  # older NumPy: no dict mode
        return "unknown"


def info_lines() -> list[str]:
    import numpy as np

    import fastnn
    from fastnn import _config, _kernels

    omp, omp_version, forked = _kernels.openmp_info()
    blocking = _kernels.gemm_blocking()
    runtimes = _loaded_openmp_runtimes()
    lines = [
        f"fastnn:           {fastnn.__version__} ({os.path.dirname(fastnn.__file__)})",
        f"python:           {sys.version.split()[0]} ({platform.platform()})",
        f"cpu:              {_config.cpu_model()}; usable CPUs {_config.usable_cpus()}",
        f"isa:              {fastnn.get_isa()}: {_config.isa_reason()}",
        f"isa available:    {', '.join(_config.available_isas())}",
        (
            f"gemm blocking:    mr={blocking['mr']} nr={blocking['nr']} mc={blocking['mc']} "
            f"kc={blocking['kc']} nc={blocking['nc']}"
        ),
        f"threads:          {fastnn.get_num_threads()} (from {_config.threads_source()})"
        + (" [forked child: kernels run on 1 thread]" if forked else ""),
        "openmp:           "
        + (f"yes, _OPENMP={omp_version}" if omp else "no (built with FASTNN_NO_OPENMP)")
        + f", wait policy {_config.WAIT_POLICY} when fastnn loaded it",
        f"openmp runtime:   {', '.join(runtimes) if runtimes else 'none loaded'}",
        f"numpy:            {np.__version__}, BLAS: {_numpy_blas()}",
    ]
    if len(runtimes) > 1:
        lines.append(
            "note:             several OpenMP runtimes are loaded; if fastnn shares one that "
            "another library loaded first, its wait policy (not PASSIVE) applies"
        )
    try:
        import threadpoolctl

        for lib in threadpoolctl.threadpool_info():
            lines.append(
                f"threadpool:       {lib['internal_api']:9s} {lib.get('num_threads')} threads "
                f"({os.path.basename(lib['filepath'])})"
            )
    except ImportError:
        lines.append("threadpool:       (install threadpoolctl to list thread pools)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastnn")
    parser.add_argument("command", choices=["info"], help="info: versions, ISA, threads, BLAS")
    parser.parse_args(argv)
    print("\n".join(info_lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
