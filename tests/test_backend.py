"""The NumPy bodies of fastnn._backend against float64 references (contract tests that the
C kernels replacing them must pass too)."""

import numpy as np
import pytest
from _reference import activation, binary_xent, categorical_xent, dense, onehot

from fastnn import _backend

ACTS = [("linear", 0.0), ("relu", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("softmax", 0.0),
        ("leaky_relu", 0.2), ("elu", 1.0), ("gelu", 0.0)]


def _f32(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("act,alpha", ACTS)
def test_act_forward_matches_reference_and_runs_in_place(rng, act, alpha):
    x = _f32(rng, 7, 5, scale=3.0)
    out = np.full_like(x, np.nan)
    _backend.act_forward(act, alpha, x, out)
    np.testing.assert_allclose(out, activation(act, x, alpha), rtol=1e-5, atol=1e-6)
    inplace = x.copy()
    _backend.act_forward(act, alpha, inplace, inplace)
    np.testing.assert_array_equal(inplace, out)


@pytest.mark.parametrize("act,alpha", ACTS)
def test_act_backward_matches_finite_differences(rng, act, alpha):
    x = _f32(rng, 4, 6, scale=2.0)
    x[np.abs(x) < 1e-2] = 0.5  # keep away from kinks
    dy = _f32(rng, 4, 6)
    y = np.empty_like(x)
    _backend.act_forward(act, alpha, x, y)
    out = np.full_like(x, np.nan)
    pre = x if _backend.needs_preact(act) else None
    _backend.act_backward(act, alpha, pre, y, dy, out)
    x64 = x.astype(np.float64)
    expected = np.zeros_like(x64)
    eps = 1e-6
    for idx in np.ndindex(*x.shape):
        xp, xm = x64.copy(), x64.copy()
        xp[idx] += eps
        xm[idx] -= eps
        expected[idx] = np.sum(dy * (activation(act, xp, alpha) - activation(act, xm, alpha)))
    np.testing.assert_allclose(out, expected / (2 * eps), rtol=1e-4, atol=1e-5)


def test_needs_preact_only_for_gelu():
    assert [a for a, _ in ACTS if _backend.needs_preact(a)] == ["gelu"]


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        _backend.needs_preact("swish")


def test_sigmoid_saturates_without_warnings(recwarn):
    x = np.array([[-1000.0, 1000.0, 0.0]], np.float32)
    out = np.empty_like(x)
    _backend.act_forward("sigmoid", 0.0, x, out)
    np.testing.assert_array_equal(out, [[0.0, 1.0, 0.5]])
    assert not recwarn.list


@pytest.mark.parametrize("act", ["linear", "relu", "gelu", "softmax"])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_forward(rng, act, bias):
    x, kernel = _f32(rng, 9, 5), _f32(rng, 5, 4)
    b = _f32(rng, 4) if bias else None
    out, pre = np.empty((9, 4), np.float32), np.empty((9, 4), np.float32)
    _backend.dense_forward(x, kernel, b, act, 0.0, out, pre)
    np.testing.assert_allclose(out, dense(x, kernel, b, act), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pre, dense(x, kernel, b, "linear"), rtol=1e-5, atol=1e-6)
    out2 = np.empty_like(out)
    _backend.dense_forward(x, kernel, b, act, 0.0, out2)
    np.testing.assert_array_equal(out2, out)


def test_matmul_transposes_and_bias_grad_is_deterministic(rng):
    a, b = _f32(rng, 6, 3), _f32(rng, 6, 4)
    out = np.empty((3, 4), np.float32)
    _backend.matmul(a, b, out, trans_a=True)
    np.testing.assert_allclose(out, a.T.astype(np.float64) @ b, rtol=1e-5, atol=1e-6)
    out2 = np.empty((6, 6), np.float32)
    _backend.matmul(b, b, out2, trans_b=True)
    np.testing.assert_allclose(out2, b.astype(np.float64) @ b.T, rtol=1e-5, atol=1e-6)
    dy = _f32(rng, 1000, 7)
    first, second = np.empty(7, np.float32), np.empty(7, np.float32)
    _backend.bias_grad(dy, first)
    _backend.bias_grad(dy.copy(), second)
    assert first.tobytes() == second.tobytes()
    np.testing.assert_allclose(first, dy.astype(np.float64).sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_xent_value_and_gradient(rng, sparse):
    logits = _f32(rng, 8, 5, scale=3.0)
    labels = rng.integers(0, 5, 8)
    target = labels.astype(np.int64) if sparse else onehot(labels, 5).astype(np.float32)
    grad = np.full_like(logits, np.nan)
    loss = _backend.softmax_xent(logits, target, sparse, grad)
    assert loss == pytest.approx(categorical_xent(onehot(labels, 5), logits=logits), rel=1e-5)
    expected = (activation("softmax", logits) - onehot(labels, 5)) / 8
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_softmax_xent_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 5e3]], np.float32)
    grad = np.empty_like(logits)
    loss = _backend.softmax_xent(logits, np.array([1, 1]), True, grad)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx((2e4 + np.log(2)) / 2, rel=1e-5)


def test_softmax_xent_soft_labels_gradient_uses_label_sum(rng):
    logits = _f32(rng, 3, 4)
    soft = np.abs(_f32(rng, 3, 4))
    grad = np.empty_like(logits)
    loss = _backend.softmax_xent(logits, soft, False, grad)
    ref = np.mean(-(soft * (logits - np.log(np.exp(logits.astype(np.float64)).sum(1,
                                                                               keepdims=True)))
                    ).sum(1))
    assert loss == pytest.approx(ref, rel=1e-5)
    p = activation("softmax", logits)
    np.testing.assert_allclose(grad, (p * soft.sum(1, keepdims=True) - soft) / 3, rtol=1e-4,
                               atol=1e-6)


def test_sigmoid_bce(rng):
    logits, labels = _f32(rng, 6, 3, scale=4.0), rng.random((6, 3)).astype(np.float32)
    grad = np.empty_like(logits)
    loss = _backend.sigmoid_bce(logits, labels, grad)
    assert loss == pytest.approx(binary_xent(labels, logits=logits), rel=1e-5)
    np.testing.assert_allclose(grad, (activation("sigmoid", logits) - labels) / 18, rtol=1e-4,
                               atol=1e-7)


def test_probability_losses_clip_like_keras():
    probs = np.array([[1.0, 0.0], [0.3, 0.7]], np.float32)
    grad = np.empty_like(probs)
    loss = _backend.xent_probs(probs, np.array([1, 1]), True, grad)
    assert loss == pytest.approx(categorical_xent(onehot([1, 1], 2), probs=probs), rel=1e-5)
    loss = _backend.bce_probs(probs, np.array([[0, 1], [1, 1]], np.float32), grad)
    clipped32 = np.clip(probs, np.float32(1e-7), np.float32(1 - 1e-7))  # Keras clips in float32
    assert loss == pytest.approx(binary_xent([[0, 1], [1, 1]], probs=clipped32), rel=1e-5)
    assert np.all(np.isfinite(grad))


def test_regression_losses(rng):
    pred, target = _f32(rng, 4, 3), _f32(rng, 4, 3)
    grad = np.empty_like(pred)
    assert _backend.mse(pred, target, grad) == pytest.approx(np.mean((pred - target) ** 2.0),
                                                              rel=1e-5)
    np.testing.assert_allclose(grad, 2 * (pred - target) / 12, rtol=1e-5)
    assert _backend.mae(pred, target, grad) == pytest.approx(np.mean(np.abs(pred - target)),
                                                              rel=1e-5)
    np.testing.assert_allclose(grad, np.sign(pred - target) / 12)


def test_l1l2_penalty_accumulates_gradient(rng):
    w = _f32(rng, 3, 2)
    grad = np.ones_like(w)
    penalty = _backend.l1l2_penalty(w, 0.1, 0.01, grad_out=grad)
    assert penalty == pytest.approx(0.1 * np.abs(w).sum() + 0.01 * (w.astype(float) ** 2).sum())
    np.testing.assert_allclose(grad, 1 + 0.1 * np.sign(w) + 0.02 * w, rtol=1e-6)


def test_dropout_forward_backward(rng):
    x = np.ones((200, 50), np.float32)
    mask, out = np.empty(x.shape, np.uint8), np.empty_like(x)
    _backend.dropout_forward(x, 0.25, np.random.default_rng(3), mask, out)
    assert set(np.unique(mask)) <= {0, 1}
    assert abs(mask.mean() - 0.75) < 0.02
    np.testing.assert_allclose(out, mask / 0.75, rtol=1e-6)
    dy = _f32(rng, 200, 50)
    dx = np.empty_like(dy)
    _backend.dropout_backward(dy, mask, 0.25, dx)
    np.testing.assert_allclose(dx, dy * mask / 0.75, rtol=1e-6)
