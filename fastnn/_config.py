"""Process-wide settings of the kernels: thread count and instruction set.

Environment, read once at import:
  OMP_NUM_THREADS   default thread count (else the CPUs this process may use: affinity mask
                    and cgroup CPU quota)
  FASTNN_ISA        ref | avx2 | avx512: the highest instruction set the kernels may use
  FASTNN_FLUSH_DENORMALS  1 (default) | 0: see set_flush_denormals
"""

from __future__ import annotations

import math
import os


def _load_kernels():
    """Imports the extension with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy.

    libgomp reads OMP_WAIT_POLICY once, when it loads with the extension. PASSIVE: threads that
    finish a parallel region sleep at once instead of spinning for ~0.3 ms, since a spinning
    team steals the cores NumPy's OpenBLAS threads need when the two alternate (on 2 cores that
    slowed both 5-80x; `python -m fastnn.bench.threads` measures it). The variable is restored
    afterwards so that OpenMP runtimes loaded later (torch bundles its own) keep their default.
    """
    import importlib

    user_policy = os.environ.get("OMP_WAIT_POLICY")
    if user_policy is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        return importlib.import_module("fastnn._kernels")
    except ModuleNotFoundError as e:
        if e.name != "fastnn._kernels":
            raise
        raise ImportError(_missing_kernels_message()) from e
    finally:
        if user_policy is None:
            del os.environ["OMP_WAIT_POLICY"]


def _missing_kernels_message() -> str:
    """Why fastnn._kernels is missing, and what to do: most often Python found the source
    folder of a checkout (the current directory comes first on sys.path with `python -m`)
    instead of the installed package."""
    package = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(package, os.pardir, "setup.py")):
        return (f"fastnn's compiled kernels (fastnn._kernels) are not in {package}: that is the "
                f"source folder of a fastnn checkout, found before the installed package "
                f"because it is under the current directory. Run from another directory, or "
                f"with `python -I` (which leaves the current directory off sys.path), or build "
                f"the kernels in place: `python setup.py build_ext --inplace`.")
    return (f"fastnn's compiled kernels (fastnn._kernels) are not in {package}: the "
            f"installation is incomplete; reinstall fastnn (`pip install --force-reinstall "
            f"fastnn`, or `pip install .` from a checkout).")


_kernels = _load_kernels()
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")

ISA_NAMES = _kernels.ISA_NAMES
_isa_reason = ""


def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a cgroup quota (v2 cpu.max, v1 cfs_quota_us), or None if unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may actually run on: affinity mask, then cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def _default_threads() -> tuple[int, str]:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
            if n >= 1:
                return n, "OMP_NUM_THREADS"
        except ValueError:
            pass
    return usable_cpus(), "usable CPUs (affinity and cgroup quota)"


def set_num_threads(n: int) -> None:
    """Sets how many threads every fastnn kernel may use (process-wide, any Python thread).

    Raises:
        TypeError: n is not an int.
        ValueError: n < 1.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, received {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, received {n}")
    global _threads_source
    _kernels.set_num_threads(n)
    _threads_source = "set_num_threads()"


def get_num_threads() -> int:
    """The thread count every fastnn kernel uses (1 in a child process after fork)."""
    return 1 if _kernels.openmp_info()[2] else _kernels.get_num_threads()


def set_flush_denormals(enabled: bool) -> None:
    """Whether the kernels flush denormals (|x| < 1.18e-38) to zero, as TensorFlow does.

    True (the default): every kernel runs with flush-to-zero and denormals-are-zero, so
    denormal inputs read as zero and denormal results become zero; without it one denormal
    costs a ~100-cycle microcode assist, which made matmul up to 190x and the activations up to
    60x slower on denormal data (bench/bench_denormals.py). False: IEEE gradual underflow.
    Numbers in the normal range give the same bits either way. The setting is process-wide;
    the floating-point mode of the calling thread (NumPy's) is never changed.

    Raises:
        TypeError: enabled is not a bool.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_flush_denormals: enabled must be a bool, received "
                        f"{type(enabled).__name__}")
    _kernels.set_flush_denormals(enabled)


def get_flush_denormals() -> bool:
    """Whether the kernels flush denormals to zero (see set_flush_denormals)."""
    return _kernels.get_flush_denormals()


def get_isa() -> str:
    """The instruction set the kernels use now: 'ref', 'avx2' or 'avx512'."""
    return _kernels.get_isa()


def set_isa(name: str) -> None:
    """Selects the kernels' instruction set (for tests and benchmarks; call between kernels).

    Raises:
        ValueError: name unknown or not supported by this CPU; the message lists valid choices.
    """
    global _isa_reason
    _kernels.set_isa(name)
    _isa_reason = "set_isa()"


def isa_reason() -> str:
    return _isa_reason


def available_isas() -> tuple[str, ...]:
    """ISAs this CPU can run, lowest first."""
    return ISA_NAMES[: ISA_NAMES.index(_kernels.cpu_isa()) + 1]


def threads_source() -> str:
    return _threads_source


def _init() -> None:
    global _isa_reason, _threads_source
    n, _threads_source = _default_threads()
    _kernels.set_num_threads(n)
    best = _kernels.cpu_isa()
    cap = os.environ.get("FASTNN_ISA", "").strip().lower()
    if cap:
        if cap not in ISA_NAMES:
            raise ValueError(
                f"FASTNN_ISA={cap!r} is not a known ISA; valid choices: {', '.join(ISA_NAMES)}"
            )
        if ISA_NAMES.index(cap) > ISA_NAMES.index(best):
            raise ValueError(
                f"FASTNN_ISA={cap!r} is not supported by this CPU; valid choices here: "
                f"{', '.join(available_isas())}"
            )
        _kernels.set_isa(cap)
        _isa_reason = f"capped by FASTNN_ISA={cap} (CPU supports up to {best})"
    else:
        _kernels.set_isa(best)
        _isa_reason = f"best the CPU and OS support ({best})"
    flush = os.environ.get("FASTNN_FLUSH_DENORMALS", "1").strip().lower()
    if flush not in ("0", "1", "true", "false"):
        raise ValueError(f"FASTNN_FLUSH_DENORMALS={flush!r} is not valid; valid choices: "
                         f"1, 0, true, false")
    _kernels.set_flush_denormals(flush in ("1", "true"))
    _register_threadpoolctl()


def _register_threadpoolctl() -> None:
    """Lets threadpoolctl list fastnn and apply its limits (threadpool_limits(1) etc.)."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register") or getattr(threadpoolctl, "_fastnn_done", False):
        return

    class FastnnController(threadpoolctl.LibController):
        user_api = "openmp"
        internal_api = "fastnn"
        filename_prefixes = ("_kernels",)
        check_symbols = ("fnn_get_num_threads", "fnn_set_num_threads", "fnn_gemm_f32")

        def get_num_threads(self):
            return self.dynlib.fnn_get_num_threads()

        def set_num_threads(self, num_threads):
            return self.dynlib.fnn_set_num_threads(int(num_threads))

        def get_version(self):
            from fastnn import __version__

            return __version__

    threadpoolctl.register(FastnnController)
    threadpoolctl._fastnn_done = True


_threads_source = ""
_init()
