"""Losses: values and gradients against float64 references, finite differences and PyTorch;
label validation; configs; every error path of fastnn.losses."""

import numpy as np
import pytest
from _reference import activation, binary_xent, categorical_xent, numerical_grad, onehot

from fastnn import losses


def _case(name, rng):
    """(loss, y_true, y_pred, float64 reference of the mean loss as a function of y_pred)."""
    labels = rng.integers(0, 4, 6)
    logits = rng.standard_normal((6, 4)) * 2
    probs = activation("softmax", logits)
    targets = rng.standard_normal((6, 4))
    bin_labels = rng.integers(0, 2, (6, 4)).astype(float)
    return {
        "mse": (losses.MeanSquaredError(), targets, logits,
                lambda p: np.mean((p - targets) ** 2)),
        "mae": (losses.MeanAbsoluteError(), targets, logits,
                lambda p: np.mean(np.abs(p - targets))),
        "cce_logits": (losses.CategoricalCrossentropy(from_logits=True), onehot(labels, 4),
                       logits, lambda p: categorical_xent(onehot(labels, 4), logits=p)),
        "cce_probs": (losses.CategoricalCrossentropy(), onehot(labels, 4), probs,
                      lambda p: categorical_xent(onehot(labels, 4), probs=p)),
        "scce_logits": (losses.SparseCategoricalCrossentropy(from_logits=True), labels,
                        logits, lambda p: categorical_xent(onehot(labels, 4), logits=p)),
        "scce_probs": (losses.SparseCategoricalCrossentropy(), labels[:, None], probs,
                       lambda p: categorical_xent(onehot(labels, 4), probs=p)),
        "bce_logits": (losses.BinaryCrossentropy(from_logits=True), bin_labels, logits,
                       lambda p: binary_xent(bin_labels, logits=p)),
        "bce_probs": (losses.BinaryCrossentropy(), bin_labels, activation("sigmoid", logits),
                      lambda p: binary_xent(bin_labels, probs=p)),
    }[name]


CASES = ["mse", "mae", "cce_logits", "cce_probs", "scce_logits", "scce_probs", "bce_logits",
         "bce_probs"]


@pytest.mark.parametrize("name", CASES)
def test_value_and_gradient(rng, name):
    loss, y_true, y_pred, reference = _case(name, rng)
    y_pred32 = y_pred.astype(np.float32)
    assert loss(y_true, y_pred32) == pytest.approx(reference(y_pred32), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(loss.gradient(y_true, y_pred32),
                               numerical_grad(reference, y_pred32), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ["cce_probs", "scce_probs", "bce_probs"])
def test_fused_logits_path_equals_probability_path(rng, name):
    """Fusing softmax/sigmoid with the loss gives the chain-rule gradient of the unfused one."""
    loss, y_true, _, _ = _case(name, rng)
    logits = (rng.standard_normal((6, 4))).astype(np.float32)
    act = loss.fusable_activation
    probs = activation(act, logits).astype(np.float32)
    labels = loss.prepare_labels(y_true, probs.shape)
    fused_grad = np.empty_like(logits)
    fused = loss.compute_from_logits(logits, labels, fused_grad)
    assert fused == pytest.approx(loss(y_true, probs), rel=1e-5)
    dprobs = loss.gradient(y_true, probs).astype(np.float64)
    if act == "softmax":
        chain = probs * (dprobs - np.sum(dprobs * probs, axis=-1, keepdims=True))
    else:
        chain = dprobs * probs * (1 - probs)
    np.testing.assert_allclose(fused_grad, chain, rtol=1e-3, atol=1e-6)


def test_labels_of_rank_one_for_single_output_units(rng):
    pred = rng.random((5, 1)).astype(np.float32)
    y = rng.integers(0, 2, 5)
    assert losses.BinaryCrossentropy()(y, pred) == pytest.approx(
        losses.BinaryCrossentropy()(y[:, None], pred))
    assert losses.MeanSquaredError().prepare_labels(y, (5, 1)).shape == (5, 1)


def test_sparse_labels_may_be_integral_floats_and_nd():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = np.zeros((2, 3, 4), np.float32)
    assert loss(np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 1.0]]), logits) == pytest.approx(np.log(4))


@pytest.mark.parametrize("fn,cls", [
    (losses.mean_squared_error, losses.MeanSquaredError),
    (losses.mean_absolute_error, losses.MeanAbsoluteError),
    (losses.categorical_crossentropy, losses.CategoricalCrossentropy),
    (losses.binary_crossentropy, losses.BinaryCrossentropy),
])
def test_function_forms_are_per_sample(rng, fn, cls):
    y_pred = rng.random((4, 3)).astype(np.float32)
    y_true = rng.integers(0, 2, (4, 3)).astype(np.float32)
    per_sample = fn(y_true, y_pred)
    assert per_sample.shape == (4,)
    assert np.mean(per_sample) == pytest.approx(cls()(y_true, y_pred), rel=1e-5)
    assert isinstance(losses.get(fn), cls)


def test_sparse_function_form(rng):
    y_pred = rng.random((4, 3)).astype(np.float32)
    per_sample = losses.sparse_categorical_crossentropy([0, 1, 2, 1], y_pred)
    assert per_sample.shape == (4,)


@pytest.mark.parametrize("identifier,cls", [
    ("mse", losses.MeanSquaredError), ("MAE", losses.MeanAbsoluteError),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("BinaryCrossentropy", losses.BinaryCrossentropy),
])
def test_get_by_name(identifier, cls):
    assert type(losses.get(identifier)) is cls


@pytest.mark.parametrize("loss", [
    losses.MeanSquaredError(), losses.MeanAbsoluteError(name="l1"),
    losses.CategoricalCrossentropy(from_logits=True),
    losses.SparseCategoricalCrossentropy(), losses.BinaryCrossentropy(from_logits=True),
])
def test_config_roundtrip(loss):
    clone = losses.get(losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: losses.MeanSquaredError()(["a"], [[1.0]]), TypeError, "labels must be numeric"),
    (lambda: losses.MeanSquaredError()([1.0], np.float32(1)), ValueError, "batch dimension"),
    (lambda: losses.MeanSquaredError()(np.zeros((2, 3)), np.zeros((2, 2))), ValueError,
     (r"expected labels of shape \(2, 2\) \(the model output's shape\), received labels of "
     r"shape \(2, 3\)")),
    (lambda: losses.CategoricalCrossentropy()([0, 1], np.ones((2, 3)) / 3), ValueError,
     "expected one-hot labels of shape .* use sparse_categorical_crossentropy"),
    (lambda: losses.SparseCategoricalCrossentropy()(np.eye(3), np.ones((3, 3)) / 3),
     ValueError, "expected integer labels of shape .* look like one-hot labels"),
    (lambda: losses.SparseCategoricalCrossentropy()([0.5, 1.0], np.ones((2, 3)) / 3),
     ValueError, "must be integer class indices"),
    (lambda: losses.SparseCategoricalCrossentropy()([0, 3], np.ones((2, 3)) / 3),
     ValueError, (r"labels must be integers in \[0, 3\) for 3 output classes, received labels "
     r"from 0 to 3")),
    (lambda: losses.BinaryCrossentropy()([[2.0]], [[0.5]]), ValueError,
     r"labels must lie in \[0, 1\]"),
    (lambda: losses.get("hinge"), ValueError, "Unknown loss 'hinge'"),
    (lambda: losses.get({"class_name": "Hinge"}), ValueError, "Unknown loss class 'Hinge'"),
    (lambda: losses.get(np.mean), ValueError, "Unsupported loss function"),
    (lambda: losses.get(3), TypeError, "loss must be a string"),
    (lambda: losses.Loss("x").prepare_labels([1], (1,)), NotImplementedError, "prepare_labels"),
    (lambda: losses.Loss("x").compute(None, None, None), NotImplementedError, "compute"),
    (lambda: losses.MeanSquaredError().compute_from_logits(None, None, None),
     NotImplementedError, "cannot be fused"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(rng, name):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    loss, y_true, y_pred, _ = _case(name, rng)
    pred = torch.tensor(y_pred.astype(np.float32), dtype=torch.float64, requires_grad=True)
    target = torch.tensor(np.asarray(y_true), dtype=torch.float64)
    if name == "mse":
        ref = fn.mse_loss(pred, target)
    elif name == "mae":
        ref = fn.l1_loss(pred, target)
    elif name == "cce_logits":
        ref = fn.cross_entropy(pred, target)  # probability (one-hot) targets
    elif name == "scce_logits":
        ref = fn.cross_entropy(pred, target.long())
    elif name in ("cce_probs", "scce_probs"):
        target_idx = target.reshape(-1).long() if name == "scce_probs" else target.argmax(1)
        ref = fn.nll_loss(torch.log(pred / pred.sum(1, keepdim=True)), target_idx)  # Keras
        # renormalises probabilities before the log
    elif name == "bce_logits":
        ref = fn.binary_cross_entropy_with_logits(pred, target)
    else:
        ref = fn.binary_cross_entropy(pred, target)
    ref.backward()
    value = loss(y_true, y_pred.astype(np.float32))
    assert value == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(loss.gradient(y_true, y_pred.astype(np.float32)),
                               pred.grad.numpy(), rtol=1e-4, atol=1e-7)
