"""GRU kernels (the csrc/rnn_*.c driver with three gates, Keras's reset_after=True) against a
float64 NumPy reference, finite differences and PyTorch's nn.GRU: outputs, final state and
every gradient, on every ISA and thread count."""

import threading

import numpy as np
import pytest
from _reference_lstm import ref_gru, ref_gru_grads
from test_lstm import SHAPES, assert_close
from test_simple_rnn import (
    assert_same_bits_on_one_thread,
    check_finite_differences,
    torch_outputs_and_grads,
)
from test_simple_rnn import make_case as rnn_case
from test_simple_rnn import run_kernels as run_simple_rnn

from fastnn import _kernels, ops

ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
GRAD_NAMES = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")
KEYS = ("x", "kernel", "rkernel", "bias", "h0")


def make_case(rng, batch, time, features, units, states=True, scale=0.5):
    """states=False: no bias and no h0."""
    return rnn_case(rng, batch, time, features, units, states=states, bias=states, scale=scale,
                    gates=3, bias_shape=(2, 3 * units))


def run_kernels(c, act="tanh", ract="sigmoid", go_backwards=False, h_mask=None):
    flags = {"activation": ACT_CODES[act], "recurrent_activation": ACT_CODES[ract],
             "go_backwards": go_backwards, "h_mask": h_mask}
    y, h, gates, hn = _kernels.gru_fwd(*(c[k] for k in KEYS), training=True, **flags)
    grads = _kernels.gru_bwd(c["x"], c["kernel"], c["rkernel"], c["h0"], y, gates, hn, c["dy"],
                             c["dh"], need_dbias=c["bias"] is not None, **flags)
    return (y, h), grads


def check_against_reference(c, fwd, grads, act="tanh", ract="sigmoid", **flags):
    args = [c[k] for k in KEYS]
    want_fwd = ref_gru(*args, act, ract, **flags)[:2]
    want = ref_gru_grads(*args, c["dy"], c["dh"], act, ract, **flags)
    named = zip(("y", "h_last", *GRAD_NAMES), (*fwd, *grads), (*want_fwd, *want))
    for name, got, ref in named:
        if got is not None or name != "dbias":
            assert_close(got, ref, name)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("states", [True, False])
def test_matches_reference(isa, n_threads, rng, shape, go_backwards, states):
    """states=False: no bias, no h0 and a recurrent-dropout mask (0 or 1/(1-rate))."""
    c = make_case(rng, *shape, states=states)
    keep = rng.random((shape[0], shape[3])) >= 0.3
    mask = None if states else keep.astype(np.float32) / np.float32(0.7)
    fwd, grads = run_kernels(c, go_backwards=go_backwards, h_mask=mask)
    check_against_reference(c, fwd, grads, go_backwards=go_backwards, h_mask=mask)


def test_activations(isa, rng):
    """Each supported activation as act and as ract, against the reference."""
    for act, ract in (("relu", "sigmoid"), ("linear", "tanh"), ("sigmoid", "relu"),
                      ("tanh", "linear")):
        c = make_case(rng, 6, 4, 5, 19, scale=0.3)
        check_against_reference(c, *run_kernels(c, act=act, ract=ract), act=act, ract=ract)


def test_backward_matches_finite_differences(isa, rng):
    c = make_case(rng, 2, 3, 2, 3)
    check_finite_differences(c, ref_gru, ref_gru_grads, _kernels.gru_fwd, run_kernels)


def test_inference_equals_training_forward(isa, rng):
    c = make_case(rng, 9, 5, 4, 21)
    args = [c[k] for k in KEYS]
    y, h, _, _ = _kernels.gru_fwd(*args, training=True)
    yi, hi, gi, ni = _kernels.gru_fwd(*args)
    assert gi is None and ni is None
    np.testing.assert_array_equal(yi, y)
    np.testing.assert_array_equal(hi, h)
    y2, h2, _, _ = _kernels.gru_fwd(*args, return_sequences=False)
    assert y2 is None
    np.testing.assert_array_equal(h2, h)


@pytest.mark.parametrize(
    "shape,go_backwards", [((64, 4, 20, 160), False), ((3, 4, 20, 400), True)]
)
def test_bitwise_identical_for_any_thread_count(isa, n_threads, rng, shape, go_backwards):
    """Several time-loop threads (batch 64: the fused input projection, rows and units split;
    batch 3: the projection GEMM, units split), with a recurrent mask."""
    c = make_case(rng, *shape, scale=0.3)
    mask = (rng.random((shape[0], shape[3])) >= 0.2).astype(np.float32) * np.float32(1.25)
    assert_same_bits_on_one_thread(
        lambda: run_kernels(c, go_backwards=go_backwards, h_mask=mask)
    )


def test_rows_do_not_depend_on_the_batch_they_run_in(isa, rng):
    c = make_case(rng, 40, 6, 24, 70)
    y, h, _, _ = _kernels.gru_fwd(*(c[k] for k in KEYS))
    for lo, hi in ((0, 1), (5, 6), (8, 16), (1, 40)):
        part = {**c, "x": c["x"][lo:hi].copy(), "h0": c["h0"][lo:hi].copy()}
        yb, hb, _, _ = _kernels.gru_fwd(*(part[k] for k in KEYS))
        np.testing.assert_array_equal(yb, y[lo:hi])
        np.testing.assert_array_equal(hb, h[lo:hi])


def test_degenerate_sizes(isa, rng):
    c = make_case(rng, 3, 0, 4, 5)  # time 0: h0 passes through, zero weight gradients
    (y, h), (dx, dk, dr, db, dh0) = run_kernels(c)
    assert y.shape == (3, 0, 5) and dx.shape == (3, 0, 4) and db.shape == (2, 15)
    np.testing.assert_array_equal(h, c["h0"])
    np.testing.assert_array_equal(dh0, c["dh"])
    assert not dk.any() and not dr.any() and not db.any()
    (y, h), grads = run_kernels(make_case(rng, 0, 3, 4, 5))  # batch 0
    assert y.shape == (0, 3, 5) and h.shape == (0, 5) and not grads[2].any()
    c = make_case(rng, 4, 3, 0, 6)  # no input features
    fwd, grads = run_kernels(c)
    check_against_reference(c, fwd, grads)
    assert grads[0].shape == (4, 3, 0) and grads[1].shape == (0, 18)


def _torch_order(a):
    """Keras's gate blocks z | r | h <-> torch's r | z | n (the swap is its own inverse)."""
    z, r, h = np.split(np.asarray(a), 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("shape", [(4, 6, 5, 19), (1, 1, 3, 8), (9, 7, 11, 40)])
def test_matches_torch(isa, n_threads, rng, shape, go_backwards):
    """torch.nn.GRU: its n gate is Keras's reset_after candidate; gates reordered, weights
    transposed, b_ih / b_hh are Keras's input / recurrent bias."""
    torch = pytest.importorskip("torch")
    c = make_case(rng, *shape)
    module = torch.nn.GRU(shape[2], shape[3], batch_first=True)
    weights = {
        "weight_ih_l0": _torch_order(c["kernel"]).T,
        "weight_hh_l0": _torch_order(c["rkernel"]).T,
        "bias_ih_l0": _torch_order(c["bias"][0]),
        "bias_hh_l0": _torch_order(c["bias"][1]),
    }
    outputs, g = torch_outputs_and_grads(torch, module, weights, c, go_backwards)
    fwd, grads = run_kernels(c, go_backwards=go_backwards)
    want = (
        g["x"],
        _torch_order(g["weight_ih_l0"].T),
        _torch_order(g["weight_hh_l0"].T),
        np.stack([_torch_order(g["bias_ih_l0"]), _torch_order(g["bias_hh_l0"])]),
        g["h0"][0],
    )
    for name, got, ref in zip(("y", "h_last", *GRAD_NAMES), (*fwd, *grads), (*outputs, *want)):
        assert_close(got, ref, name)


def test_ops_forward_backward(rng):
    c = make_case(rng, 5, 4, 3, 10)
    out, h, cache = ops.gru_forward(np.asfortranarray(c["x"]), c["kernel"].T.copy().T,
                                    c["rkernel"], c["bias"], c["h0"], training=True)
    g = ops.gru_backward(cache, c["dy"], c["dh"])
    check_against_reference(c, (out, h), [getattr(g, name) for name in GRAD_NAMES])
    with pytest.raises(ValueError, match="already used by a backward pass"):
        ops.gru_backward(cache, c["dy"])
    _, _, cache = ops.gru_forward(c["x"], c["kernel"], c["rkernel"], training=True,
                                  return_sequences=False, activation="relu")
    g = ops.gru_backward(cache, c["dh"], need_dx=False)
    assert g.dx is None and g.dbias is None and g.dh0 is None
    want = ref_gru_grads(c["x"], c["kernel"], c["rkernel"], None, None, None, c["dh"], "relu")
    assert_close(g.drecurrent_kernel, want[2], "drecurrent_kernel")
    assert ops.gru_forward(c["x"], c["kernel"], c["rkernel"])[2] is None


def test_errors(rng):
    c = make_case(rng, 2, 3, 4, 5)
    x, k, r = c["x"], c["kernel"], c["rkernel"]
    y, _, gates, hn = _kernels.gru_fwd(x, k, r, training=True)
    frozen = hn.copy()
    frozen.flags.writeable = False
    inside_gates = np.lib.stride_tricks.as_strided(gates, hn.shape, hn.strides)
    calls = [  # (call, error, match)
        (lambda: ops.gru_forward(x.astype(np.float64), k, r), TypeError,
         "gru_forward: x must be float32, received float64"),
        (lambda: ops.gru_forward(x, k, r, recurrent_activation="softmax"), ValueError,
         "recurrent_activation must be one of"),
        (lambda: ops.gru_backward(None), TypeError, "cache must be the GRUCache"),
        (lambda: _kernels.gru_fwd(x, k, r[:, :14].copy()), ValueError,
         r"gru_fwd: recurrent_kernel must have shape \(5, 15\)"),
        (lambda: _kernels.gru_fwd(x, k, r, np.zeros((2, 14), np.float32)), ValueError,
         r"bias must have shape \(2, 15\)"),
        (lambda: _kernels.gru_bwd(x, k, r, None, y, gates, None), ValueError,
         "gru_bwd: hn_seq is required"),
        (lambda: _kernels.gru_bwd(x, k, r, None, y, gates, frozen), ValueError,
         "hn_seq must be writeable"),
        (lambda: _kernels.gru_bwd(x, k, r, None, y, gates, inside_gates), ValueError,
         "gates overlaps hn_seq in memory"),
    ]
    for call, error, match in calls:
        with pytest.raises(error, match=match):
            call()


def test_concurrent_calls_match_serial(rng):
    """Python threads in the GRU and SimpleRNN kernels at once (the GIL released, per-call
    scratch) get the serial results."""
    jobs = [(make_case(rng, 8, 5, 6, 24 + i), run_kernels) for i in range(2)]
    jobs += [(rnn_case(rng, 8, 5, 6, 30 + i), run_simple_rnn) for i in range(2)]
    serial = [run(c) for c, run in jobs]
    out = [None] * len(jobs)

    def work(i):
        for _ in range(5):
            out[i] = jobs[i][1](jobs[i][0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (want_fwd, want_grads), (got_fwd, got_grads) in zip(serial, out):
        for a, b in zip(want_fwd + want_grads, got_fwd + got_grads):
            np.testing.assert_array_equal(a, b)
