"""tools/valgrind_uninit.awk: which uninitialised-value reports of a memcheck log are fastnn's."""

import shutil
import subprocess
from pathlib import Path

import pytest

AWK_SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "valgrind_uninit.awk"

pytestmark = pytest.mark.skipif(
    shutil.which("awk") is None or not AWK_SCRIPT.exists(),
    reason="needs awk and the source tree's tools/ (not in the sdist)",
)

CPYTHON_REPORT = """\
==10235== Use of uninitialised value of size 8
==10235==    at 0x49E0569: Py_INCREF (object.h:502)
==10235==    by 0x49E0569: get_small_int (longobject.c:62)
==10235==    by 0x49E075F: int_from_bytes (longobject.c.h:389)
==10235==    by 0x4E3C249: (below main) (libc_start_call_main.h:58)
==10235== 
"""

SUMMARY = """\
==10235== HEAP SUMMARY:
==10235==     in use at exit: 108,118,045 bytes in 865,908 blocks
==10235== 
==10235== Use --track-origins=yes to see where uninitialised values come from
==10235== ERROR SUMMARY: 10431 errors from 71 contexts (suppressed: 23 from 6)
"""

NEXT_PROCESS = """\
==10236== Memcheck, a memory error detector
==10236== Command: /usr/bin/bash /root/.pyenv/libexec/pyenv exec python3 -m pytest \
tests/test_conv2d.py tests/test_loss_kernels.py -q
==10236== Parent PID: 10235
==10236== 
"""


def count(log: str, tmp_path) -> tuple[int, int]:
    path = tmp_path / "valgrind.log"
    path.write_text(log)
    out = subprocess.run(
        ["awk", "-f", str(AWK_SCRIPT), str(path)], capture_output=True, text=True, check=True
    ).stdout
    reports, fastnn = out.split()
    return int(reports), int(fastnn)


def test_cpython_reports_and_a_later_command_line_are_not_fastnn(tmp_path):
    # The summary's "--track-origins ... uninitialised values" hint is no report, and the next
    # process's "Command: ... test_loss_kernels.py" line is no frame (the bug this guards).
    assert count(CPYTHON_REPORT + CPYTHON_REPORT + SUMMARY + NEXT_PROCESS, tmp_path) == (2, 0)
    # A log cut off before the report's closing blank line: the next process's lines follow.
    unterminated = CPYTHON_REPORT.removesuffix("==10235== \n")
    assert count(unterminated + NEXT_PROCESS, tmp_path) == (1, 0)


@pytest.mark.parametrize(
    "frame",
    [
        "by 0x4A1B2C3: fnn_gemm_run (gemm.c:350)",
        "by 0x4A1B2C3: fnn_gemm_run._omp_fn.0 (gemm.c:350)",
        "at 0x4A1B2C3: pack_b_panel (csrc/gemm.c:212)",
        "by 0x4A1B2C3: __pyx_pw_6fastnn_8_kernels_1gemm (fastnn/_kernels.c:9120)",
        "by 0x4A1B2C3: ??? (in /x/fastnn/_kernels.cpython-311-x86_64-linux-gnu.so)",
    ],
)
def test_a_fastnn_frame_anywhere_in_the_stack_counts_once(tmp_path, frame):
    lines = CPYTHON_REPORT.splitlines()
    report = "\n".join([*lines[:3], f"==10235==    {frame}", *lines[3:]]) + "\n"
    assert count(report + SUMMARY + NEXT_PROCESS, tmp_path) == (1, 1)
    header = "==10235== Conditional jump or move depends on uninitialised value(s)\n"
    assert count(header + f"==10235==    {frame}\n" + f"==10235==    {frame}\n", tmp_path) == (1, 1)


def test_frames_after_the_report_ends_do_not_count(tmp_path):
    # Frames of an "Address ... was allocated" block, another process's log, or torch's own
    # csrc/ (absolute paths under --fullpath-after) are not the report's stack.
    report = (
        "==7== Syscall param write(buf) points to uninitialised byte(s)\n"
        "==7==    at 0x4F1A2B3: write (write.c:26)\n"
        "==7==  Address 0x1ffefff9c0 is on thread 1's stack\n"
        "==7==    by 0x4A1B2C3: fnn_gemm_run (gemm.c:350)\n"
        "==7== \n"
        "==7== Use of uninitialised value of size 8\n"
        "==7==    at 0x4F1A2B3: f (/src/pytorch/torch/csrc/autograd/python_variable.cpp:12)\n"
        "==7== \n"
        "==8== Command: python3 -m pytest tests/test_loss_kernels.py csrc/gemm.c fnn_gemm\n"
    )
    assert count(report, tmp_path) == (2, 0)
