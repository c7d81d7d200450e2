"""fastnn._backend (C kernels) against the NumPy bodies it had before (tests/_backend_numpy.py):
same signatures, same results up to float32 rounding; optimizer updates bit for bit where the
NumPy body used Keras's operation order."""

import _backend_numpy as ref
import numpy as np
import pytest

from fastnn import _backend

ACTS = [
    ("linear", 0.0),
    ("relu", 0.0),
    ("sigmoid", 0.0),
    ("tanh", 0.0),
    ("softmax", 0.0),
    ("leaky_relu", 0.2),
    ("elu", 1.0),
    ("gelu", 0.0),
]


@pytest.mark.parametrize("act,alpha", ACTS)
def test_activations(isa, rng, act, alpha):
    x = (rng.standard_normal((33, 21)) * 3).astype(np.float32)
    y, y_ref = np.empty_like(x), np.empty_like(x)
    _backend.act_forward(act, alpha, x, y)
    ref.act_forward(act, alpha, x, y_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dx_ref = np.empty_like(x), np.empty_like(x)
    _backend.act_backward(act, alpha, x, y, dy, dx)
    ref.act_backward(act, alpha, x, y, dy, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act,alpha", ACTS)
def test_dense_forward_and_matmul(isa, rng, act, alpha):
    x = rng.standard_normal((19, 13)).astype(np.float32)
    kernel = rng.standard_normal((13, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    out, pre, out_ref, pre_ref = (np.empty((19, 7), np.float32) for _ in range(4))
    _backend.dense_forward(x, kernel, bias, act, alpha, out, pre)
    ref.dense_forward(x, kernel, bias, act, alpha, out_ref, pre_ref)
    np.testing.assert_allclose(pre, pre_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
    dw, dw_ref = np.empty((13, 7), np.float32), np.empty((13, 7), np.float32)
    _backend.matmul(x, out, dw, trans_a=True)
    ref.matmul(x, out, dw_ref, trans_a=True)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-5)
    db, db_ref = np.empty(7, np.float32), np.empty(7, np.float32)
    _backend.bias_grad(out, db)
    ref.bias_grad(out, db_ref)
    np.testing.assert_allclose(db, db_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_xent(isa, rng, sparse):
    z = (rng.standard_normal((64, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    if not sparse:
        labels = np.eye(10, dtype=np.float32)[labels]
    g, g_ref = np.empty_like(z), np.empty_like(z)
    loss = _backend.softmax_xent(z, labels, sparse, g)
    assert loss == pytest.approx(ref.softmax_xent(z, labels, sparse, g_ref), rel=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-8)


def test_sigmoid_bce(isa, rng):
    z = (rng.standard_normal((64, 3)) * 3).astype(np.float32)
    t = rng.integers(0, 2, z.shape).astype(np.float32)
    g, g_ref = np.empty_like(z), np.empty_like(z)
    loss = _backend.sigmoid_bce(z, t, g)
    assert loss == pytest.approx(ref.sigmoid_bce(z, t, g_ref), rel=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-8)


def test_optimizers(isa, rng):
    w0 = rng.standard_normal(1001).astype(np.float32)
    grads = [rng.standard_normal(1001).astype(np.float32) for _ in range(10)]
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        w, w_ref = w0.copy(), w0.copy()
        v = np.zeros_like(w) if momentum else None
        v_ref = np.zeros_like(w) if momentum else None
        for g in grads:
            _backend.sgd_update(w, g, v, 0.01, momentum, nesterov)
            ref.sgd_update(w_ref, g, v_ref, 0.01, momentum, nesterov)
        np.testing.assert_array_equal(w, w_ref)
    w, w_ref = w0.copy(), w0.copy()
    m, v, m_ref, v_ref = (np.zeros_like(w) for _ in range(4))
    for t, g in enumerate(grads, start=1):
        _backend.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, t)
        ref.adam_update(w_ref, g, m_ref, v_ref, 1e-3, 0.9, 0.999, 1e-7, t)
    np.testing.assert_array_equal(w, w_ref)
    for momentum in (0.0, 0.5):
        w, w_ref = w0.copy(), w0.copy()
        ms, ms_ref = np.zeros_like(w), np.zeros_like(w)
        mom = np.zeros_like(w) if momentum else None
        mom_ref = np.zeros_like(w) if momentum else None
        for g in grads:
            _backend.rmsprop_update(w, g, ms, mom, 1e-3, 0.9, momentum, 1e-7)
            ref.rmsprop_update(w_ref, g, ms_ref, mom_ref, 1e-3, 0.9, momentum, 1e-7)
        # the NumPy body rounds (1 - rho) g g as ((1 - rho) g) g; Keras and C as (1 - rho)(g g)
        np.testing.assert_allclose(w, w_ref, rtol=1e-6, atol=1e-6)


def test_dropout(isa, rng):
    x = rng.standard_normal((32, 50)).astype(np.float32)
    mask, out = np.empty(x.shape, np.uint8), np.empty_like(x)
    _backend.dropout_forward(x, 0.25, np.random.default_rng(5), mask, out)
    assert 0.6 < mask.mean() < 0.9
    np.testing.assert_allclose(out, x * mask / np.float32(0.75), rtol=1e-6)
    again = np.empty_like(mask)
    _backend.dropout_forward(x, 0.25, np.random.default_rng(5), again, np.empty_like(x))
    np.testing.assert_array_equal(again, mask)  # same Generator state, same mask
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dx_ref = np.empty_like(x), np.empty_like(x)
    _backend.dropout_backward(dy, mask, 0.25, dx)
    ref.dropout_backward(dy, mask, 0.25, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6)
