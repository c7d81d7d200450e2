"""Out-of-bounds reads and writes, caught natively by guard pages (as Electric Fence does).
Every op: GEMM, the element-wise kernels, LSTM forward and backward, conv2d forward and both
backwards, max and average pooling forward and backward.

Every operand and output of a kernel call is placed so that it ends exactly at (or starts
exactly after) an inaccessible page: one float past the end, or one before the start, faults.
This complements AddressSanitizer, which does not see the vector loads and stores of
intrinsics in GCC builds, and valgrind, which does not run AVX-512 code: here every ISA runs
at full speed on its real code paths. (Masked-off lanes of AVX-512 masked loads never fault,
as the hardware promises, so legal masked tails pass.)

Each ISA runs in a child process, so a fault is reported as a failure with the last case the
child announced, not as a crash of the test session. The registry CASES lists, per op, a
function that makes its calls from a guarded allocator; new ops add an entry.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from fastnn import _config

CHILD = textwrap.dedent('''
    import ctypes, itertools, mmap, sys
    import numpy as np
    import fastnn
    from fastnn import _kernels, ops
    fastnn.set_num_threads(2)  # the larger cases also run their parallel regions

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    PAGE = mmap.PAGESIZE

    def guarded(shape, where, dtype=np.float32, fill=1.0):
        """A C-ordered array touching an inaccessible page after its end ("end") or before
        its start ("start")."""
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        span = -(-max(size, 1) // PAGE) * PAGE
        buf = mmap.mmap(-1, span + 2 * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        raw = np.frombuffer(buf, np.uint8)
        base = raw.ctypes.data
        for addr in (base, base + PAGE + span):
            if libc.mprotect(addr, PAGE, 0) != 0:
                raise OSError(ctypes.get_errno(), "mprotect")
        start = PAGE if where == "start" else PAGE + span - size
        x = raw[start:start + size].view(dtype).reshape(shape)
        x[...] = fill
        return x

    def rand(shape, where, rng):
        return guarded(shape, where, fill=rng.standard_normal(shape))

    def case_matmul(rng, where, m, n, k):
        a, b = rand((m, k), where, rng), rand((k, n), where, rng)
        out = guarded((m, n), where)
        ops.matmul(a, b, out=out)
        ops.matmul(rand((k, m), where, rng).T, rand((n, k), where, rng).T, out=out)

    def case_gemm(rng, where, m, n, k):
        for ta, tb in itertools.product((False, True), repeat=2):
            a = rand((k, m) if ta else (m, k), where, rng)
            b = rand((n, k) if tb else (k, n), where, rng)
            out = guarded((m, n), where)
            _kernels.gemm(a, b, out, trans_a=ta, trans_b=tb, beta=0.5,
                          bias=rand((n,), where, rng), act=1)

    def case_eltwise(rng, where, m, n, k):
        x = rand((m, n), where, rng)
        for act in range(len(_kernels.ACTIVATIONS)):
            y = _kernels.act_fwd(x, guarded((m, n), where), act=act, act_alpha=0.2)
            _kernels.act_bwd(y, rand((m, n), where, rng), guarded((m, n), where), act=act,
                             act_alpha=0.2, preact=x)
        _kernels.bias_grad(x, guarded((n,), where))

    def case_lstm(rng, where, m, n, k):
        batch, time, features, units = m, 3, n, k % 9 + 1
        x = rand((batch, time, features), where, rng)
        kern = rand((features, 4 * units), where, rng)
        rec = rand((units, 4 * units), where, rng)
        bias, h0, c0 = rand((4 * units,), where, rng), rand((batch, units), where, rng), \
            rand((batch, units), where, rng)
        outs, h, c, cache = ops.lstm_forward(x, kern, rec, bias, h0, c0, training=True)
        ops.lstm_backward(cache, rand(outs.shape, where, rng), rand(h.shape, where, rng),
                          rand(c.shape, where, rng))

    def case_conv(rng, where, m, n, k):
        size, cin, cout = m % 9 + 1, n % 7 + 1, k % 17 + 1
        x = rand((2, size, size + 1, cin), where, rng)
        for kh, padding, strides in ((3, "same", 1), (1, "valid", 1), (2, "same", 2),
                                     (3, "valid", 1)):
            if padding == "valid" and kh > size:
                continue
            w = rand((kh, kh, cin, cout), where, rng)
            y = ops.conv2d(x, w, rand((cout,), where, rng), strides=strides, padding=padding,
                           activation="relu")
            dy = rand(y.shape, where, rng)
            ops.conv2d_backward_input(dy, w, x.shape, strides=strides, padding=padding)
            ops.conv2d_backward_filter(x, dy, (kh, kh), strides=strides, padding=padding)
        for pool, padding in ((2, "valid"), (3, "same")):
            if padding == "valid" and pool > size:
                continue
            y, idx = ops.max_pool2d(x, pool, padding=padding, return_indices=True)
            ops.max_pool2d_backward(x, rand(y.shape, where, rng), pool, padding=padding,
                                    indices=idx)
            a = ops.avg_pool2d(x, pool, padding=padding)
            ops.avg_pool2d_backward(rand(a.shape, where, rng), x.shape, pool, padding=padding)

    CASES = {"matmul": case_matmul, "gemm": case_gemm}
    for name, fn, need in (("eltwise", case_eltwise, "act_fwd"), ("lstm", case_lstm,
                                                                   "lstm_forward"),
                           ("conv", case_conv, "conv2d")):
        if hasattr(_kernels, need) or hasattr(ops, need):
            CASES[name] = fn

    def main(isa):
        fastnn.set_isa(isa)
        b = _kernels.gemm_blocking()
        sizes = sorted({1, 2, 3, 5, 13, 17, b["mr"] - 1, b["mr"], b["mr"] + 1, b["nr"] - 1,
                        b["nr"] + 1, 2 * b["nr"] + 3} - {0})
        ks = (1, 3, 16, 17, b["kc"] + 1)
        rng = np.random.default_rng(0)
        count = 0
        for path in _kernels.GEMM_PATHS:
            _kernels.gemm_set_path(path)
            for name, case in CASES.items():
                if name not in ("matmul", "gemm") and path != "auto":
                    continue  # the other ops pick their own GEMM paths
                for where in ("end", "start"):
                    for m, n, k in itertools.product(sizes, sizes[::2], ks):
                        print(f"{isa} {path} {name} guard={where} m={m} n={n} k={k}",
                              flush=True)
                        case(rng, where, m, n, k)
                        count += 1
        print(f"done: {count} cases", flush=True)

    main(sys.argv[1])
''')


@pytest.mark.parametrize("isa", _config.available_isas())
def test_no_access_outside_operands(isa):
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, isa], capture_output=True, text=True,
                         env=env, timeout=600, check=False)
    last = res.stdout.strip().splitlines()[-1:] or ["(nothing)"]
    assert res.returncode == 0, (f"{isa}: the child died with status {res.returncode} after "
                                 f"{last[0]!r}\n{res.stderr[-3000:]}")
    assert last[0].startswith("done:"), res.stdout[-2000:]
