"""Activations forward and backward, softmax rows and the bias gradient (csrc/eltwise*.c):
every ISA, 1 and 4 threads, against float64 references, in ulps."""

import numpy as np
import pytest
from _ref_eltwise import act_backward_from_y, act_derivative, act_forward, assert_ulp

import fastnn
from fastnn import _kernels as K


@pytest.fixture(autouse=True)
def ieee_denormals():
    """These tests judge subnormal results in ulps: they run in IEEE mode (gradual underflow).
    The default flush-to-zero mode is tested in tests/test_numbers.py."""
    before = fastnn.get_flush_denormals()
    fastnn.set_flush_denormals(False)
    yield
    fastnn.set_flush_denormals(before)


ACTS = ("linear", "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu")
ALPHA = {"elu": 1.0, "leaky_relu": float(np.float32(0.2))}  # exact in float32
# Max error in float32 ulps of the float64 result (see the header of csrc/eltwise_avx2.c).
# The ref kernels use libm (gelu in double); the vector kernels polynomial approximations.
# Results below FLT_MIN are judged in units of the smallest subnormal (ulp_error); gelu's
# vector Phi(x) turns subnormal for x < -13, hence GELU_TINY.
FWD_ULP = {"linear": 0, "relu": 0, "leaky_relu": 0.5, "sigmoid": 3, "tanh": 3, "elu": 2, "gelu": 7}
# Sizes: empty, one, around the 8- and 16-lane vectors, primes; 300007 runs on several threads.
SIZES = (0, 1, 7, 8, 15, 16, 17, 31, 97, 1031, 300007)
SPECIALS = np.array(
    [
        np.nan,
        np.inf,
        -np.inf,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e-40,
        -1e-40,
        88.0,
        -88.0,
        104.0,
        -104.0,
        3e38,
        -3e38,
    ],
    np.float32,
)


GELU_TINY = 2.0**-118  # |gelu| below this: absolute error <= 2^-138 instead of ulps


def check_fwd(y, x, name, what):
    ref = act_forward(name, x, ALPHA.get(name, 0.0))
    if name == "gelu":
        tiny = np.abs(ref) < GELU_TINY
        assert np.all(np.abs(y[tiny] - ref[tiny]) <= 2.0**-138), what
        y, ref = y[~tiny], ref[~tiny]
    assert_ulp(y, ref, FWD_ULP[name], what)


def act_id(name: str) -> int:
    return K.ACTIVATIONS.index(name)


def inputs(rng, n: int) -> np.ndarray:
    """Normal(0, 4) values with the special values sprinkled in."""
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    k = min(n, SPECIALS.size)
    x[rng.permutation(n)[:k]] = SPECIALS[:k]
    return x


# --- forward ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", ACTS)
def test_act_fwd_matches_float64(isa, n_threads, rng, name, n):
    x = inputs(rng, n)
    y = K.act_fwd(x, act=act_id(name), act_alpha=ALPHA.get(name, 0.0))
    assert y.shape == x.shape and y.dtype == np.float32
    check_fwd(y, x, name, f"{isa} {name}")


@pytest.mark.parametrize("name", ACTS)
def test_act_fwd_dense_grid(isa, name):
    """Every float32 step of [-20, 20] at a stride that hits all binades near 0."""
    x = np.concatenate(
        [
            np.linspace(-20, 20, 400_001),
            np.geomspace(1e-38, 20, 20_000),
            -np.geomspace(1e-38, 20, 20_000),
        ]
    ).astype(np.float32)
    y = K.act_fwd(x, act=act_id(name), act_alpha=ALPHA.get(name, 0.0))
    check_fwd(y, x, name, f"{isa} {name}")


@pytest.mark.parametrize("name", ACTS)
def test_act_fwd_special_values(isa, name):
    x = np.tile(SPECIALS, 3)  # 45 values: vector bodies and scalar tails both see them
    y = K.act_fwd(x, act=act_id(name), act_alpha=ALPHA.get(name, 0.0))
    ref = act_forward(name, x, ALPHA.get(name, 0.0))
    assert np.array_equal(np.isnan(y), np.isnan(ref)), "NaN must propagate, and only NaN"
    inf = np.isinf(ref)
    assert np.array_equal(y[inf], ref[inf])
    check_fwd(y, x, name, f"{isa} {name}")


def test_relu_nan_and_signed_zero(isa):
    x = np.array([np.nan, -0.0, 0.0, -1.0] * 5, np.float32)
    y = K.act_fwd(x, act=act_id("relu"))
    assert np.isnan(y[::4]).all()
    assert not np.isnan(y[1::4]).any() and (y[3::4] == 0).all()


@pytest.mark.parametrize("name", ACTS + ("softmax",))
def test_act_fwd_in_place_and_out(isa, rng, name):
    x = rng.standard_normal((9, 37)).astype(np.float32)
    expected = K.act_fwd(x, act=act_id(name), act_alpha=0.3)
    out = np.full_like(x, np.nan)
    assert K.act_fwd(x, out, act=act_id(name), act_alpha=0.3) is out
    np.testing.assert_array_equal(out, expected)
    same = x.copy()
    assert K.act_fwd(same, same, act=act_id(name), act_alpha=0.3) is same
    np.testing.assert_array_equal(same, expected)


@pytest.mark.parametrize(
    "shape", [(0, 5), (3, 0), (1, 1), (1, 10), (64, 10), (5, 17), (3, 1031), (2, 3, 33), (257, 100)]
)
def test_softmax_rows(isa, n_threads, rng, shape):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    y = K.act_fwd(x, act=act_id("softmax"))
    assert y.shape == shape
    if y.size == 0:
        return
    ref = act_forward("softmax", x)
    # x - max rounds in float32 (as in every float32 softmax): relative error up to
    # |x - max| * 2^-24, about 2e-6 at this spread, plus the exp and normalisation ulps.
    np.testing.assert_allclose(y, ref, rtol=5e-6, atol=1e-7 / shape[-1])
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


def test_softmax_stable_and_nan(isa):
    x = np.array(
        [
            [1e30, 0.0, -1e30, 3e38],
            [-np.inf, 0.0, 1.0, -np.inf],
            [np.nan, 0.0, 1.0, 2.0],
            [1000.0, 1000.0, 1000.0, 1000.0],
        ],
        np.float32,
    )
    x = np.repeat(x, 5, axis=1)  # 20 columns: vector body plus tail
    y = K.act_fwd(x, act=act_id("softmax"))
    assert np.isfinite(y[[0, 1, 3]]).all()
    np.testing.assert_allclose(y[[0, 1, 3]].sum(axis=1), 1.0, rtol=1e-6)
    assert np.isnan(y[2]).all(), "a NaN in a row makes the row NaN"
    np.testing.assert_allclose(y[3], 1 / 20, rtol=1e-6)


def test_softmax_1d_and_0d(isa):
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_allclose(K.act_fwd(x, act=7), act_forward("softmax", x), rtol=1e-6)
    assert K.act_fwd(np.array(3.0, np.float32), act=7) == 1.0


# --- backward ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", ACTS)
def test_act_bwd_matches_float64(isa, n_threads, rng, name, n):
    alpha = ALPHA.get(name, 0.0)
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    y = K.act_fwd(x, act=act_id(name), act_alpha=alpha)
    dy = rng.standard_normal(n).astype(np.float32)
    dx = K.act_bwd(y, dy, act=act_id(name), act_alpha=alpha, preact=x)
    ref = act_backward_from_y(name, y, dy, alpha, preact=x)
    # gelu: the derivative itself is ~3 ulp (vector Phi), then times dy; near its zero at
    # x = -0.75 the ulp scale of the product is tiny, so compare on an absolute scale too.
    if name == "gelu":
        np.testing.assert_allclose(dx, ref, rtol=1e-6, atol=2e-7 * np.abs(dy).max(initial=0))
    else:
        assert_ulp(dx, ref, 2.5, f"{isa} {name}'")  # up to 4 float32 roundings


@pytest.mark.parametrize("shape", [(1, 1), (4, 7), (33, 10), (3, 1031), (300, 64)])
def test_softmax_bwd(isa, n_threads, rng, shape):
    y = K.act_fwd(rng.standard_normal(shape).astype(np.float32), act=act_id("softmax"))
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = K.act_bwd(y, dy, act=act_id("softmax"))
    ref = act_backward_from_y("softmax", y, dy)
    np.testing.assert_allclose(dx, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ACTS + ("softmax",))
def test_act_bwd_finite_differences(isa, rng, name):
    """The kernel's gradient of L = sum(w * act(x)) against float64 central differences of
    the float64 forward: checks the formulas, not just their implementation."""
    alpha = ALPHA.get(name, 0.0)
    x = rng.standard_normal((3, 11)) * 2
    x[np.abs(x) < 0.05] = 0.3  # keep relu & co. away from their kink
    w = rng.standard_normal(x.shape)
    x32 = x.astype(np.float32)
    y = K.act_fwd(x32, act=act_id(name), act_alpha=alpha)
    dx = K.act_bwd(y, w.astype(np.float32), act=act_id(name), act_alpha=alpha, preact=x32)
    h = 1e-6
    fd = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fd[i] = (
            np.sum(w * act_forward(name, xp, alpha)) - np.sum(w * act_forward(name, xm, alpha))
        ) / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("name", ACTS)
def test_act_bwd_nan_propagates(isa, name):
    y = np.array([np.nan, 1.0, -0.5, 0.0] * 9, np.float32)
    dy = np.ones_like(y)
    preact = y.copy()
    dx = K.act_bwd(y, dy, act=act_id(name), act_alpha=ALPHA.get(name, 0.0), preact=preact)
    if name != "linear":
        assert np.isnan(dx[::4]).all()
    assert not np.isnan(dx[1::4]).any()


def test_act_bwd_in_place(isa, rng):
    y = K.act_fwd(rng.standard_normal(100).astype(np.float32), act=act_id("tanh"))
    dy = rng.standard_normal(100).astype(np.float32)
    expected = K.act_bwd(y, dy, act=act_id("tanh"))
    assert K.act_bwd(y, dy, dy, act=act_id("tanh")) is dy
    np.testing.assert_array_equal(dy, expected)


def test_gelu_bwd_without_y(isa, rng):
    x = rng.standard_normal(50).astype(np.float32)
    dx = K.act_bwd(None, np.ones_like(x), act=act_id("gelu"), preact=x)
    np.testing.assert_allclose(dx, act_derivative("gelu", x), rtol=1e-6, atol=2e-7)


# --- threads, ISAs, GEMM epilogue ---------------------------------------------------------------


@pytest.mark.parametrize("name", ACTS + ("softmax",))
def test_thread_count_does_not_change_bits(isa, rng, name):
    x = (rng.standard_normal((1001, 301)) * 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    before = fastnn.get_num_threads()
    runs = []
    try:
        for nt in (1, 2, 3, 4):
            fastnn.set_num_threads(nt)
            y = K.act_fwd(x, act=act_id(name), act_alpha=0.2)
            runs.append((y, K.act_bwd(y, dy, act=act_id(name), act_alpha=0.2, preact=x)))
    finally:
        fastnn.set_num_threads(before)
    for y, dx in runs[1:]:
        np.testing.assert_array_equal(y, runs[0][0])
        np.testing.assert_array_equal(dx, runs[0][1])


@pytest.mark.parametrize("name", ACTS)
def test_gemm_epilogue_uses_the_same_activation(isa, n_threads, rng, name):
    """gemm(act=...) fuses the ISA's activation per tile: the same bits as act_fwd on the
    linear result (no element's value depends on where it sits in a vector)."""
    a = rng.standard_normal((37, 29)).astype(np.float32)
    b = rng.standard_normal((29, 53)).astype(np.float32)
    bias = rng.standard_normal(53).astype(np.float32)
    alpha = ALPHA.get(name, 0.0)
    z = K.gemm(a, b, bias=bias)
    fused = K.gemm(a, b, bias=bias, act=act_id(name), act_alpha=alpha)
    np.testing.assert_array_equal(fused, K.act_fwd(z, act=act_id(name), act_alpha=alpha))
    check_fwd(fused, z, name, f"{isa} gemm+{name}")


@pytest.mark.parametrize("name", ACTS)
def test_result_does_not_depend_on_position(isa, rng, name):
    x = (rng.standard_normal(103) * 4).astype(np.float32)
    whole = K.act_fwd(x, act=act_id(name), act_alpha=ALPHA.get(name, 0.0))
    for start in (1, 3, 9, 17, 50):
        part = K.act_fwd(x[start:].copy(), act=act_id(name), act_alpha=ALPHA.get(name, 0.0))
        np.testing.assert_array_equal(part, whole[start:])


# --- bias gradient ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(0, 5), (5, 0), (1, 1), (128, 10), (3, 1031), (1000, 3), (257, 600), (65, 17)]
)
def test_bias_grad(isa, n_threads, rng, shape):
    dy = rng.standard_normal(shape).astype(np.float32)
    out = np.full(shape[1], np.nan, np.float32)
    db = K.bias_grad(dy, out)
    assert db is out
    ref = dy.astype(np.float64).sum(axis=0)
    tol = 1e-6 * np.sqrt(max(shape[0], 1)) * np.abs(dy).sum(axis=0).max(initial=0) + 1e-30
    np.testing.assert_allclose(db, ref, rtol=0, atol=tol)


def test_bias_grad_fixed_order(isa, rng):
    dy = rng.standard_normal((3001, 700)).astype(np.float32)
    before = fastnn.get_num_threads()
    try:
        results = []
        for nt in (1, 2, 4):
            fastnn.set_num_threads(nt)
            results.append(K.bias_grad(dy))
    finally:
        fastnn.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


# --- cross-check with PyTorch -------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTS + ("softmax",))
def test_torch_cross_check(isa, rng, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fns = {
        "linear": lambda t: t,
        "relu": F.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": F.gelu,
        "elu": F.elu,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
        "softmax": lambda t: F.softmax(t, dim=-1),
    }
    alpha = ALPHA.get(name, 0.0)
    x = (rng.standard_normal((16, 41)) * 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = fns[name](tx)
    ty.backward(torch.from_numpy(dy))
    y = K.act_fwd(x, act=act_id(name), act_alpha=alpha)
    dx = K.act_bwd(y, dy, act=act_id(name), act_alpha=alpha, preact=x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-5)


# --- errors ---------------------------------------------------------------------------------------


def test_errors():
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(TypeError, match="act_fwd: x must be float32, received float64"):
        K.act_fwd(x.astype(np.float64), act=1)
    with pytest.raises(TypeError, match="act_fwd: x must be a numpy.ndarray"):
        K.act_fwd([1.0], act=1)
    with pytest.raises(ValueError, match="act_fwd: x must be C-contiguous"):
        K.act_fwd(np.zeros((5, 4), np.float32).T, act=1)
    with pytest.raises(ValueError, match=r"act_fwd: act must be an index into ACTIVATIONS"):
        K.act_fwd(x, act=8)
    with pytest.raises(ValueError, match=r"act_fwd: out must have shape \(4, 5\)"):
        K.act_fwd(x, np.zeros((5, 4), np.float32), act=1)
    with pytest.raises(ValueError, match="act_fwd: out overlaps input 0"):
        big = np.zeros(40, np.float32)
        K.act_fwd(big[:20].reshape(4, 5), big[10:30].reshape(4, 5), act=1)
    with pytest.raises(ValueError, match="act_bwd: gelu needs preact"):
        K.act_bwd(x, x.copy(), act=4)
    with pytest.raises(ValueError, match="act_bwd: relu needs y"):
        K.act_bwd(None, x, act=1)
    with pytest.raises(ValueError, match=r"act_bwd: y must have the shape of dy \(4, 5\)"):
        K.act_bwd(np.zeros((5, 4), np.float32), x, act=1)
    with pytest.raises(ValueError, match=r"act_bwd: preact must have the shape of dy"):
        K.act_bwd(None, x, act=4, preact=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="act_bwd: elu backward needs act_alpha >= 0"):
        K.act_bwd(x, x.copy(), act=5, act_alpha=-1.0)
    with pytest.raises(ValueError, match="act_bwd: leaky_relu backward needs act_alpha >= 0"):
        K.act_bwd(x, x.copy(), act=6, act_alpha=-0.1)
    with pytest.raises(ValueError, match="act_bwd: out overlaps input 0"):
        K.act_bwd(x, x.copy(), x, act=1)
    with pytest.raises(ValueError, match="bias_grad: dy must be 2-D"):
        K.bias_grad(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"bias_grad: out must have shape \(5,\)"):
        K.bias_grad(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="act_fwd: out must be writeable"):
        ro = np.zeros((4, 5), np.float32)
        ro.flags.writeable = False
        K.act_fwd(x, ro, act=1)


def test_concurrent_python_threads(rng):
    """Kernels release the GIL and keep no static state: 4 Python threads at once give the
    serial results."""
    from concurrent.futures import ThreadPoolExecutor

    xs = [(rng.standard_normal((300, 257)) * 3).astype(np.float32) for _ in range(8)]
    names = ["gelu", "tanh", "softmax", "sigmoid"] * 2

    def work(i):
        y = K.act_fwd(xs[i], act=act_id(names[i]))
        return y, K.act_bwd(y, xs[i], act=act_id(names[i]), preact=xs[i]), K.bias_grad(y)

    serial = [work(i) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(work, range(8)))
    for a, b in zip(serial, parallel):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
