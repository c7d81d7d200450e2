"""SimpleRNN kernels (the csrc/rnn_*.c driver with one gate) against a float64 NumPy reference,
finite differences and PyTorch's nn.RNN: outputs, final state and every gradient, on every ISA
and thread count."""

import numpy as np
import pytest
from _reference import numerical_grad
from _reference_lstm import ref_simple_rnn, ref_simple_rnn_grads
from test_lstm import SHAPES, assert_close

import fastnn
from fastnn import _kernels, ops

ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
GRAD_NAMES = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")
KEYS = ("x", "kernel", "rkernel", "bias", "h0")


def make_case(rng, batch, time, features, units, states=True, bias=True, scale=0.5, gates=1,
              bias_shape=None):
    """Arrays of one case; gates: column blocks of the weights; bias_shape: (gates*units,)
    unless given."""
    def f32(*shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    return {
        "x": f32(batch, time, features),
        "kernel": f32(features, gates * units, s=scale / np.sqrt(max(features, 1))),
        "rkernel": f32(units, gates * units, s=scale / np.sqrt(units)),
        "bias": f32(*(bias_shape or (gates * units,)), s=0.5) if bias else None,
        "h0": f32(batch, units) if states else None,
        "dy": f32(batch, time, units),
        "dh": f32(batch, units),
    }


def run_kernels(c, act="tanh", go_backwards=False, with_dy=True, h_mask=None):
    flags = {"activation": ACT_CODES[act], "go_backwards": go_backwards, "h_mask": h_mask}
    y, h = _kernels.simple_rnn_fwd(*(c[k] for k in KEYS), training=True, **flags)
    grads = _kernels.simple_rnn_bwd(
        c["x"], c["kernel"], c["rkernel"], c["h0"], y, c["dy"] if with_dy else None, c["dh"],
        need_dbias=c["bias"] is not None, **flags,
    )
    return (y, h), grads


def assert_matches_reference(c, fwd, grads, act="tanh", **flags):
    args = [c[k] for k in KEYS]
    ry, rh = ref_simple_rnn(*args, act, **flags)
    assert_close(fwd[0], ry, "y")
    assert_close(fwd[1], rh, "h_last")
    want = ref_simple_rnn_grads(*args, c["dy"], c["dh"], act, **flags)
    for name, got, ref in zip(GRAD_NAMES, grads, want):
        if got is not None or c["bias"] is not None:
            assert_close(got, ref, name)


# --- reference checks --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("states", [True, False])
def test_matches_reference(isa, n_threads, rng, shape, go_backwards, states):
    """states=False: no bias, no h0 and a recurrent-dropout mask (0 or 1/(1-rate))."""
    c = make_case(rng, *shape, states=states, bias=states)
    keep = rng.random((shape[0], shape[3])) >= 0.3
    mask = None if states else keep.astype(np.float32) / np.float32(0.7)
    fwd, grads = run_kernels(c, go_backwards=go_backwards, h_mask=mask)
    assert_matches_reference(c, fwd, grads, go_backwards=go_backwards, h_mask=mask)


@pytest.mark.parametrize("act", ["tanh", "relu", "linear", "sigmoid"])
def test_activations(isa, rng, act):
    c = make_case(rng, 6, 4, 5, 19, scale=0.3)
    fwd, grads = run_kernels(c, act=act)
    assert_matches_reference(c, fwd, grads, act=act)


def check_finite_differences(c, ref_forward, ref_grads, kernel_forward, run):
    """On case c (its KEYS arrays, dy, dh), go_backwards and a recurrent mask, for the loss
    sum(y * dy) + sum(h_last * dh): the float64 reference's BPTT (ref_grads) against central
    differences of ref_forward (tight), and the float32 kernels' gradients (run) against
    those of kernel_forward (loose)."""
    units = c["h0"].shape[1]
    mask = (np.arange(2 * units).reshape(2, units) % 3 != 1).astype(np.float32) * 2
    flags = {"go_backwards": True, "h_mask": mask}
    want = ref_grads(*(c[k] for k in KEYS), c["dy"], c["dh"], **flags)
    _, got = run(c, **flags)

    def loss(key, forward, cast):
        def f(v):
            y, h = forward(*({**c, key: cast(v)}[k] for k in KEYS), **flags)[:2]
            return np.sum(y * c["dy"], dtype=np.float64) + np.sum(h * c["dh"], dtype=np.float64)

        return f

    for name, key, w, g in zip(GRAD_NAMES, KEYS, want, got):
        fd = numerical_grad(loss(key, ref_forward, np.asarray), c[key])
        np.testing.assert_allclose(w, fd, rtol=1e-6, atol=1e-7, err_msg=name)
        fd32 = numerical_grad(loss(key, kernel_forward, np.float32), c[key], eps=1e-2)
        np.testing.assert_allclose(g, fd32, rtol=2e-3, atol=2e-3, err_msg=name)


def test_backward_matches_finite_differences(isa, rng):
    c = make_case(rng, 2, 3, 2, 3)
    check_finite_differences(c, ref_simple_rnn, ref_simple_rnn_grads, _kernels.simple_rnn_fwd,
                             run_kernels)


# --- properties of the kernels -----------------------------------------------------------------


def test_inference_equals_training_forward(isa, rng):
    c = make_case(rng, 9, 5, 4, 21)
    args = [c[k] for k in KEYS]
    y, h = _kernels.simple_rnn_fwd(*args, training=True)
    yi, hi = _kernels.simple_rnn_fwd(*args)
    np.testing.assert_array_equal(yi, y)
    np.testing.assert_array_equal(hi, h)
    np.testing.assert_array_equal(y[:, -1], h)
    y2, h2 = _kernels.simple_rnn_fwd(*args, return_sequences=False)
    assert y2 is None
    np.testing.assert_array_equal(h2, h)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("shape", [(64, 4, 20, 300), (3, 4, 20, 600)])
def test_bitwise_identical_for_any_thread_count(isa, n_threads, rng, go_backwards, shape):
    """Steps big enough for several time-loop threads: batch 64 fuses x_t @ kernel into each
    step's GEMM (rows and units split), batch 3 takes the projection GEMM (units split)."""
    c = make_case(rng, *shape, scale=0.3)
    assert_same_bits_on_one_thread(lambda: run_kernels(c, go_backwards=go_backwards))


def assert_same_bits_on_one_thread(run):
    """run() -> (outputs, gradients) at the n_threads fixture's count (which it restores
    afterwards) gives the bits of run() on one thread."""
    fwd, grads = run()
    fastnn.set_num_threads(1)
    fwd1, grads1 = run()
    for got, want in zip(fwd + grads, fwd1 + grads1):
        np.testing.assert_array_equal(got, want)


def test_rows_do_not_depend_on_the_batch_they_run_in(isa, rng):
    c = make_case(rng, 40, 6, 24, 70)
    y, h = _kernels.simple_rnn_fwd(*(c[k] for k in KEYS))
    for lo, hi in ((0, 1), (5, 6), (8, 16), (1, 40)):
        yb, hb = _kernels.simple_rnn_fwd(
            c["x"][lo:hi].copy(), c["kernel"], c["rkernel"], c["bias"], c["h0"][lo:hi].copy()
        )
        np.testing.assert_array_equal(yb, y[lo:hi])
        np.testing.assert_array_equal(hb, h[lo:hi])


def test_degenerate_sizes(isa, rng):
    # time 0: the state passes straight through, the weights get zero gradients
    c = make_case(rng, 3, 0, 4, 5)
    (y, h), (dx, dk, dr, db, dh0) = run_kernels(c)
    assert y.shape == (3, 0, 5) and dx.shape == (3, 0, 4)
    np.testing.assert_array_equal(h, c["h0"])
    assert not dk.any() and not dr.any() and not db.any()
    np.testing.assert_array_equal(dh0, c["dh"])
    # batch 0
    c = make_case(rng, 0, 3, 4, 5)
    (y, h), grads = run_kernels(c)
    assert y.shape == (0, 3, 5) and h.shape == (0, 5)
    assert not grads[1].any() and not grads[2].any() and not grads[3].any()
    # no input features: the recurrence and the bias only
    c = make_case(rng, 4, 3, 0, 6)
    fwd, grads = run_kernels(c)
    assert_matches_reference(c, fwd, grads)
    assert grads[0].shape == (4, 3, 0) and grads[1].shape == (0, 6)


def test_nan_propagates(rng):
    c = make_case(rng, 2, 3, 2, 5)
    c["x"][0, 1, 0] = np.nan
    y, _ = _kernels.simple_rnn_fwd(c["x"], c["kernel"], c["rkernel"], c["bias"])
    assert np.isnan(y[0, 1:]).all() and np.isfinite(y[1]).all() and np.isfinite(y[0, 0]).all()


# --- PyTorch cross-check -----------------------------------------------------------------------


def torch_outputs_and_grads(torch, module, weights, c, go_backwards):
    """Runs a batch_first torch RNN module (float64) on case c with its parameters set from
    `weights` (name -> float32 array); returns (y, h_last) and the gradients of
    sum(y * dy) + sum(h_last * dh) w.r.t. x, h0 and each named parameter, as NumPy."""
    module = module.double()
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(torch.from_numpy(np.asarray(value, np.float64)))
    x = torch.from_numpy(c["x"].astype(np.float64)).requires_grad_()
    h0 = torch.from_numpy(c["h0"].astype(np.float64))[None].requires_grad_()
    y, hn = module(x.flip(1) if go_backwards else x, h0)
    loss = (y * torch.from_numpy(c["dy"])).sum() + (hn[0] * torch.from_numpy(c["dh"])).sum()
    wrt = [x, h0] + [params[name] for name in weights]
    grads = [g.numpy() for g in torch.autograd.grad(loss, wrt)]
    return (y.detach().numpy(), hn[0].detach().numpy()), dict(zip(["x", "h0", *weights], grads))


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("shape", [(4, 6, 5, 19), (1, 1, 3, 8), (9, 7, 11, 40)])
def test_matches_torch(isa, n_threads, rng, shape, go_backwards, act):
    """torch.nn.RNN: weights transposed; its two biases add up to Keras's one."""
    torch = pytest.importorskip("torch")
    c = make_case(rng, *shape)
    module = torch.nn.RNN(shape[2], shape[3], nonlinearity=act, batch_first=True)
    weights = {
        "weight_ih_l0": c["kernel"].T,
        "weight_hh_l0": c["rkernel"].T,
        "bias_ih_l0": c["bias"],
        "bias_hh_l0": np.zeros_like(c["bias"]),
    }
    outputs, g = torch_outputs_and_grads(torch, module, weights, c, go_backwards)
    fwd, grads = run_kernels(c, act=act, go_backwards=go_backwards)
    for name, got, ref in zip(("y", "h_last"), fwd, outputs):
        assert_close(got, ref, name)
    want = (g["x"], g["weight_ih_l0"].T, g["weight_hh_l0"].T, g["bias_ih_l0"], g["h0"][0])
    for name, got, ref in zip(GRAD_NAMES, grads, want):
        assert_close(got, ref, name)


# --- the functional API (fastnn.ops) -----------------------------------------------------------


def test_ops_forward_backward(rng):
    c = make_case(rng, 5, 4, 3, 10)
    xf = np.asfortranarray(c["x"])  # any layout is taken; copied once
    out, h, cache = ops.simple_rnn_forward(
        xf, c["kernel"].T.copy().T, c["rkernel"], c["bias"], c["h0"], training=True
    )
    g = ops.simple_rnn_backward(cache, c["dy"], c["dh"])
    assert_matches_reference(c, (out, h), [getattr(g, name) for name in GRAD_NAMES])
    again = ops.simple_rnn_backward(cache, c["dy"], c["dh"])  # the cache is read only
    np.testing.assert_array_equal(again.dkernel, g.dkernel)


def test_ops_last_output_no_bias_no_state(rng):
    c = make_case(rng, 3, 5, 4, 6, states=False, bias=False)
    out, h, cache = ops.simple_rnn_forward(
        c["x"], c["kernel"], c["rkernel"], training=True, return_sequences=False,
        go_backwards=True, activation="relu",
    )
    np.testing.assert_array_equal(out, h)
    g = ops.simple_rnn_backward(cache, c["dh"], need_dx=False)
    assert g.dx is None and g.dbias is None and g.dh0 is None
    want = ref_simple_rnn_grads(
        c["x"], c["kernel"], c["rkernel"], None, None, None, c["dh"], "relu", go_backwards=True
    )
    assert_close(g.dkernel, want[1], "dkernel")
    assert_close(g.drecurrent_kernel, want[2], "drecurrent_kernel")
    assert ops.simple_rnn_forward(c["x"], c["kernel"], c["rkernel"])[2] is None


# --- errors ------------------------------------------------------------------------------------


def test_errors_ops(rng):
    c = make_case(rng, 2, 3, 4, 5)
    weights = (c["kernel"], c["rkernel"])
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.simple_rnn_forward(c["x"], *weights, activation="gelu")
    with pytest.raises(TypeError, match="x must be float32, received float64"):
        ops.simple_rnn_forward(c["x"].astype(np.float64), *weights)
    _, _, cache = ops.simple_rnn_forward(c["x"], *weights, training=True, return_sequences=False)
    with pytest.raises(TypeError, match="cache must be the SimpleRNNCache"):
        ops.simple_rnn_backward(None)
    with pytest.raises(ValueError, match=r"d_outputs must have shape \(2, 5\)"):
        ops.simple_rnn_backward(cache, c["dy"])
    with pytest.raises(ValueError, match=r"dh_last must have shape \(2, 5\)"):
        ops.simple_rnn_backward(cache, c["dh"], c["dh"][:, :4])
    with pytest.raises(TypeError, match="dh_last must be float32"):
        ops.simple_rnn_backward(cache, None, c["dh"].astype(np.float64))


_BAD_KERNEL_CALLS = [  # (arguments of simple_rnn_fwd as changes to a good call, error, match)
    ({"x": lambda x: x.astype(np.float16)}, TypeError, "simple_rnn_fwd: x must be float32"),
    ({"x": lambda x: x[:, ::2]}, ValueError, "x must be C-contiguous"),
    ({"r": lambda r: np.zeros((5, 20), np.float32)}, ValueError, r"kernel must have shape \(5, 5"),
    ({"k": lambda k: k[:3].copy()}, ValueError, r"kernel must have shape \(4, 5\)"),
    ({"bias": lambda _: np.zeros(6, np.float32)}, ValueError, r"bias must have shape \(5,\)"),
    ({"h0": lambda _: np.zeros((3, 5), np.float32)}, ValueError, r"h0 must have shape \(2, 5"),
    ({"h_mask": lambda _: np.ones((2, 6), np.float32)}, ValueError, r"h_mask must have shape"),
    ({"activation": lambda _: 4}, ValueError, "activation must be the code of one of"),
]


@pytest.mark.parametrize("change,error,match", _BAD_KERNEL_CALLS)
def test_errors_kernels(rng, change, error, match):
    c = make_case(rng, 2, 3, 4, 5)
    args = {"x": c["x"], "k": c["kernel"], "r": c["rkernel"], "bias": None, "h0": None}
    kwargs = {"h_mask": None, "activation": 3}
    for key, bad in change.items():
        target = args if key in args else kwargs
        target[key] = bad(target[key])
    with pytest.raises(error, match=match):
        _kernels.simple_rnn_fwd(*args.values(), **kwargs)


def test_errors_kernel_backward(rng):
    c = make_case(rng, 2, 3, 4, 5)
    x, k, r = c["x"], c["kernel"], c["rkernel"]
    y, _ = _kernels.simple_rnn_fwd(x, k, r, training=True)
    with pytest.raises(ValueError, match="simple_rnn_bwd: y is required"):
        _kernels.simple_rnn_bwd(x, k, r, None, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 5\)"):
        _kernels.simple_rnn_bwd(x, k, r, None, y, y[:, :2].copy())
