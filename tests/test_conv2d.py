"""conv2d forward, backward to the input and backward to the weights and bias, against an
obvious float64 NumPy reference (one einsum per filter tap, in tests/_reference_conv.py), finite
differences, PyTorch, and on every ISA with 1 and 4 threads."""

import itertools
import threading

import numpy as np
import pytest
from _reference_conv import conv_geometry, pair, ref_conv2d

import fastnn
from fastnn import _kernels as K
from fastnn import ops


def assert_close(got, ref, terms, name):
    """float32 result against float64: error grows with the number of summed terms."""
    assert got.dtype == np.float32, name
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(
        got, ref, rtol=1e-5, atol=2e-6 * scale * max(terms, 1) ** 0.5, err_msg=name
    )


# --- cases: every stride x padding x dilation, kernels and shapes drawn per case --------------

STRIDES = [1, 2, (2, 3)]
PADDINGS = ["valid", "same", "causal"]
DILATIONS = [1, 2, (1, 3)]
KERNELS = [(3, 3), (2, 2), (1, 1), (1, 3), (4, 2), (3, 3), (2, 3), (5, 5), (3, 1)]


def _cases():
    cases = []
    rng = np.random.default_rng(1234)
    for n, (s, p, d) in enumerate(itertools.product(STRIDES, PADDINGS, DILATIONS)):
        kh, kw = KERNELS[n % len(KERNELS)]
        dh, dw = pair(d)
        h = int(rng.integers((kh - 1) * dh + 1, (kh - 1) * dh + 11))
        w = int(rng.integers((kw - 1) * dw + 1, (kw - 1) * dw + 11))
        c_in = int(rng.choice([1, 2, 3, 5, 8, 17]))
        c_out = int(rng.choice([1, 2, 5, 16, 17, 33]))
        cases.append((int(rng.integers(1, 4)), h, w, c_in, c_out, kh, kw, s, p, d))
    # edges: batch 0 and 1, pointwise (folded batch, in-place layout), one and many channels,
    # even kernels with 'same', panel edges (16, 32 +- 1), few outputs (dot kernel)
    cases += [
        (0, 5, 5, 3, 4, 3, 3, 1, "same", 1),
        (1, 1, 1, 1, 1, 1, 1, 1, "valid", 1),
        (1, 3, 3, 2, 2, 3, 3, 1, "valid", 1),
        (3, 7, 5, 13, 31, 1, 1, 1, "valid", 1),
        (2, 6, 7, 8, 9, 1, 1, 2, "same", 1),
        (2, 9, 8, 1, 32, 3, 3, 1, "same", 1),
        (2, 8, 9, 32, 1, 3, 3, 1, "same", 1),
        (2, 7, 6, 33, 3, 2, 2, 1, "same", 1),
        (1, 10, 11, 70, 65, 3, 3, 1, "same", 1),
        (2, 6, 6, 4, 15, 4, 4, 1, "same", 1),
        (1, 12, 4, 6, 8, 6, 2, 2, "same", 1),
        (2, 5, 5, 3, 4, 3, 3, 3, "same", 1),
        (1, 4, 4, 2, 3, 3, 3, 5, "valid", 1),
        # Winograd F(2x2, 3x3) (3x3, stride 1, >= 16 channels): odd sizes (partial tiles),
        # every padding, channel tails, many tile blocks
        (2, 7, 9, 16, 16, 3, 3, 1, "same", 1),
        (1, 5, 6, 17, 33, 3, 3, 1, "valid", 1),
        (2, 6, 5, 20, 18, 3, 3, 1, "causal", 1),
        (1, 37, 29, 24, 40, 3, 3, 1, "same", 1),
        (3, 3, 3, 16, 16, 3, 3, 1, "valid", 1),
        (2, 7, 9, 5, 8, 3, 3, 1, "same", 1),  # Winograd weight gradient only
        (1, 5, 4, 130, 129, 3, 3, 1, "same", 1),  # large filter: direct forward
    ]
    return cases


CASES = _cases()


def _ids(case):
    return "n{}_{}x{}_c{}-{}_k{}x{}_s{}_{}_d{}".format(*case)


def _arrays(case, seed=0):
    n, h, w, c_in, c_out, kh, kw = case[:7]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c_in)).astype(np.float32)
    wt = rng.standard_normal((kh, kw, c_in, c_out)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    return x, wt, b, rng


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_conv2d_matches_reference(case, isa, n_threads):
    s, p, d = case[7:]
    x, w, b, rng = _arrays(case)
    y = K.conv2d_fwd(x, w, b, strides=s, padding=p, dilation=d)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ref_y, ref_dx, ref_dw, ref_db = ref_conv2d(x, w, b, s, p, d, dy=dy)
    taps = w.shape[0] * w.shape[1]
    assert_close(y, ref_y, taps * x.shape[3], "y")
    dx = K.conv2d_bwd_data(dy, w, x.shape, strides=s, padding=p, dilation=d)
    assert_close(dx, ref_dx, taps * w.shape[3], "dx")
    dw, db = K.conv2d_bwd_filter(x, dy, w.shape[:2], strides=s, padding=p, dilation=d)
    assert_close(dw, ref_dw, y.shape[0] * y.shape[1] * y.shape[2], "dw")
    assert_close(db, ref_db, y.shape[0] * y.shape[1] * y.shape[2], "db")


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu"])
def test_conv2d_fused_activation(act, isa):
    case = (2, 7, 6, 5, 19, 3, 3, 1, "same", 1)
    x, w, b, _ = _arrays(case)
    z = K.conv2d_fwd(x, w, b, padding="same")
    a = K.ACTIVATIONS.index(act)
    y = K.conv2d_fwd(x, w, b, padding="same", act=a, act_alpha=0.2)
    expected = z.copy()
    K.gemm(
        np.eye(1, dtype=np.float32),
        z.reshape(1, -1),
        out=expected.reshape(1, -1),
        act=a,
        act_alpha=0.2,
    )
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_conv2d_backward_finite_differences(isa):
    """sum(conv(x, w) * g) is linear in x and in w, so central differences are exact up to
    float32 rounding: they check the backward kernels against the forward kernel."""
    rng = np.random.default_rng(5)
    for s, p, d in [(1, "same", 1), (2, "same", 1), ((1, 2), "valid", (2, 1))]:
        x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
        w = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
        b = rng.standard_normal(4).astype(np.float32)
        g = rng.standard_normal(K.conv2d_fwd(x, w, b, strides=s, padding=p, dilation=d).shape)
        g = g.astype(np.float32)

        def loss(xx, ww, bb, s=s, p=p, d=d, g=g):
            y = K.conv2d_fwd(xx, ww, bb, strides=s, padding=p, dilation=d)
            return float((y.astype(np.float64) * g).sum())

        dx = K.conv2d_bwd_data(g, w, x.shape, strides=s, padding=p, dilation=d)
        dw, db = K.conv2d_bwd_filter(x, g, w.shape[:2], strides=s, padding=p, dilation=d)
        eps = 0.5
        for arr, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
            for flat in rng.choice(arr.size, size=min(arr.size, 12), replace=False):
                plus, minus = arr.copy(), arr.copy()
                plus.flat[flat] += eps
                minus.flat[flat] -= eps
                args_p, args_m = [x, w, b], [x, w, b]
                args_p[which], args_m[which] = plus, minus
                fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
                assert abs(fd - grad.flat[flat]) < 1e-3 * max(1.0, abs(fd)), (which, flat)


@pytest.mark.parametrize("case", CASES[::4], ids=_ids)
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    s, p, d = case[7:]
    x, w, b, rng = _arrays(case, seed=3)
    (sh, sw), (dh, dw) = pair(s), pair(d)
    _, pt, pb = conv_geometry(x.shape[1], w.shape[0], sh, dh, p)
    _, pl, pr = conv_geometry(x.shape[2], w.shape[1], sw, dw, p)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    yt = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=(sh, sw), dilation=(dh, dw))
    y = K.conv2d_fwd(x, w, b, strides=s, padding=p, dilation=d)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64))
    terms = w.shape[0] * w.shape[1] * max(w.shape[2], w.shape[3])
    assert_close(y, yt.detach().numpy().transpose(0, 2, 3, 1), terms, "y")
    dx = K.conv2d_bwd_data(dy, w, x.shape, strides=s, padding=p, dilation=d)
    assert_close(dx, xt.grad.numpy().transpose(0, 2, 3, 1), terms, "dx")
    dw_, db = K.conv2d_bwd_filter(x, dy, w.shape[:2], strides=s, padding=p, dilation=d)
    pixels = y.shape[0] * y.shape[1] * y.shape[2]
    assert_close(dw_, wt.grad.numpy().transpose(2, 3, 1, 0), pixels, "dw")
    assert_close(db, bt.grad.numpy(), pixels, "db")


@pytest.mark.parametrize(
    "case",
    [
        (2, 9, 8, 3, 6, 3, 3, 1, "same", 1),
        (2, 9, 8, 12, 6, 3, 3, 2, "valid", 1),
        (1, 8, 8, 40, 40, 1, 1, 1, "valid", 1),
    ],
    ids=_ids,
)
def test_conv2d_nonfinite_stays_in_its_receptive_field(case, isa):
    """One NaN and one Inf in x poison exactly the outputs and weight gradients the
    reference says (the band layout computes extra pixels that must never leak)."""
    s, p, d = case[7:]
    x, w, _, rng = _arrays(case)
    x[0, 2, 3, 0] = np.nan
    x[-1, -1, -1, -1] = np.inf
    y = K.conv2d_fwd(x, w, strides=s, padding=p, dilation=d)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    with np.errstate(invalid="ignore"):
        ref_y, _, ref_dw, _ = ref_conv2d(x, w, None, s, p, d, dy=dy)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref_y))
    dw, _ = K.conv2d_bwd_filter(x, dy, w.shape[:2], strides=s, padding=p, dilation=d)
    np.testing.assert_array_equal(np.isfinite(dw), np.isfinite(ref_dw))


def test_conv2d_bitwise_identical_for_any_thread_count(isa):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 23, 19, 24)).astype(np.float32)
    w = rng.standard_normal((3, 3, 24, 40)).astype(np.float32)
    dy = rng.standard_normal((5, 23, 19, 40)).astype(np.float32)
    before = fastnn.get_num_threads()
    results = []
    try:
        for nt in (1, 2, 3, 4, 7):
            fastnn.set_num_threads(nt)
            results.append(
                (
                    K.conv2d_fwd(x, w, padding="same"),
                    K.conv2d_bwd_data(dy, w, x.shape, padding="same"),
                    *K.conv2d_bwd_filter(x, dy, (3, 3), padding="same"),
                )
            )
    finally:
        fastnn.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


def test_conv2d_concurrent_python_threads(n_threads):
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((3, 12, 11, 8)).astype(np.float32) for _ in range(4)]
    w = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    serial = [K.conv2d_fwd(x, w, padding="same") for x in xs]
    out = [None] * 4

    def run(i):
        for _ in range(5):
            out[i] = K.conv2d_fwd(xs[i], w, padding="same")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, out):
        np.testing.assert_array_equal(a, b)


def test_conv2d_out_arguments():
    x, w, b, rng = _arrays((2, 6, 6, 3, 4, 3, 3, 1, "same", 1))
    y = np.full((2, 6, 6, 4), np.nan, np.float32)
    assert K.conv2d_fwd(x, w, b, y, padding="same") is y
    np.testing.assert_allclose(y, ref_conv2d(x, w, b, padding="same"), atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    assert K.conv2d_bwd_data(dy, w, x.shape, dx, padding="same") is dx
    dw, db = np.full(w.shape, np.nan, np.float32), np.full(4, np.nan, np.float32)
    r = K.conv2d_bwd_filter(x, dy, (3, 3), dw, db, padding="same")
    assert r[0] is dw and r[1] is db and np.isfinite(dx).all() and np.isfinite(dw).all()
    assert K.conv2d_bwd_filter(x, dy, (3, 3), padding="same", bias=False)[1] is None


# --- the lenient edge: fastnn.ops ----------------------------------------------------------


def test_ops_take_any_layout():
    x, w, b, rng = _arrays((2, 7, 6, 3, 5, 3, 3, 1, "same", 1))
    expected = ops.conv2d(x, w, b, padding="same", activation="relu")
    xf = np.asfortranarray(x)
    xs = np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    for xv in (xf, xs, x[:, ::1]):
        np.testing.assert_array_equal(
            ops.conv2d(xv, w, b, padding="same", activation="relu"), expected
        )
    np.testing.assert_array_equal(expected, np.maximum(ops.conv2d(x, w, b, padding="same"), 0))
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    np.testing.assert_array_equal(
        ops.conv2d_backward_input(np.asfortranarray(dy), w, x.shape, padding="same"),
        K.conv2d_bwd_data(dy, w, x.shape, padding="same"),
    )
    dw, db = ops.conv2d_backward_filter(xs, dy, (3, 3), padding="same")
    dw2, db2 = K.conv2d_bwd_filter(x, dy, (3, 3), padding="same")
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)
    assert ops.conv2d_backward_filter(x, dy, 3, padding="same", use_bias=False)[1] is None


def test_ops_errors():
    x = np.zeros((1, 5, 5, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    with pytest.raises(TypeError, match="conv2d: x must be float32, received float64"):
        ops.conv2d(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="conv2d: kernel must be float32"):
        ops.conv2d(x, w.astype(np.int32))
    with pytest.raises(ValueError, match=r"conv2d: x must be 4-D \(batch"):
        ops.conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"conv2d: kernel.shape\[2\] \(in_channels\)"):
        ops.conv2d(x, w[:, :, :2])
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\)"):
        ops.conv2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="conv2d: activation must be None or one of"):
        ops.conv2d(x, w, activation="softmax")
    with pytest.raises(ValueError, match="conv2d: with padding='valid' the kernel"):
        ops.conv2d(x, np.zeros((6, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="conv2d: strides must be positive ints"):
        ops.conv2d(x, w, strides=0)
    with pytest.raises(ValueError, match="conv2d: padding must be one of"):
        ops.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="conv2d_backward_input: input_shape must be"):
        ops.conv2d_backward_input(np.zeros((1, 3, 3, 4), np.float32), w, (5, 5, 3))
    with pytest.raises(ValueError, match=r"conv2d_backward_input: dy must have shape"):
        ops.conv2d_backward_input(np.zeros((1, 4, 3, 4), np.float32), w, x.shape)
    with pytest.raises(ValueError, match=r"conv2d_backward_filter: dy must have shape"):
        ops.conv2d_backward_filter(x, np.zeros((1, 4, 3, 4), np.float32), 3)


def test_strict_wrapper_errors():
    x = np.zeros((1, 5, 5, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    dy = np.zeros((1, 3, 3, 4), np.float32)
    with pytest.raises(TypeError, match="conv2d_fwd: x must be a numpy.ndarray"):
        K.conv2d_fwd(x.tolist(), w)
    with pytest.raises(TypeError, match="conv2d_fwd: w must be float32"):
        K.conv2d_fwd(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="conv2d_fwd: x must be C-contiguous"):
        K.conv2d_fwd(np.asfortranarray(np.zeros((2, 5, 5, 3), np.float32)), w)
    with pytest.raises(ValueError, match=r"conv2d_fwd: w.shape\[2\] \(input channels\)"):
        K.conv2d_fwd(x, w[:, :, :1].copy())
    with pytest.raises(ValueError, match=r"conv2d_fwd: bias must have shape \(4,\)"):
        K.conv2d_fwd(x, w, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="conv2d_fwd: act must be one of"):
        K.conv2d_fwd(x, w, act=7)
    with pytest.raises(ValueError, match="conv2d_fwd: dilation must be an int or a pair"):
        K.conv2d_fwd(x, w, dilation=(1, 2, 3))
    with pytest.raises(ValueError, match="conv2d_fwd: strides must be positive ints"):
        K.conv2d_fwd(x, w, strides=(1, True))
    with pytest.raises(ValueError, match=r"conv2d_fwd: out must have shape \(1, 3, 3, 4\)"):
        K.conv2d_fwd(x, w, out=np.zeros((1, 3, 3, 5), np.float32))
    with pytest.raises(ValueError, match="conv2d_fwd: out overlaps input 0"):
        big = np.zeros(200, np.float32)
        K.conv2d_fwd(big[:75].reshape(1, 5, 5, 3), w, out=big[:36].reshape(1, 3, 3, 4))
    with pytest.raises(ValueError, match="conv2d_bwd_data: input_shape must hold non-negative"):
        K.conv2d_bwd_data(dy, w, (1, -5, 5, 3))
    with pytest.raises(ValueError, match=r"conv2d_bwd_data: input_shape\[3\] \(4\) must equal"):
        K.conv2d_bwd_data(dy, w, (1, 5, 5, 4))
    with pytest.raises(ValueError, match=r"conv2d_bwd_data: dy must have shape \(1, 3, 3, 4\)"):
        K.conv2d_bwd_data(dy[:, :2].copy(), w, x.shape)
    with pytest.raises(ValueError, match="conv2d_bwd_filter: kernel_size must be an int or"):
        K.conv2d_bwd_filter(x, dy, "3x3")
    with pytest.raises(ValueError, match=r"conv2d_bwd_filter: dy must have shape \(1, 4, 4, 4\)"):
        K.conv2d_bwd_filter(x, dy, 2)
    with pytest.raises(ValueError, match="conv2d_bwd_filter: out_bias given with bias=False"):
        K.conv2d_bwd_filter(x, dy, 3, out_bias=np.zeros(4, np.float32), bias=False)
    with pytest.raises(ValueError, match="conv2d: input_shape must be a 4-tuple"):
        K.conv2d_output_shape((5, 5, 3), 3, 4)


@pytest.mark.parametrize("act", ["elu", "leaky_relu"])
def test_ops_conv2d_activation_uses_keras_default_alpha(act):
    """Found by tests/test_fuzz_ops.py: ops.conv2d passed act_alpha=0 to the kernel, so 'elu'
    and 'leaky_relu' computed relu on negative inputs; Keras's alphas are 1.0 and 0.2."""
    x = np.linspace(-3, 2, 2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    w = np.random.default_rng(0).standard_normal((3, 3, 3, 4)).astype(np.float32)
    got = ops.conv2d(x, w, padding="same", activation=act)
    want = getattr(fastnn.activations, act)(ops.conv2d(x, w, padding="same"))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert (got < 0).any()
