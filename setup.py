"""Build of fastnn's one extension, fastnn._kernels: the C kernels in csrc/ plus the Cython
bindings. Environment switches:
  FASTNN_NO_OPENMP=1   build without OpenMP (every kernel runs on one thread)
  FASTNN_DEBUG=1       -O0 -g and Cython bounds checks
  FASTNN_SANITIZE=1    AddressSanitizer + UndefinedBehaviorSanitizer (see README)
"""

import os
import subprocess
import sys
import sysconfig
import tempfile
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

ENV_TRUE = ("1", "true", "yes", "on")


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ENV_TRUE


def openmp_flags():
    """The compiler's OpenMP flags, verified by compiling and linking a small program."""
    if env_flag("FASTNN_NO_OPENMP"):
        print("fastnn: FASTNN_NO_OPENMP=1: building without OpenMP (single-threaded)")
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        compile_flags, link_flags = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    else:
        compile_flags, link_flags = ["-fopenmp"], ["-fopenmp"]
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    probe = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(probe)
        cmd = cc.split() + compile_flags + [src, "-o", os.path.join(tmp, "probe")] + link_flags
        ok = subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    if not ok:
        sys.exit(
            "fastnn: the C compiler cannot build OpenMP code (tried: "
            + " ".join(cmd)
            + ").\nInstall OpenMP support (gcc: libgomp; clang: libomp-dev; macOS: "
            "`brew install libomp`), or build single-threaded with FASTNN_NO_OPENMP=1."
        )
    return compile_flags, link_flags


def extension():
    debug = env_flag("FASTNN_DEBUG")
    sanitize = env_flag("FASTNN_SANITIZE")
    omp_compile, omp_link = openmp_flags()
    if sys.platform == "win32":
        compile_args, link_args = ["/O2"] + omp_compile, omp_link
    else:
        # Baseline ISA only: the AVX2 / AVX-512 kernels carry target attributes and are chosen
        # at run time. Never -march=native, never -ffast-math (tests rely on IEEE NaN/Inf).
        opt = ["-O0", "-g"] if debug or sanitize else ["-O3"]
        # -ffp-contract=off: never fuse a*b+c into an FMA the source did not write. GCC in
        # -std=c11 mode already does not; clang does by default inside an expression, which
        # changed the optimizer updates' last bit on the AVX2/AVX-512 paths (found by
        # `CC=clang tools/sanitize.sh tests/test_backend_parity.py`).
        compile_args = opt + ["-std=c11", "-ffp-contract=off", "-fno-math-errno", "-Wall",
                              "-Wno-unused-function"]
        compile_args += omp_compile
        link_args = list(omp_link)
        if sanitize:
            san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
            compile_args += san + ["-g"]
            link_args += san
    sources = ["fastnn/_kernels.pyx"] + sorted(glob("csrc/*.c"))
    return Extension(
        "fastnn._kernels",
        sources=sources,
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        depends=sorted(glob("csrc/*.h")) + sorted(glob("fastnn/*.pxi")) + ["fastnn/_kernels.pxd"],
    )


debug = env_flag("FASTNN_DEBUG")
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": debug,
    "embedsignature": True,
}
setup(ext_modules=cythonize([extension()], compiler_directives=directives))
