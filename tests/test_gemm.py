"""GEMM: fastnn.ops.matmul and the strict _kernels.gemm against a float64 NumPy reference."""

import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _kernels, ops


def reference(a, b, trans_a=False, trans_b=False):
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    return a64 @ b64


def assert_gemm_close(got, want, k):
    """float32 accumulation error grows with k: bound it by k * eps * (|a| |b| row products)."""
    assert got.dtype == np.float32
    assert got.shape == want.shape
    tol = 4 * max(k, 1) * np.finfo(np.float32).eps * (1 + np.abs(want).max(initial=0))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@pytest.fixture(params=["packed", "sup", "narrow"])
def gemm_path(request):
    """Forces the packed (BLIS), unpacked small-problem or narrow (n <= 16) path; restores auto."""
    _kernels.gemm_set_path(request.param)
    yield request.param
    _kernels.gemm_set_path("auto")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def edge_sizes():
    """0, 1, primes, and every block size of the selected ISA +- 1."""
    b = _kernels.gemm_blocking()
    sizes = {0, 1, 2, 7, 13, 31, 97}
    for key in ("mr", "nr"):
        sizes |= {b[key] - 1, b[key], b[key] + 1}
    return sorted(sizes)


SQUARE_SHAPES = [(m, n, k) for m in (1, 5, 13) for n in (1, 17, 33) for k in (1, 3, 31)]


@pytest.mark.parametrize("m,n,k", SQUARE_SHAPES)
def test_small_shapes(isa, gemm_path, n_threads, rng, m, n, k):
    a, b = rand(rng, m, k), rand(rng, k, n)
    assert_gemm_close(ops.matmul(a, b), reference(a, b), k)


def test_block_edges(isa, gemm_path, n_threads, rng):
    """Every size around the register tile, in m, n and k (k crosses kc too)."""
    blocking = _kernels.gemm_blocking()
    sizes = edge_sizes()
    for m in sizes:
        for n in sizes:
            a, b = rand(rng, m, 9), rand(rng, 9, n)
            assert_gemm_close(ops.matmul(a, b), reference(a, b), 9)
    for k in (blocking["kc"] - 1, blocking["kc"], blocking["kc"] + 1, 2 * blocking["kc"] + 3):
        a, b = rand(rng, 19, k), rand(rng, k, 35)
        assert_gemm_close(ops.matmul(a, b), reference(a, b), k)


@pytest.mark.parametrize("which", ["mc", "nc"])
def test_cache_block_edges(isa, gemm_path, rng, which):
    blocking = _kernels.gemm_blocking()
    size = blocking[which]
    for d in (size - 1, size + 1):
        m, n = (d, 20) if which == "mc" else (20, d)
        a, b = rand(rng, m, 40), rand(rng, 40, n)
        assert_gemm_close(ops.matmul(a, b), reference(a, b), 40)


def test_large_multithreaded(isa, gemm_path, n_threads, rng):
    a, b = rand(rng, 301, 523), rand(rng, 523, 257)
    assert_gemm_close(ops.matmul(a, b), reference(a, b), 523)


@pytest.mark.parametrize("layout_a", ["C", "F", "T", "rows", "strided", "reversed"])
@pytest.mark.parametrize("layout_b", ["C", "F", "T", "strided"])
def test_layouts(isa, gemm_path, rng, layout_a, layout_b):
    def make(shape, layout):
        m, k = shape
        if layout == "C":
            return rand(rng, m, k)
        if layout == "F":
            return np.asfortranarray(rand(rng, m, k))
        if layout == "T":
            return rand(rng, k, m).T
        if layout == "rows":
            return rand(rng, m, k + 7)[:, 3 : 3 + k]
        if layout == "strided":
            return rand(rng, 2 * m, 3 * k)[::2, ::3]
        return rand(rng, m, k)[::-1, ::-1]

    a, b = make((37, 45), layout_a), make((45, 29), layout_b)
    assert_gemm_close(ops.matmul(a, b), reference(a, b), 45)


def test_transposed_inputs_are_not_copied(rng):
    """x.T and Fortran arrays reach the kernel as transposed operands (the result is right and
    the operand was never made contiguous)."""
    x = rand(rng, 128, 64)
    w = rand(rng, 64, 32)
    dy = rand(rng, 128, 32)
    assert_gemm_close(ops.matmul(x.T, dy), reference(x, dy, trans_a=True), 128)
    assert_gemm_close(ops.matmul(dy, w.T), reference(dy, w, trans_b=True), 32)
    assert not x.T.flags.c_contiguous


def test_out_prefilled_with_nan(isa, gemm_path, rng):
    a, b = rand(rng, 23, 41), rand(rng, 41, 19)
    out = np.full((23, 19), np.nan, np.float32)
    got = ops.matmul(a, b, out=out)
    assert got is out
    assert_gemm_close(out, reference(a, b), 41)


def test_zero_k_gives_zeros():
    out = np.full((3, 4), np.nan, np.float32)
    ops.matmul(np.empty((3, 0), np.float32), np.empty((0, 4), np.float32), out=out)
    np.testing.assert_array_equal(out, np.zeros((3, 4), np.float32))


def test_zero_k_as_a_fresh_threads_first_gemm():
    """The first GEMM of a thread asks its scratch for 0 floats when k == 0; that must not
    read as out of memory (it did, in a fresh process)."""
    code = ("import numpy as np, fastnn; "
            "out = fastnn.ops.matmul(np.empty((3, 0), np.float32), np.empty((0, 4), np.float32)); "
            "assert not out.any() and out.shape == (3, 4)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_empty_operands_with_any_strides():
    """NumPy may give an empty array zero strides (a copy of rng.standard_normal((0, 13))
    did): with no element to misread, the strict gemm takes it."""
    empty = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(0, 13),
                                            strides=(0, 0))
    out = np.full((13, 4), np.nan, np.float32)
    _kernels.gemm(empty, np.zeros((0, 4), np.float32), out, trans_a=True)
    np.testing.assert_array_equal(out, np.zeros((13, 4), np.float32))


def test_zero_size_batch():
    got = ops.matmul(np.empty((0, 5), np.float32), np.ones((5, 3), np.float32))
    assert got.shape == (0, 3)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_strict_gemm_alpha_beta(isa, gemm_path, rng, beta, trans_a, trans_b):
    m, n, k = 29, 43, 300
    a = rand(rng, k, m) if trans_a else rand(rng, m, k)
    b = rand(rng, n, k) if trans_b else rand(rng, k, n)
    c0 = rand(rng, m, n) if beta else np.full((m, n), np.nan, np.float32)
    out = c0.copy()
    _kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=beta)
    want = 0.5 * reference(a, b, trans_a, trans_b) + (beta * c0.astype(np.float64) if beta else 0)
    assert_gemm_close(out, want, k)


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu"])
def test_epilogue_bias_activation(isa, gemm_path, rng, act):
    from math import erf

    a, b, bias = rand(rng, 33, 70), rand(rng, 70, 45), rand(rng, 45)
    z = reference(a, b) + bias
    fns = {
        "linear": lambda v: v,
        "relu": lambda v: np.maximum(v, 0),
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "tanh": np.tanh,
        "gelu": np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2)))),
        "elu": lambda v: np.where(v > 0, v, 0.7 * np.expm1(v)),
        "leaky_relu": lambda v: np.where(v < 0, 0.7 * v, v),
    }
    out = _kernels.gemm(a, b, bias=bias, act=_kernels.ACTIVATIONS.index(act), act_alpha=0.7)
    assert_gemm_close(out, fns[act](z), 70)


def test_bitwise_identical_across_thread_counts(isa, gemm_path, rng):
    a, b = rand(rng, 517, 300), rand(rng, 300, 389)
    before = fastnn.get_num_threads()
    try:
        results = []
        for nt in (1, 2, 3, 4, 7):
            fastnn.set_num_threads(nt)
            results.append(ops.matmul(a, b))
    finally:
        fastnn.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_concurrent_python_threads(rng):
    """Four Python threads calling matmul at once (GIL released) get the serial results."""
    inputs = [(rand(rng, 200, 150), rand(rng, 150, 120)) for _ in range(4)]
    expected = [ops.matmul(a, b) for a, b in inputs]
    results = [None] * 4

    def work(i):
        for _ in range(20):
            results[i] = ops.matmul(*inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    a, b = rand(rng, 65, 130), rand(rng, 130, 47)
    want = torch.from_numpy(a).double() @ torch.from_numpy(b).double()
    assert_gemm_close(ops.matmul(a, b), want.numpy(), 130)


# --- bad input -------------------------------------------------------------------------------


def test_wrong_dtype_is_type_error():
    a = np.ones((3, 4))
    with pytest.raises(TypeError, match=r"matmul: a must be float32, received float64"):
        ops.matmul(a, np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match=r"matmul: b must be float32, received int64"):
        ops.matmul(np.ones((3, 4), np.float32), np.ones((4, 2), np.int64))
    with pytest.raises(TypeError, match=r"matmul: a must be a numpy.ndarray, received list"):
        ops.matmul([[1.0]], np.ones((1, 1), np.float32))


def test_wrong_rank_and_shapes_are_value_errors():
    f = np.float32
    with pytest.raises(ValueError, match=r"must be 2-D, received a.shape=\(3,\)"):
        ops.matmul(np.ones(3, f), np.ones((3, 2), f))
    with pytest.raises(ValueError, match=r"a.shape\[1\] \(4\) != b.shape\[0\] \(5\)"):
        ops.matmul(np.ones((3, 4), f), np.ones((5, 2), f))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 2\), received \(2, 3\)"):
        ops.matmul(np.ones((3, 4), f), np.ones((4, 2), f), out=np.empty((2, 3), f))
    with pytest.raises(TypeError, match=r"matmul: out must be float32, received float64"):
        ops.matmul(np.ones((3, 4), f), np.ones((4, 2), f), out=np.empty((3, 2)))


def test_bad_out_is_value_error():
    f = np.float32
    a, b = np.ones((3, 4), f), np.ones((4, 3), f)
    ro = np.empty((3, 3), f)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"out must be writeable"):
        ops.matmul(a, b, out=ro)
    with pytest.raises(ValueError, match=r"out must be C-contiguous"):
        ops.matmul(a, b, out=np.empty((3, 3), f, order="F"))
    buf = np.ones((4, 4), f)
    with pytest.raises(ValueError, match=r"out overlaps a in memory"):
        ops.matmul(buf[:3, :], np.ones((4, 4), f), out=buf[1:, :])


def test_strict_gemm_errors():
    f = np.float32
    a, b = np.ones((3, 4), f), np.ones((4, 5), f)
    with pytest.raises(ValueError, match=r"gemm: inner dimensions differ: op\(a\) is 3x4"):
        _kernels.gemm(a, np.ones((3, 5), f))
    with pytest.raises(ValueError, match=r"gemm: bias must be contiguous with shape \(5,\)"):
        _kernels.gemm(a, b, bias=np.ones(4, f))
    with pytest.raises(ValueError, match=r"gemm: act must be one of"):
        _kernels.gemm(a, b, act=7)
    with pytest.raises(ValueError, match=r"gemm: beta=0.5 needs an `out` array"):
        _kernels.gemm(a, b, beta=0.5)
    with pytest.raises(ValueError, match=r"gemm: a rows must be contiguous"):
        _kernels.gemm(np.ones((4, 3), f).T, b)
    with pytest.raises(ValueError, match=r"unknown GEMM path 'fast'; valid choices: auto"):
        _kernels.gemm_set_path("fast")


def _unaligned(x, offset=1):
    """A copy of x whose data starts at byte offset `offset` of a uint8 buffer."""
    buf = np.zeros(x.nbytes + offset, np.uint8)
    y = buf[offset:].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


def test_unaligned_arrays_are_copied_by_matmul_and_refused_by_gemm(rng):
    """Dereferencing a float at an odd address is undefined behaviour in C (UBSan reports it):
    matmul copies such inputs, the strict gemm and every `out` refuse them."""
    a, b = rand(rng, 5, 7), rand(rng, 7, 3)
    ua, ub = _unaligned(a), _unaligned(b, 2)
    assert not ua.flags.aligned and not ub.flags.aligned
    np.testing.assert_array_equal(ops.matmul(ua, ub), ops.matmul(a, b))
    np.testing.assert_array_equal(ops.matmul(ua.T.T, _unaligned(b.T.copy()).T), ops.matmul(a, b))
    with pytest.raises(ValueError, match=r"matmul: out must be aligned to its 4-byte itemsize"):
        ops.matmul(a, b, out=_unaligned(np.empty((5, 3), np.float32), 3))
    with pytest.raises(ValueError, match=r"gemm: a must be aligned to its 4-byte itemsize, "
                                         r"received data at byte offset 1"):
        _kernels.gemm(ua, b)
    with pytest.raises(ValueError, match=r"gemm: bias must be aligned"):
        _kernels.gemm(a, b, bias=_unaligned(np.ones(3, np.float32)))
