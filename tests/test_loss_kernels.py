"""Fused softmax cross-entropy and sigmoid binary cross-entropy (csrc/loss.c): every ISA, 1 and
4 threads, against float64 references, finite differences and PyTorch."""

import numpy as np
import pytest
from _ref_eltwise import sigmoid_bce, softmax_xent

import fastnn
from fastnn import _kernels as K

# (batch, classes): empty, one, vector edges, primes, more rows than one thread's share.
SHAPES = [(0, 10), (1, 1), (1, 10), (7, 3), (32, 10), (33, 17), (128, 10), (5, 1031), (4099, 37)]


def logits_labels(rng, batch, classes, kind):
    z = (rng.standard_normal((batch, classes)) * 4).astype(np.float32)
    if kind == "sparse":
        return z, rng.integers(0, classes, batch).astype(np.int64)
    if kind == "onehot":
        return z, np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]
    t = rng.random((batch, classes)).astype(np.float32)  # soft targets, rows sum to 1
    return z, (t / t.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["sparse", "onehot", "soft"])
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_xent_matches_float64(isa, n_threads, rng, shape, kind):
    z, labels = logits_labels(rng, *shape, kind)
    grad = np.full_like(z, np.nan)
    loss = K.softmax_xent(z, labels, grad)
    ref_loss, ref_grad = softmax_xent(z, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref_loss, rel=1e-6, abs=1e-7)
    # float32 softmax: relative error up to |z - max| * 2^-24 (z - max rounds); soft targets
    # cancel in p - t, leaving a few ulps of 1, then / batch
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=3e-7 / max(shape[0], 1))
    assert K.softmax_xent(z, labels) == loss, "the loss must not depend on asking for grad"


def test_softmax_xent_stable(isa):
    z = np.array(
        [[1e4, 0, -1e4], [-3e38, 3e38, 0], [88, 89, 90], [-1e30, -1e30, -1e30]], np.float32
    )
    z = np.repeat(z, 11, axis=1)  # 33 classes: vector body and tail
    labels = np.array([0, 11, 22, 32], np.int64)
    grad = np.empty_like(z)
    loss = K.softmax_xent(z, labels, grad)
    ref_loss, ref_grad = softmax_xent(z, labels)
    assert np.isfinite(loss) and loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-9)


def test_softmax_xent_nan_and_inf(isa):
    z = np.zeros((3, 20), np.float32)
    z[1, 3] = np.nan
    grad = np.empty_like(z)
    assert np.isnan(K.softmax_xent(z, np.zeros(3, np.int64), grad))
    assert np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()
    z = np.zeros((2, 20), np.float32)
    z[0, 5] = -np.inf  # a class with zero probability: finite when it is not the label
    assert np.isfinite(K.softmax_xent(z, np.array([0, 1], np.int64), grad[:2].copy()))


@pytest.mark.parametrize("kind", ["sparse", "soft"])
def test_softmax_xent_finite_differences(isa, rng, kind):
    """The kernel's gradient against float64 central differences of the float64 loss."""
    z, labels = logits_labels(rng, 4, 7, kind)
    grad = np.empty_like(z)
    K.softmax_xent(z, labels, grad)
    z64, h = z.astype(np.float64), 1e-6
    fd = np.empty_like(z64)
    for i in np.ndindex(z.shape):
        zp, zm = z64.copy(), z64.copy()
        zp[i] += h
        zm[i] -= h
        fd[i] = (softmax_xent(zp, labels)[0] - softmax_xent(zm, labels)[0]) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-7)


def test_softmax_xent_threads_fixed_order(rng):
    z, labels = logits_labels(rng, 5003, 29, "sparse")
    before = fastnn.get_num_threads()
    try:
        runs = []
        for nt in (1, 2, 3, 4):
            fastnn.set_num_threads(nt)
            grad = np.empty_like(z)
            runs.append((K.softmax_xent(z, labels, grad), grad))
    finally:
        fastnn.set_num_threads(before)
    for loss, grad in runs[1:]:
        assert loss == runs[0][0]
        np.testing.assert_array_equal(grad, runs[0][1])


@pytest.mark.parametrize("kind", ["sparse", "soft"])
def test_softmax_xent_torch(isa, rng, kind):
    torch = pytest.importorskip("torch")
    z, labels = logits_labels(rng, 64, 10, kind)
    tz = torch.from_numpy(z.copy()).requires_grad_(True)
    tl = torch.nn.functional.cross_entropy(tz, torch.from_numpy(labels))
    tl.backward()
    grad = np.empty_like(z)
    loss = K.softmax_xent(z, labels, grad)
    assert loss == pytest.approx(tl.item(), rel=2e-6)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("shape", [(0,), (1,), (17,), (128, 1), (33, 5), (1031,), (300007,)])
def test_sigmoid_bce_matches_float64(isa, n_threads, rng, shape):
    z = (rng.standard_normal(shape) * 5).astype(np.float32)
    t = rng.random(shape).astype(np.float32)
    grad = np.full_like(z, np.nan)
    loss = K.sigmoid_bce(z, t, grad)
    ref_loss, ref_grad = sigmoid_bce(z, t)
    assert loss == pytest.approx(ref_loss, rel=1e-6, abs=1e-12)
    # sigmoid(z) - t cancels: a few ulps of 1, divided by the element count
    np.testing.assert_allclose(grad, ref_grad, rtol=3e-7, atol=3e-7 / max(z.size, 1))
    assert K.sigmoid_bce(z, t) == loss


def test_sigmoid_bce_stable_and_nan(isa):
    z = np.array([1e4, -1e4, 3e38, -3e38, 0.0, np.nan], np.float32)
    t = np.array([0, 1, 0, 1, 0.5, 1], np.float32)
    grad = np.empty_like(z)
    loss = K.sigmoid_bce(z[:5], t[:5], grad[:5])
    ref_loss, ref_grad = sigmoid_bce(z[:5], t[:5])
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(grad[:5], ref_grad, rtol=1e-6)
    assert np.isnan(K.sigmoid_bce(z, t, grad)) and np.isnan(grad[5])


def test_sigmoid_bce_torch(isa, rng):
    torch = pytest.importorskip("torch")
    z = (rng.standard_normal((64, 3)) * 3).astype(np.float32)
    t = rng.integers(0, 2, z.shape).astype(np.float32)
    tz = torch.from_numpy(z.copy()).requires_grad_(True)
    tl = torch.nn.functional.binary_cross_entropy_with_logits(tz, torch.from_numpy(t))
    tl.backward()
    grad = np.empty_like(z)
    assert K.sigmoid_bce(z, t, grad) == pytest.approx(tl.item(), rel=2e-6)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-5, atol=1e-9)


def test_errors():
    z = np.zeros((4, 3), np.float32)
    lab = np.array([0, 1, 2, 3], np.int64)
    with pytest.raises(
        ValueError,
        match=r"softmax_xent: labels must be class indices in "
        r"\[0, 3\), received 3 at row 3",
    ):
        K.softmax_xent(z, lab)
    with pytest.raises(ValueError, match=r"received -1 at row 0"):
        K.softmax_xent(z, np.array([-1, 0, 0, 0], np.int64))
    with pytest.raises(
        TypeError,
        match="softmax_xent: labels must be int64 class indices or float32 targets, received int32",
    ):
        K.softmax_xent(z, lab.astype(np.int32))
    with pytest.raises(TypeError, match="softmax_xent: labels must be a numpy.ndarray"):
        K.softmax_xent(z, [0, 1, 2, 0])
    with pytest.raises(
        ValueError,
        match=r"softmax_xent: int64 \(sparse\) labels must have "
        r"shape \(4,\), received \(3,\)",
    ):
        K.softmax_xent(z, lab[:3])
    with pytest.raises(ValueError, match=r"softmax_xent: labels must have the shape of logits"):
        K.softmax_xent(z, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="softmax_xent: logits must be 2-D"):
        K.softmax_xent(z[0], lab[:1])
    with pytest.raises(TypeError, match="softmax_xent: logits must be float32"):
        K.softmax_xent(z.astype(np.float64), lab)
    with pytest.raises(ValueError, match="softmax_xent: logits need at least one class"):
        K.softmax_xent(np.zeros((4, 0), np.float32), lab)
    with pytest.raises(ValueError, match=r"softmax_xent: out must have shape \(4, 3\)"):
        K.softmax_xent(z, lab % 3, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="softmax_xent: out overlaps input 0"):
        K.softmax_xent(z, lab % 3, z)
    with pytest.raises(ValueError, match=r"sigmoid_bce: labels must have the shape of logits"):
        K.sigmoid_bce(z, np.zeros(12, np.float32))
    with pytest.raises(TypeError, match="sigmoid_bce: labels must be float32, received int64"):
        K.sigmoid_bce(z, np.zeros((4, 3), np.int64))
    with pytest.raises(ValueError, match="sigmoid_bce: out overlaps input 1"):
        t = np.zeros((4, 3), np.float32)
        K.sigmoid_bce(z, t, t)
