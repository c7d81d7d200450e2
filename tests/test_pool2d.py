"""Max and average pooling forward and backward against an obvious float64 NumPy reference
(one loop over output pixels, in tests/_reference_conv.py), PyTorch, finite differences,
NaN / -inf windows, on every ISA with 1 and 4 threads."""

import numpy as np
import pytest
from _reference_conv import pair, pool_windows, ref_pool, ref_pool_grads

import fastnn
from fastnn import _kernels as K
from fastnn import ops

CASES = [  # (n, h, w, c, pool, strides, padding)
    (2, 8, 8, 5, 2, None, "valid"),
    (2, 9, 7, 3, 2, None, "valid"),
    (2, 9, 7, 3, 2, None, "same"),
    (1, 7, 9, 17, 3, 2, "same"),
    (3, 9, 9, 1, 3, 1, "valid"),
    (1, 5, 6, 33, (2, 3), (1, 2), "same"),
    (2, 6, 5, 3, 2, (3, 1), "same"),
    (2, 4, 4, 40, 4, None, "valid"),
    (1, 10, 3, 2, (4, 1), (3, 1), "valid"),
    (0, 4, 4, 3, 2, None, "valid"),
    (1, 1, 1, 1, 1, None, "valid"),
    (2, 5, 5, 7, 5, 5, "same"),
]


def _ids(case):
    return "n{}_{}x{}_c{}_p{}_s{}_{}".format(*case)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_pool2d_matches_reference(case, isa, n_threads):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    x[..., ::3] = np.round(x[..., ::3])  # ties: the first maximum wins
    ymax, arg, yavg = ref_pool(x, pool, strides, padding)
    y, idx = K.max_pool2d_fwd(x, pool_size=pool, strides=strides, padding=padding)
    assert y.dtype == np.float32 and idx.dtype == np.int32
    np.testing.assert_array_equal(y, ymax.astype(np.float32))
    np.testing.assert_array_equal(idx, arg)
    ya = K.avg_pool2d_fwd(x, pool_size=pool, strides=strides, padding=padding)
    np.testing.assert_allclose(ya, yavg, rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dmax, davg = ref_pool_grads(x.shape, dy, arg, pool, strides, padding)
    dx = K.max_pool2d_bwd(dy, idx, x.shape, pool_size=pool, strides=strides, padding=padding)
    np.testing.assert_allclose(dx, dmax, rtol=1e-6, atol=1e-6)
    dxa = K.avg_pool2d_bwd(dy, x.shape, pool_size=pool, strides=strides, padding=padding)
    np.testing.assert_allclose(dxa, davg, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES[:9], ids=_ids)
def test_pool2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, h, w, c, pool, strides, padding = case
    kh, kw = pair(pool)
    sh, sw = pair(pool if strides is None else strides)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    pads = [0, 0, 0, 0]
    if padding == "same":
        for a, (size, k, s) in enumerate(((h, kh, sh), (w, kw, sw))):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads[2 - 2 * a : 4 - 2 * a] = [total // 2, total - total // 2]
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    yt = F.max_pool2d(F.pad(xt, pads, value=-np.inf), (kh, kw), (sh, sw))
    y, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1).astype(np.float32))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64))
    dx = ops.max_pool2d_backward(x, dy, pool, strides, padding, indices=idx)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-6)
    if padding == "valid":  # torch's padded average counts padding; compare 'valid' only
        xa = xt.detach().clone().requires_grad_(True)
        ya = F.avg_pool2d(xa, (kh, kw), (sh, sw))
        ya.backward(torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64))
        np.testing.assert_allclose(
            ops.avg_pool2d(x, pool, strides, padding),
            ya.detach().numpy().transpose(0, 2, 3, 1),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding),
            xa.grad.numpy().transpose(0, 2, 3, 1),
            atol=1e-6,
        )


def test_avg_pool2d_finite_differences(isa):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    g = rng.standard_normal(ops.avg_pool2d(x, 3, 2, "same").shape).astype(np.float32)
    dx = ops.avg_pool2d_backward(g, x.shape, 3, 2, "same")
    for flat in rng.choice(x.size, size=20, replace=False):
        plus, minus = x.copy(), x.copy()
        plus.flat[flat] += 0.5
        minus.flat[flat] -= 0.5
        fd = (ops.avg_pool2d(plus, 3, 2, "same").astype(np.float64) * g).sum() - (
            ops.avg_pool2d(minus, 3, 2, "same").astype(np.float64) * g
        ).sum()
        assert abs(fd - dx.flat[flat]) < 1e-4


def test_max_pool2d_nan_and_inf_windows(isa, n_threads):
    """NaN propagates; a window of -inf or NaN names one of its own pixels."""
    x = np.full((2, 6, 6, 3), -np.inf, np.float32)
    x[:, 1, 1, 1] = np.nan
    x[:, 2, 3, 2] = np.nan
    x[:, 3, 2, 2] = 1.0
    x[1, :, :, 0] = np.nan
    for pool, strides, padding in [(2, None, "valid"), (3, 2, "same"), (3, 1, "valid")]:
        y, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
        ymax, arg, _ = ref_pool(x, pool, strides, padding)
        np.testing.assert_array_equal(y, ymax.astype(np.float32))
        np.testing.assert_array_equal(idx, arg)
        kh, kw = pair(pool)
        sh, sw = pair(pool if strides is None else strides)
        rows, cols = pool_windows(6, kh, sh, padding), pool_windows(6, kw, sw, padding)
        iy, ix = idx // 6, idx % 6
        for i, (y0, y1) in enumerate(rows):
            assert ((iy[:, i] >= y0) & (iy[:, i] < y1)).all()
        for j, (x0, x1) in enumerate(cols):
            assert ((ix[:, :, j] >= x0) & (ix[:, :, j] < x1)).all()
        dx = ops.max_pool2d_backward(x, np.ones_like(y), pool, strides, padding, indices=idx)
        assert np.isfinite(dx).all() and dx.sum() == y.size


def test_global_pooling():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 7, 4)).astype(np.float32)
    np.testing.assert_allclose(ops.global_avg_pool2d(x), x.mean(axis=(1, 2)), atol=1e-6)
    y, idx = ops.global_max_pool2d(x, return_indices=True)
    np.testing.assert_array_equal(y, x.max(axis=(1, 2)))
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(
        ops.global_avg_pool2d_backward(dy, x.shape),
        np.broadcast_to(dy[:, None, None] / 35, x.shape),
        atol=1e-7,
    )
    dx = ops.global_max_pool2d_backward(x, dy, indices=idx)
    np.testing.assert_array_equal(dx, (x == x.max(axis=(1, 2), keepdims=True)) * dy[:, None, None])
    np.testing.assert_array_equal(ops.global_max_pool2d_backward(x, dy), dx)


def test_pool2d_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 33, 31, 24)).astype(np.float32)
    before = fastnn.get_num_threads()
    out = []
    try:
        for nt in (1, 3, 4):
            fastnn.set_num_threads(nt)
            y, idx = K.max_pool2d_fwd(x, pool_size=3, strides=2, padding="same")
            dy = np.ones_like(y)
            out.append(
                (
                    y,
                    idx,
                    K.max_pool2d_bwd(dy, idx, x.shape, pool_size=3, strides=2, padding="same"),
                    K.avg_pool2d_bwd(dy, x.shape, pool_size=3, strides=2, padding="same"),
                )
            )
    finally:
        fastnn.set_num_threads(before)
    for r in out[1:]:
        for a, b in zip(out[0], r):
            np.testing.assert_array_equal(a, b)


def test_ops_layouts():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 8, 6, 5)).astype(np.float32)
    xf = np.asfortranarray(x)
    np.testing.assert_array_equal(ops.max_pool2d(xf), ops.max_pool2d(x))
    np.testing.assert_array_equal(ops.avg_pool2d(x[:, ::1, :, :]), ops.avg_pool2d(x))


def test_pool2d_errors():
    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(TypeError, match="max_pool2d: x must be float32, received float64"):
        ops.max_pool2d(x.astype(np.float64))
    with pytest.raises(ValueError, match=r"avg_pool2d: x must be 4-D"):
        ops.avg_pool2d(x[0])
    with pytest.raises(ValueError, match="max_pool2d: padding must be 'valid' or 'same'"):
        ops.max_pool2d(x, padding="causal")
    with pytest.raises(ValueError, match=r"pool2d: with padding='valid' the pool \(5, 5\)"):
        ops.max_pool2d(x, 5)
    with pytest.raises(ValueError, match="pool2d: pool_size must be positive ints"):
        ops.avg_pool2d(x, 0)
    with pytest.raises(TypeError, match="max_pool2d_backward: indices must be the int32"):
        ops.max_pool2d_backward(
            x, np.zeros((1, 2, 2, 2), np.float32), indices=np.zeros((1, 2, 2, 2))
        )
    with pytest.raises(ValueError, match="global_avg_pool2d: x must have height and width >= 1"):
        ops.global_avg_pool2d(np.zeros((1, 0, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"global_avg_pool2d_backward: dy must have shape"):
        ops.global_avg_pool2d_backward(np.zeros((1, 3), np.float32), x.shape)
    with pytest.raises(ValueError, match=r"global_max_pool2d_backward: dy must have shape"):
        ops.global_max_pool2d_backward(x, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="avg_pool2d_backward: input_shape must be"):
        ops.avg_pool2d_backward(np.zeros((1, 2, 2, 2), np.float32), (4, 4, 2))
    with pytest.raises(TypeError, match="max_pool2d_fwd: out_indices must be an int32"):
        K.max_pool2d_fwd(x, out_indices=np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="max_pool2d_fwd: out_indices must be a writeable"):
        K.max_pool2d_fwd(x, out_indices=np.zeros((1, 2, 2, 3), np.int32))
    with pytest.raises(ValueError, match="max_pool2d_fwd: out_indices overlaps x or out"):
        buf = np.zeros(64, np.float32)
        K.max_pool2d_fwd(
            buf[:32].reshape(1, 4, 4, 2), out_indices=buf.view(np.int32)[:8].reshape(1, 2, 2, 2)
        )
    with pytest.raises(ValueError, match="max_pool2d_fwd: out_indices given with indices=False"):
        K.max_pool2d_fwd(x, out_indices=np.zeros((1, 2, 2, 2), np.int32), indices=False)
    with pytest.raises(TypeError, match="max_pool2d_bwd: argmax must be an int32 ndarray"):
        K.max_pool2d_bwd(np.zeros((1, 2, 2, 2), np.float32), None, x.shape)
    with pytest.raises(ValueError, match="max_pool2d_bwd: argmax must be C-contiguous"):
        K.max_pool2d_bwd(
            np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 2, 4), np.int32)[..., ::2], x.shape
        )
    with pytest.raises(ValueError, match=r"max_pool2d_bwd: dy and argmax must have shape"):
        K.max_pool2d_bwd(
            np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 3, 2), np.int32), x.shape
        )
    with pytest.raises(ValueError, match=r"avg_pool2d_bwd: dy must have shape \(1, 2, 2, 2\)"):
        K.avg_pool2d_bwd(np.zeros((1, 3, 2, 2), np.float32), x.shape)
    with pytest.raises(ValueError, match=r"pool2d: height \* width must be < 2\*\*31"):
        K.pool2d_output_shape((1, 2**16, 2**16, 1), 2)


def test_unaligned_argmax_is_copied_by_the_op_and_refused_by_the_kernel():
    """An int32 view at an odd byte offset: reading it is undefined behaviour in C."""
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype(np.float32)
    y, idx = ops.max_pool2d(x, return_indices=True)
    buf = np.zeros(idx.nbytes + 1, np.uint8)
    unaligned = buf[1:].view(np.int32).reshape(idx.shape)
    unaligned[...] = idx
    dy = np.ones_like(y)
    np.testing.assert_array_equal(ops.max_pool2d_backward(x, dy, indices=unaligned),
                                  ops.max_pool2d_backward(x, dy, indices=idx))
    with pytest.raises(ValueError, match="max_pool2d_bwd: argmax must be aligned"):
        K.max_pool2d_bwd(dy, unaligned, x.shape)
