"""LSTM kernels (csrc/rnn_*.c) against a float64 NumPy reference, finite differences and
PyTorch's nn.LSTM: outputs, final states and every gradient, on every ISA and thread count."""

import threading

import numpy as np
import pytest
from _reference_lstm import ref_lstm, ref_lstm_grads

import fastnn
from fastnn import _kernels, ops

# --- helpers -----------------------------------------------------------------------------------

ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def make_case(rng, batch, time, features, units, states=True, bias=True, scale=0.5):
    def f32(*shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    return {
        "x": f32(batch, time, features),
        "kernel": f32(features, 4 * units, s=scale / np.sqrt(max(features, 1))),
        "rkernel": f32(units, 4 * units, s=scale / np.sqrt(units)),
        "bias": f32(4 * units, s=0.5) if bias else None,
        "h0": f32(batch, units) if states else None,
        "c0": f32(batch, units) if states else None,
        "dy": f32(batch, time, units),
        "dh": f32(batch, units),
        "dc": f32(batch, units),
    }


def assert_close(got, want, name, rtol=2e-5):
    """float32 result against a float64 reference, relative to the reference's scale."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.float32, f"{name}: dtype {got.dtype}"
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{name}: max abs error {err:.3g} > {rtol:g} * {scale:.3g}"


def run_kernels(c, act="tanh", ract="sigmoid", go_backwards=False, with_dy=True, h_mask=None):
    flags = {
        "activation": ACT_CODES[act],
        "recurrent_activation": ACT_CODES[ract],
        "go_backwards": go_backwards,
        "h_mask": h_mask,
    }
    y, h, cl, gates, c_seq = _kernels.lstm_fwd(
        c["x"], c["kernel"], c["rkernel"], c["bias"], c["h0"], c["c0"], training=True, **flags
    )
    grads = _kernels.lstm_bwd(
        c["x"],
        c["kernel"],
        c["rkernel"],
        c["h0"],
        c["c0"],
        y,
        c_seq,
        gates,
        c["dy"] if with_dy else None,
        c["dh"],
        c["dc"],
        need_dbias=c["bias"] is not None,
        **flags,
    )
    return (y, h, cl), grads


GRAD_NAMES = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0", "dc0")


def assert_matches_reference(c, fwd, grads, act="tanh", ract="sigmoid", **flags):
    """fwd = (y, h_last, c_last) and grads (in GRAD_NAMES order) against ref_lstm and
    ref_lstm_grads of case c with the same activations and flags (go_backwards, h_mask)."""
    args = (c["x"], c["kernel"], c["rkernel"], c["bias"], c["h0"], c["c0"])
    ry, rh, rc, _ = ref_lstm(*args, act, ract, **flags)
    for name, got, ref in zip(("y", "h_last", "c_last"), fwd, (ry, rh, rc)):
        assert_close(got, ref, name)
    want = ref_lstm_grads(*args, c["dy"], c["dh"], c["dc"], act, ract, **flags)
    for name, got, ref in zip(GRAD_NAMES, grads, want):
        assert_close(got, ref, name)


# (batch, time, features, units): time 1, batch 1, units off the register tiles (nr 16/32,
# mr 4/6/8/12), more rows than one micro-kernel tile; batches that fill the row tiles well
# (7, 13 and 16 on AVX-512, 16 and 25 on AVX2) take the fused-projection forward, the others
# the separate projection GEMM.
SHAPES = [(1, 1, 1, 1), (3, 1, 5, 7), (1, 6, 4, 16), (7, 5, 3, 37), (13, 4, 9, 33), (25, 3, 6, 65),
          (16, 3, 5, 40)]


# --- reference checks --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("states", [True, False])
def test_matches_reference(isa, n_threads, rng, shape, go_backwards, states):
    c = make_case(rng, *shape, states=states)
    fwd, grads = run_kernels(c, go_backwards=go_backwards)
    assert_matches_reference(c, fwd, grads, go_backwards=go_backwards)


@pytest.mark.parametrize(
    "act,ract", [("tanh", "sigmoid"), ("relu", "sigmoid"), ("linear", "tanh"), ("sigmoid", "relu")]
)
def test_activations(isa, rng, act, ract):
    c = make_case(rng, 6, 4, 5, 19, scale=0.3)
    fwd, grads = run_kernels(c, act=act, ract=ract)
    assert_matches_reference(c, fwd, grads, act=act, ract=ract)


def test_saturated_gates(isa, rng):
    """Large pre-activations: sigmoid and tanh saturate to exactly 0 / 1 without NaN."""
    c = make_case(rng, 4, 3, 3, 18, scale=60.0)
    (y, _h, cl), grads = run_kernels(c)
    ry, _, rc, _ = ref_lstm(c["x"], c["kernel"], c["rkernel"], c["bias"], c["h0"], c["c0"])
    assert_close(y, ry, "y")
    assert_close(cl, rc, "c_last")
    assert all(np.isfinite(g).all() for g in grads)


def test_reference_backward_matches_finite_differences(rng):
    """The float64 reference's BPTT against central differences of its own forward."""
    c = make_case(rng, 2, 3, 2, 3)
    args = {
        k: np.asarray(c[k], np.float64)
        for k in ("x", "kernel", "rkernel", "bias", "h0", "c0", "dy", "dh", "dc")
    }

    def loss(a):
        y, h, cl, _ = ref_lstm(
            a["x"], a["kernel"], a["rkernel"], a["bias"], a["h0"], a["c0"], go_backwards=True
        )
        return np.sum(y * a["dy"]) + np.sum(h * a["dh"]) + np.sum(cl * a["dc"])

    grads = ref_lstm_grads(
        *(args[k] for k in ("x", "kernel", "rkernel", "bias", "h0", "c0", "dy", "dh", "dc")),
        go_backwards=True,
    )
    for name, key, g in zip(GRAD_NAMES, ("x", "kernel", "rkernel", "bias", "h0", "c0"), grads):
        fd = np.zeros_like(args[key])
        for idx in np.ndindex(fd.shape):
            plus = {**args, key: args[key].copy()}
            minus = {**args, key: args[key].copy()}
            plus[key][idx] += 1e-6
            minus[key][idx] -= 1e-6
            fd[idx] = (loss(plus) - loss(minus)) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7, err_msg=name)


def test_kernel_gradients_match_finite_differences(isa, rng):
    """The float32 kernels' gradients against central differences of the float32 forward."""
    c = make_case(rng, 2, 3, 2, 3)
    (_, _, _), grads = run_kernels(c)

    def loss(k, v):
        a = {**c, k: v}
        y, h, cl, _, _ = _kernels.lstm_fwd(
            a["x"], a["kernel"], a["rkernel"], a["bias"], a["h0"], a["c0"]
        )
        return (
            np.sum(y.astype(np.float64) * c["dy"])
            + np.sum(h.astype(np.float64) * c["dh"])
            + np.sum(cl.astype(np.float64) * c["dc"])
        )

    eps = 1e-2
    for name, key, g in zip(GRAD_NAMES, ("x", "kernel", "rkernel", "bias", "h0", "c0"), grads):
        fd = np.zeros(c[key].shape)
        for idx in np.ndindex(fd.shape):
            plus, minus = c[key].copy(), c[key].copy()
            plus[idx] += eps
            minus[idx] -= eps
            fd[idx] = (loss(key, plus) - loss(key, minus)) / (2 * eps)
        np.testing.assert_allclose(g, fd, rtol=2e-3, atol=2e-3, err_msg=name)


@pytest.mark.parametrize("shape", [(7, 5, 3, 37), (25, 3, 6, 65)])
def test_recurrent_mask(isa, n_threads, rng, shape):
    """h_mask (recurrent dropout: zeros and 1/(1-rate)) against the reference."""
    c = make_case(rng, *shape)
    mask = (rng.random((shape[0], shape[3])) >= 0.3).astype(np.float32) / np.float32(0.7)
    fwd, grads = run_kernels(c, go_backwards=True, h_mask=mask)
    assert_matches_reference(c, fwd, grads, go_backwards=True, h_mask=mask)


# --- properties of the kernels -----------------------------------------------------------------


def test_inference_equals_training_forward(isa, rng):
    c = make_case(rng, 9, 5, 4, 21)
    args = (c["x"], c["kernel"], c["rkernel"], c["bias"], c["h0"], c["c0"])
    y, h, cl, _gates, c_seq = _kernels.lstm_fwd(*args, training=True)
    yi, hi, ci, gi, si = _kernels.lstm_fwd(*args)
    assert gi is None and si is None
    np.testing.assert_array_equal(yi, y)
    np.testing.assert_array_equal(hi, h)
    np.testing.assert_array_equal(ci, cl)
    np.testing.assert_array_equal(c_seq[:, -1], cl)
    y2, h2, c2, _, _ = _kernels.lstm_fwd(*args, return_sequences=False)
    assert y2 is None
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_array_equal(c2, cl)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("shape", [(50, 4, 20, 130), (3, 4, 20, 300)])
def test_bitwise_identical_for_any_thread_count(isa, rng, go_backwards, shape):
    """Big enough that the time loop runs on several threads (rows and units split). Batch 50
    fills the row tiles well: the forward fuses x_t @ kernel into each step's GEMM, and the
    threads of a row group pack x_t's columns between them; batch 3 does not: the separate
    projection GEMM before the loop."""
    c = make_case(rng, *shape, scale=0.3)
    results = []
    before = fastnn.get_num_threads()
    try:
        for nt in (1, 2, 3, 4, 7):
            fastnn.set_num_threads(nt)
            fwd, grads = run_kernels(c, go_backwards=go_backwards)
            results.append(fwd + grads)
    finally:
        fastnn.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_rows_do_not_depend_on_the_batch_they_run_in(isa, rng):
    """A batch that fills the row tiles fuses the input projection into each step; batch 1
    takes the separate projection GEMM. Both give the same bits, so predict's batch_size never
    changes a result."""
    c = make_case(rng, 40, 6, 24, 70)
    args = (c["kernel"], c["rkernel"], c["bias"])
    y, h, cl, _, _ = _kernels.lstm_fwd(c["x"], *args, c["h0"], c["c0"])
    for lo, hi in ((0, 1), (5, 6), (8, 16), (1, 40)):
        yb, hb, cb, _, _ = _kernels.lstm_fwd(c["x"][lo:hi].copy(), *args, c["h0"][lo:hi].copy(),
                                             c["c0"][lo:hi].copy())
        np.testing.assert_array_equal(yb, y[lo:hi])
        np.testing.assert_array_equal(hb, h[lo:hi])
        np.testing.assert_array_equal(cb, cl[lo:hi])


def test_degenerate_sizes(isa, rng):
    # time 0: the states pass straight through, the weights get zero gradients
    c = make_case(rng, 3, 0, 4, 5)
    y, h, cl, gates, c_seq = _kernels.lstm_fwd(
        c["x"], c["kernel"], c["rkernel"], c["bias"], c["h0"], c["c0"], training=True
    )
    assert y.shape == (3, 0, 5)
    np.testing.assert_array_equal(h, c["h0"])
    np.testing.assert_array_equal(cl, c["c0"])
    dx, dk, dr, db, dh0, dc0 = _kernels.lstm_bwd(
        c["x"], c["kernel"], c["rkernel"], c["h0"], c["c0"], y, c_seq, gates, None, c["dh"], c["dc"]
    )
    assert dx.shape == (3, 0, 4) and not dk.any() and not dr.any() and not db.any()
    np.testing.assert_array_equal(dh0, c["dh"])
    np.testing.assert_array_equal(dc0, c["dc"])
    # batch 0
    c = make_case(rng, 0, 3, 4, 5)
    y, h, cl, gates, c_seq = _kernels.lstm_fwd(
        c["x"], c["kernel"], c["rkernel"], c["bias"], training=True
    )
    assert y.shape == (0, 3, 5) and h.shape == (0, 5)
    grads = _kernels.lstm_bwd(c["x"], c["kernel"], c["rkernel"], None, None, y, c_seq, gates)
    assert not grads[1].any() and not grads[2].any() and not grads[3].any()
    # no input features: the gates see only the bias and the recurrence
    c = make_case(rng, 4, 3, 0, 6)
    (y, h, cl), grads = run_kernels(c)
    ry, _, _, _ = ref_lstm(c["x"], c["kernel"], c["rkernel"], c["bias"], c["h0"], c["c0"])
    assert_close(y, ry, "y")
    assert grads[0].shape == (4, 3, 0) and grads[1].shape == (0, 24)


def test_concurrent_calls_match_serial(rng):
    """Four Python threads in the kernels at once (GIL released) get the serial results."""
    cases = [make_case(rng, 8, 5, 6, 24 + i) for i in range(4)]
    serial = [run_kernels(c) for c in cases]
    out = [None] * 4

    def work(i):
        for _ in range(5):
            out[i] = run_kernels(cases[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for want, got in zip(serial, out):
        for a, b in zip(want[0] + want[1], got[0] + got[1]):
            np.testing.assert_array_equal(a, b)


def test_nan_propagates(rng):
    c = make_case(rng, 2, 3, 2, 5)
    c["x"][0, 1, 0] = np.nan
    y, _h, _, _, _ = _kernels.lstm_fwd(c["x"], c["kernel"], c["rkernel"], c["bias"])
    assert np.isnan(y[0, 1:]).all() and np.isfinite(y[1]).all() and np.isfinite(y[0, 0]).all()


# --- PyTorch cross-check -----------------------------------------------------------------------


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("shape", [(4, 6, 5, 19), (1, 1, 3, 8), (9, 7, 11, 40)])
def test_matches_torch(isa, n_threads, rng, shape, go_backwards):
    torch = pytest.importorskip("torch")
    c = make_case(rng, *shape)
    _batch, _time, features, units = shape
    lstm = torch.nn.LSTM(features, units, batch_first=True).double()
    with torch.no_grad():  # torch gates are i, f, g, o too; weights transposed, two biases
        lstm.weight_ih_l0.copy_(torch.from_numpy(c["kernel"].T.astype(np.float64)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(c["rkernel"].T.astype(np.float64)))
        lstm.bias_ih_l0.copy_(torch.from_numpy(c["bias"].astype(np.float64)))
        lstm.bias_hh_l0.zero_()
    x = torch.from_numpy(c["x"].astype(np.float64)).requires_grad_()
    h0 = torch.from_numpy(c["h0"].astype(np.float64))[None].requires_grad_()
    c0 = torch.from_numpy(c["c0"].astype(np.float64))[None].requires_grad_()
    y, (hn, cn) = lstm(x.flip(1) if go_backwards else x, (h0, c0))
    loss = (
        (y * torch.from_numpy(c["dy"])).sum()
        + (hn[0] * torch.from_numpy(c["dh"])).sum()
        + (cn[0] * torch.from_numpy(c["dc"])).sum()
    )
    loss.backward()

    (fy, fh, fc), grads = run_kernels(c, go_backwards=go_backwards)
    assert_close(fy, y.detach().numpy(), "y")
    assert_close(fh, hn[0].detach().numpy(), "h_last")
    assert_close(fc, cn[0].detach().numpy(), "c_last")
    want = (
        x.grad.numpy(),
        lstm.weight_ih_l0.grad.numpy().T,
        lstm.weight_hh_l0.grad.numpy().T,
        lstm.bias_ih_l0.grad.numpy(),
        h0.grad[0].numpy(),
        c0.grad[0].numpy(),
    )
    for name, got, ref in zip(GRAD_NAMES, grads, want):
        assert_close(got, ref, name)


# --- the functional API (fastnn.ops) -----------------------------------------------------------


def test_ops_forward_backward(rng):
    c = make_case(rng, 5, 4, 3, 10)
    xf = np.asfortranarray(c["x"])  # any layout is taken; copied once
    out, h, cl, cache = ops.lstm_forward(
        xf, c["kernel"].T.copy().T, c["rkernel"], c["bias"], c["h0"], c["c0"], training=True
    )
    g = ops.lstm_backward(cache, c["dy"], c["dh"], c["dc"])
    assert_matches_reference(c, (out, h, cl), [getattr(g, name) for name in GRAD_NAMES])


def test_ops_last_output_no_bias_no_states(rng):
    c = make_case(rng, 3, 5, 4, 6, states=False, bias=False)
    out, h, _cl, cache = ops.lstm_forward(
        c["x"], c["kernel"], c["rkernel"], training=True, return_sequences=False, go_backwards=True
    )
    np.testing.assert_array_equal(out, h)
    g = ops.lstm_backward(cache, c["dh"], need_dx=False)
    assert g.dx is None and g.dbias is None and g.dh0 is None and g.dc0 is None
    want = ref_lstm_grads(
        c["x"], c["kernel"], c["rkernel"], None, None, None, None, c["dh"], None, go_backwards=True
    )
    assert_close(g.dkernel, want[1], "dkernel")
    assert_close(g.drecurrent_kernel, want[2], "drecurrent_kernel")
    _, _, _, none = ops.lstm_forward(c["x"], c["kernel"], c["rkernel"])
    assert none is None


# --- errors ------------------------------------------------------------------------------------


def test_errors_ops(rng):
    c = make_case(rng, 2, 3, 4, 5)
    with pytest.raises(TypeError, match="x must be float32, received float64"):
        ops.lstm_forward(c["x"].astype(np.float64), c["kernel"], c["rkernel"])
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.lstm_forward(c["x"], c["kernel"], c["rkernel"], activation="gelu")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        ops.lstm_forward(c["x"], c["kernel"], c["rkernel"], recurrent_activation="softmax")
    _, _, _, cache = ops.lstm_forward(
        c["x"], c["kernel"], c["rkernel"], training=True, return_sequences=False
    )
    with pytest.raises(TypeError, match="cache must be the LSTMCache"):
        ops.lstm_backward(None)
    with pytest.raises(ValueError, match=r"d_outputs must have shape \(2, 5\)"):
        ops.lstm_backward(cache, c["dy"])
    with pytest.raises(TypeError, match="dh_last must be float32"):
        ops.lstm_backward(cache, None, c["dh"].astype(np.float64))
    ops.lstm_backward(cache, c["dh"])
    with pytest.raises(ValueError, match="already used by a backward pass"):
        ops.lstm_backward(cache, c["dh"])


def test_errors_kernels(rng):
    c = make_case(rng, 2, 3, 4, 5)
    x, k, r = c["x"], c["kernel"], c["rkernel"]
    with pytest.raises(TypeError, match="lstm_fwd: x must be float32"):
        _kernels.lstm_fwd(x.astype(np.float16), k, r)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        _kernels.lstm_fwd(x.tolist(), k, r)
    with pytest.raises(ValueError, match="x must be 3-D"):
        _kernels.lstm_fwd(x[0], k, r)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        _kernels.lstm_fwd(x[:, ::2], k, r)
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(5, 20\)"):
        _kernels.lstm_fwd(x, k, r[:, :19].copy())
    with pytest.raises(ValueError, match=r"kernel must have shape \(4, 20\)"):
        _kernels.lstm_fwd(x, k[:3].copy(), r)
    with pytest.raises(ValueError, match=r"bias must have shape \(20,\)"):
        _kernels.lstm_fwd(x, k, r, np.zeros(21, np.float32))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 5\)"):
        _kernels.lstm_fwd(x, k, r, None, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 5\)"):
        _kernels.lstm_fwd(x, k, r, None, None, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"h_mask must have shape \(2, 5\)"):
        _kernels.lstm_fwd(x, k, r, h_mask=np.ones((2, 6), np.float32))
    with pytest.raises(ValueError, match="activation must be the code of one of"):
        _kernels.lstm_fwd(x, k, r, activation=4)
    with pytest.raises(ValueError, match="recurrent_activation must be the code of one of"):
        _kernels.lstm_bwd(x, k, r, None, None, None, None, None, recurrent_activation=7)
    y, _, _, gates, c_seq = _kernels.lstm_fwd(x, k, r, training=True)
    with pytest.raises(ValueError, match="lstm_bwd: gates is required"):
        _kernels.lstm_bwd(x, k, r, None, None, y, c_seq, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 5\)"):
        _kernels.lstm_bwd(x, k, r, None, None, y, c_seq, gates, y[:, :2].copy())
    frozen = gates.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="gates must be writeable"):
        _kernels.lstm_bwd(x, k, r, None, None, y, c_seq, frozen)
    inside_gates = np.lib.stride_tricks.as_strided(gates, y.shape, y.strides)
    with pytest.raises(ValueError, match="gates overlaps dy in memory"):
        _kernels.lstm_bwd(x, k, r, None, None, y, c_seq, gates, inside_gates)


def _unaligned(x, offset=2):
    buf = np.zeros(x.nbytes + offset, np.uint8)
    y = buf[offset:].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


def test_lstm_forward_copies_unaligned_inputs(rng):
    """Found by tests/test_fuzz_ops.py: the lenient op passed a float32 view at an odd byte
    offset through (np.ascontiguousarray keeps it) and the strict kernel refused it."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    k = rng.standard_normal((4, 8)).astype(np.float32)
    r = rng.standard_normal((2, 8)).astype(np.float32)
    mask = np.ones((2, 2), np.float32)
    want = ops.lstm_forward(x, k, r, recurrent_mask=mask)[0]
    got = ops.lstm_forward(_unaligned(x), _unaligned(k, 1), _unaligned(r, 3),
                           recurrent_mask=_unaligned(mask))[0]
    np.testing.assert_array_equal(got, want)
    layer = fastnn.layers.LSTM(2)
    np.testing.assert_array_equal(layer(_unaligned(x)), layer(x))
