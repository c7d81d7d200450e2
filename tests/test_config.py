"""Threads, ISA selection, fork safety, threadpoolctl, `python -m fastnn info`, installation."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _config, ops


def run_python(code, **env):
    """Runs code in a fresh interpreter with extra environment variables; returns the result."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=full_env, timeout=60
    )


def test_get_isa_is_available():
    assert fastnn.get_isa() in _config.available_isas()
    assert _config.available_isas()[0] == "ref"


def test_set_isa_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown ISA 'sse9'; valid choices: ref, avx2, avx512"):
        fastnn.set_isa("sse9")


@pytest.mark.skipif("avx512" in _config.available_isas(), reason="CPU supports every ISA")
def test_set_isa_rejects_unsupported_level():
    with pytest.raises(ValueError, match=r"not supported by this CPU; valid choices here"):
        fastnn.set_isa("avx512")


def test_fastnn_isa_environment_caps_the_choice():
    res = run_python("import fastnn; print(fastnn.get_isa())", FASTNN_ISA="ref")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ref"


def test_fastnn_isa_environment_rejects_unknown_value():
    res = run_python("import fastnn", FASTNN_ISA="neon")
    assert res.returncode != 0
    assert "FASTNN_ISA='neon' is not a known ISA; valid choices: ref, avx2, avx512" in res.stderr


def test_default_threads_from_omp_num_threads():
    res = run_python("import fastnn; print(fastnn.get_num_threads())", OMP_NUM_THREADS="3")
    assert res.stdout.strip() == "3", res.stderr


def test_default_threads_are_usable_cpus():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    res = subprocess.run(
        [sys.executable, "-c", "import fastnn; print(fastnn.get_num_threads())"],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )
    assert int(res.stdout) == _config.usable_cpus()


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match=r"n must be >= 1, received 0"):
        fastnn.set_num_threads(0)
    with pytest.raises(TypeError, match=r"n must be an int, received float"):
        fastnn.set_num_threads(2.0)


def test_threadpoolctl_lists_and_limits_fastnn():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    apis = {lib["internal_api"] for lib in threadpoolctl.threadpool_info()}
    assert "fastnn" in apis
    assert "openmp" in apis  # the OpenMP runtime fastnn loaded
    before = fastnn.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1):
        assert fastnn.get_num_threads() == 1
    assert fastnn.get_num_threads() == before


FORK_CODE = """
import os, sys, numpy as np, fastnn
fastnn.set_num_threads(2)
rng = np.random.default_rng(0)
a = rng.standard_normal((300, 300)).astype(np.float32)
want = fastnn.ops.matmul(a, a)          # parallel regions in the parent before fork
def child(depth):
    got = fastnn.ops.matmul(a, a)
    ok = np.array_equal(got, want)
    if depth == 1:                      # the grandchild too
        pid = os.fork()
        if pid == 0:
            os._exit(child(2))
        _, status = os.waitpid(pid, 0)
        ok = ok and os.waitstatus_to_exitcode(status) == 0
    return 0 if ok else 1
pid = os.fork()
if pid == 0:
    os._exit(child(1))
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


def test_fork_after_parallel_region():
    """libgomp cannot start a team in a forked child (it hangs); fastnn runs the child's
    kernels on one thread and gets the same bits. Timeout 60 s guards against a hang."""
    res = run_python(FORK_CODE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "child exit 0"


def test_info_command():
    res = subprocess.run(
        [sys.executable, "-m", "fastnn", "info"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    for key in ("fastnn:", "isa:", "threads:", "openmp:", "numpy:"):
        assert key in res.stdout


@pytest.mark.skipif(
    os.environ.get("FASTNN_TEST_INSTALLED") != "1",
    reason="only when testing the installed wheel (.ci/run sets FASTNN_TEST_INSTALLED=1)",
)
def test_imported_from_site_packages():
    assert "site-packages" in fastnn.__file__, fastnn.__file__
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert not os.path.abspath(fastnn.__file__).startswith(repo_root + os.sep)


def test_many_threads_same_answer(rng):
    a = rng.standard_normal((64, 64)).astype(np.float32)
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(16)
        got = ops.matmul(a, a)
    finally:
        fastnn.set_num_threads(before)
    np.testing.assert_allclose(got, a.astype(np.float64) @ a, atol=1e-4)


@pytest.mark.skipif(
    os.environ.get("FASTNN_TEST_INSTALLED") != "1",
    reason="only when testing the installed wheel (.ci/run sets FASTNN_TEST_INSTALLED=1)",
)
def test_installed_wheel_is_multithreaded():
    """The wheel carries its own OpenMP runtime (auditwheel puts it in fastnn.libs) and the
    extension was compiled with OpenMP."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    enabled, version, forked = fastnn._kernels.openmp_info()
    assert enabled and version >= 201107 and not forked
    runtimes = [lib["filepath"] for lib in threadpoolctl.threadpool_info()
                if lib["internal_api"] == "openmp"]
    assert any("fastnn.libs" in path for path in runtimes), runtimes


def _package_without_kernels(tmp_path, checkout: bool):
    """A copy of the fastnn package's Python files (no compiled extension) under tmp_path,
    beside a setup.py when it stands for a checkout's source folder."""
    shutil.copytree(os.path.dirname(fastnn.__file__), tmp_path / "fastnn",
                    ignore=shutil.ignore_patterns("_kernels*.so", "_kernels*.pyd", "*.libs"))
    if checkout:
        (tmp_path / "setup.py").write_text("")
    return subprocess.run([sys.executable, "-c", "import fastnn"], cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=60)


def test_source_folder_without_kernels_says_what_to_do(tmp_path):
    """`python -m fastnn.examples.digits` from a fresh clone's root imports the source folder
    (the current directory comes first on sys.path), which has no compiled kernels: the error
    says so and names the ways out, instead of a bare ModuleNotFoundError."""
    res = _package_without_kernels(tmp_path, checkout=True)
    assert res.returncode != 0
    assert "ImportError: fastnn's compiled kernels (fastnn._kernels) are not in" in res.stderr
    assert "source folder of a fastnn checkout" in res.stderr
    assert "python -I" in res.stderr and "build_ext --inplace" in res.stderr


def test_incomplete_install_without_kernels_says_reinstall(tmp_path):
    res = _package_without_kernels(tmp_path, checkout=False)
    assert res.returncode != 0
    assert "the installation is incomplete; reinstall fastnn" in res.stderr
