"""Arrays past 2^31 elements: every index product in the kernels is 64-bit.

Opt-in (marker `bigmem`; each test needs 9-13 GB free and says how much): they run only when
selected, `pytest -m bigmem tests/test_bigmem.py` (docs/reliability.md). Operands are filled
with a pattern that depends on the row (a 32-bit wrap of a row offset would read a different
row), and rows near the start, around the element 2^31 and at the end are checked against a
float64 reference computed on those rows only.
"""

import numpy as np
import pytest

from fastnn import _kernels, ops

pytestmark = pytest.mark.bigmem

GB = 1 << 30
TWO31 = 1 << 31


@pytest.fixture(autouse=True)
def _opt_in(request):
    if "bigmem" not in (request.config.getoption("-m") or ""):
        pytest.skip("opt-in: run with -m bigmem (needs about 13 GB of free memory)")


def _need(gigabytes):
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    available = int(info["MemAvailable"].split()[0]) * 1024
    if available < (gigabytes + 1) * GB:
        pytest.skip(f"needs {gigabytes} GB free, {available / GB:.1f} GB available")


def _fill(x, chunk=1 << 26):
    """x.flat[i] = ((i * 7919) mod 2003 - 1001) / 1024, chunk by chunk (no 8 GB temporaries);
    exact in float32, different on every row of any width."""
    flat = x.reshape(-1)
    for start in range(0, flat.size, chunk):
        idx = np.arange(start, min(start + chunk, flat.size), dtype=np.int64)
        flat[start:start + len(idx)] = ((idx * 7919) % 2003 - 1001) / 1024.0
    return x


def _rows_to_check(m, k):
    """Rows at the start, around element 2^31 of an (m, k) array, and at the end."""
    cross = TWO31 // k
    rows = {0, 1, 2, cross - 2, cross - 1, cross, cross + 1, m - 2, m - 1}
    return sorted(r for r in rows if 0 <= r < m)


def test_matmul_with_more_than_2_31_elements_in_a():
    """A (m, 16) with m * 16 = 2^31 + 112: the row offset i * lda passes 2^31."""
    _need(12)
    k, n = 16, 3
    m = TWO31 // k + 7
    a = _fill(np.empty((m, k), np.float32))
    b = _fill(np.empty((k, n), np.float32))
    rows = _rows_to_check(m, k)
    want = a[rows].astype(np.float64) @ b.astype(np.float64)
    for path in ("auto", "packed", "sup"):
        _kernels.gemm_set_path(path)
        try:
            got = ops.matmul(a, b)
        finally:
            _kernels.gemm_set_path("auto")
        np.testing.assert_allclose(got[rows], want, rtol=1e-5, atol=1e-4, err_msg=path)
        del got
    # the same memory as transposed operands: offsets p * lda + i pass 2^31
    at = a.reshape(k, m)
    got = ops.matmul(at.T, b)  # Fortran-ordered (m, 16): the transposed-A path, lda = m
    want = at.T[rows].astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(got[rows], want, rtol=1e-5, atol=1e-4)
    del got
    got = ops.matmul(b.T, at)  # (3, 16) @ (16, m): B's rows m floats apart
    np.testing.assert_allclose(got[:, rows], b.T.astype(np.float64) @ at[:, rows], rtol=1e-5,
                               atol=1e-4)


def test_gemm_epilogue_and_activation_over_2_31_outputs():
    """C (m, 64) with m * 64 > 2^31: bias and relu applied to every row (the fused epilogue
    and the element-wise kernel index past 2^31)."""
    _need(10)
    n = 64
    m = TWO31 // n + 3
    a = _fill(np.empty((m, 1), np.float32))
    b = _fill(np.empty((1, n), np.float32))
    bias = np.linspace(-0.5, 0.5, n, dtype=np.float32)
    c = _kernels.gemm(a, b, bias=bias, act=_kernels.ACTIVATIONS.index("relu"))
    rows = _rows_to_check(m, n)
    want = np.maximum(a[rows].astype(np.float64) @ b + bias, 0.0)
    np.testing.assert_allclose(c[rows], want, rtol=1e-6, atol=1e-6)
    _kernels.act_fwd(c, c, act=_kernels.ACTIVATIONS.index("sigmoid"))  # in place, 2^31 + 192
    np.testing.assert_allclose(c[rows], 1.0 / (1.0 + np.exp(-want)), rtol=1e-5, atol=1e-6)


def test_pooling_more_than_2_31_elements():
    """Three 27000 x 27000 images (2^31 + 39.5 M elements): average and max pooling with
    argmax, backward too; rows of the last image lie past element 2^31. One image of more than
    2^31 pixels is refused (the int32 argmax could not name its pixels)."""
    _need(13)
    side, batch = 27000, 3
    x = _fill(np.empty((batch, side, side, 1), np.float32))
    with pytest.raises(ValueError, match=r"height \* width must be < 2\*\*31"):
        ops.avg_pool2d(x.reshape(1, batch * side, side, 1))
    half = side // 2
    checks = [(0, 0), (0, 1), (batch - 1, 0), (batch - 1, half - 1)]

    def window(img, r):
        return x[img, 2 * r:2 * r + 2, :, 0].astype(np.float64).reshape(2, half, 2)

    y = ops.avg_pool2d(x)
    for img, r in checks:
        np.testing.assert_allclose(y[img, r, :, 0], window(img, r).mean(axis=(0, 2)),
                                   rtol=1e-6, atol=1e-6)
    del y
    y, idx = ops.max_pool2d(x, return_indices=True)
    for img, r in checks:
        np.testing.assert_array_equal(y[img, r, :, 0], window(img, r).max(axis=(0, 2)))
        assert ((idx[img, r] >= 0) & (idx[img, r] < side * side)).all()
    dx = ops.max_pool2d_backward(x, y, indices=idx)  # dy = y: each max routed to its pixel
    del idx
    for img, r in checks:
        got = dx[img, 2 * r:2 * r + 2, :, 0].reshape(2, half, 2)
        np.testing.assert_array_equal(got.sum(axis=(0, 2)), y[img, r, :, 0])
