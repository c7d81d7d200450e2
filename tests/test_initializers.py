"""Initializers (formulas, seeding), regularizers, metrics resolution and utils."""

import math

import numpy as np
import pytest

import fastnn
from fastnn import initializers, metrics, regularizers, utils

SHAPE = (400, 300)  # fan_in 400, fan_out 300


@pytest.mark.parametrize("name,limit", [
    ("glorot_uniform", math.sqrt(6 / 700)), ("he_uniform", math.sqrt(6 / 400)),
    ("lecun_uniform", math.sqrt(3 / 400)),
])
def test_uniform_limits(name, limit):
    w = initializers.get(name)(SHAPE, rng=np.random.default_rng(0))
    assert w.dtype == np.float32 and w.shape == SHAPE
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert np.std(w) == pytest.approx(limit / math.sqrt(3), rel=0.02)


@pytest.mark.parametrize("name,std", [
    ("glorot_normal", math.sqrt(2 / 700)), ("he_normal", math.sqrt(2 / 400)),
    ("lecun_normal", math.sqrt(1 / 400)),
])
def test_truncated_normal_stddev(name, std):
    w = initializers.get(name)(SHAPE, rng=np.random.default_rng(0))
    # Keras divides by 0.8796 so that the truncated draw keeps the target variance.
    assert np.std(w) == pytest.approx(std, rel=0.02)
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-7


def test_random_normal_zeros_ones_constant():
    w = initializers.RandomNormal(mean=1.0, stddev=0.05)(SHAPE)
    assert np.mean(w) == pytest.approx(1.0, abs=1e-3) and np.std(w) == pytest.approx(0.05, 0.02)
    assert not initializers.get("zeros")((3,)).any()
    assert (initializers.get("ones")((3,)) == 1).all()
    assert (initializers.Constant(2.5)((2,)) == 2.5).all()
    assert initializers.get("random_uniform")((1000,)).max() <= 0.05
    assert np.abs(initializers.get("truncated_normal")((1000,))).max() <= 0.1


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 3, 2, 5)])
def test_orthogonal(shape):
    w = initializers.Orthogonal(gain=2.0)(shape).reshape(-1, shape[-1]).astype(np.float64)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 4 * np.eye(len(gram)), atol=1e-5)


def test_fans():
    assert initializers.compute_fans((3, 3, 8, 16)) == (72, 144)
    assert initializers.compute_fans((5,)) == (5, 5)
    assert initializers.compute_fans(()) == (1, 1)


def test_seeding():
    init = initializers.GlorotUniform(seed=3)
    np.testing.assert_array_equal(init((4, 4)), init((4, 4)))  # integer seed repeats
    unseeded = initializers.GlorotUniform()
    assert not np.array_equal(unseeded((4, 4)), unseeded((4, 4)))
    fastnn.utils.set_random_seed(7)
    first = [unseeded((4, 4)), fastnn.layers.Dense(3)(np.ones((1, 2)))]
    fastnn.utils.set_random_seed(7)
    second = [unseeded((4, 4)), fastnn.layers.Dense(3)(np.ones((1, 2)))]
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


ALL_INITIALIZERS = [initializers.get(name) for name in initializers._NAMES] + [
    initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=1),
    initializers.RandomNormal(0.5, 0.1, seed=2), initializers.Orthogonal(0.5, seed=3),
]


@pytest.mark.parametrize("init", ALL_INITIALIZERS, ids=lambda i: type(i).__name__)
def test_initializer_config_roundtrip(init):
    clone = initializers.get(initializers.serialize(init))
    assert type(clone) is type(init) and clone.get_config() == init.get_config()


def test_variance_scaling_untruncated_and_fan_out():
    w = initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")(SHAPE)
    assert np.std(w) == pytest.approx(math.sqrt(2 / 300), rel=0.02)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: initializers.get("xavier"), ValueError, "Unknown initializer 'xavier'"),
    (lambda: initializers.get({"class_name": "Foo"}), ValueError, "Unknown initializer class"),
    (lambda: initializers.get(1.0), TypeError, "initializer must be a string"),
    (lambda: initializers.Zeros()((2,), dtype="float64"), ValueError, "only float32"),
    (lambda: initializers.Orthogonal()((3,)), ValueError, "rank >= 2, received shape=\\(3,\\)"),
    (lambda: initializers.VarianceScaling(mode="fan_sum"), ValueError, "mode must be one of"),
    (lambda: initializers.VarianceScaling(distribution="cauchy"), ValueError, "distribution"),
    (lambda: initializers.VarianceScaling(scale=0.0), ValueError, r"scale must be .* \(0, inf\)"),
    (lambda: initializers.RandomUniform(1.0, 0.0), ValueError, "maxval must be"),
    (lambda: initializers.HeNormal(seed=-1), ValueError, "seed must be an int >= 0"),
    (lambda: initializers.Initializer()((2,)), NotImplementedError, "_draw"),
])
def test_initializer_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_regularizers():
    w = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    assert regularizers.L1(0.1)(w) == pytest.approx(0.35)
    assert regularizers.L2()(w) == pytest.approx(0.01 * 5.25)
    assert regularizers.L1L2(0.1, 0.01)(w) == pytest.approx(0.35 + 0.0525)
    assert regularizers.get("l1").l1 == 0.01 and regularizers.get("l2").l2 == 0.01
    grad = np.zeros_like(w)
    regularizers.L1L2(0.1, 0.01).penalty_and_grad(w, grad)
    np.testing.assert_allclose(grad, 0.1 * np.sign(w) + 0.02 * w, rtol=1e-6)
    for reg in (regularizers.L1(0.2), regularizers.L2(0.3), regularizers.L1L2(0.1, 0.2)):
        clone = regularizers.get(regularizers.serialize(reg))
        assert type(clone) is type(reg) and clone.get_config() == reg.get_config()
    assert regularizers.get(None) is None and regularizers.serialize(None) is None


@pytest.mark.parametrize("call,exc,match", [
    (lambda: regularizers.get("l3"), ValueError, "Unknown regularizer 'l3'"),
    (lambda: regularizers.get({"class_name": "L3"}), ValueError, "Unknown regularizer class"),
    (lambda: regularizers.get(0.1), TypeError, "regularizer must be a string"),
    (lambda: regularizers.L2(-1.0), ValueError, "l2 must be a finite number"),
    (lambda: regularizers.L1(float("nan")), ValueError, "l1 must be a finite number"),
    (lambda: regularizers.Regularizer().get_config(), NotImplementedError, "get_config"),
])
def test_regularizer_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("y_shape,out_shape,cls", [
    ((8,), (8, 10), metrics.SparseCategoricalAccuracy),
    ((8, 1), (8, 10), metrics.SparseCategoricalAccuracy),
    ((8, 10), (8, 10), metrics.CategoricalAccuracy),
    ((8, 1), (8, 1), metrics.BinaryAccuracy),
])
def test_accuracy_resolves_like_keras(y_shape, out_shape, cls):
    metric = metrics.get("accuracy", y_shape, out_shape)
    assert type(metric) is cls and metric.name == "accuracy" and metric.direction == "up"


def test_metric_values():
    acc = metrics.get("acc", (3,), (3, 2))
    acc.update_state(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    assert acc.result() == pytest.approx(2 / 3) and acc.name == "acc"
    binary = metrics.BinaryAccuracy()
    binary.update_state(np.array([[1.0], [0.0]]), np.array([[0.7], [0.6]]))
    assert binary.result() == 0.5
    mse = metrics.get("mse", (2, 1), (2, 1))
    mse.update_state(np.array([[1.0], [0.0]]), np.array([[0.0], [0.0]]))
    assert mse.result() == 0.5 and mse.name == "mse" and mse.direction == "down"
    mae = metrics.get("mean_absolute_error", (1, 1), (1, 1))
    mae.update_state(np.array([[1.0]]), np.array([[3.0]]))
    assert mae.result() == 2.0
    cat = metrics.CategoricalAccuracy()
    cat.update_state(np.eye(2), np.eye(2))
    assert cat.result() == 1.0 and metrics.Mean().result() == 0.0


@pytest.mark.parametrize("call,exc,match", [
    (lambda: metrics.check_identifier("f1"), ValueError, "Unknown metric 'f1'"),
    (lambda: metrics.check_identifier(3), TypeError, "metrics entries must be names"),
    (lambda: metrics.Metric("m").update_state([1], [1]), NotImplementedError, "_values"),
    (lambda: metrics.BinaryAccuracy().update_state(np.zeros(4), np.zeros((4, 3))), ValueError,
     (r"binary_accuracy: labels of shape \(4,\) do not fit outputs needing labels of shape "
     r"\(4, 3\)")),
])
def test_metric_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_to_categorical():
    np.testing.assert_array_equal(utils.to_categorical([0, 2, 1]), np.eye(3)[[0, 2, 1]])
    assert utils.to_categorical([[1], [0]], num_classes=4).shape == (2, 4)
    assert utils.to_categorical(np.array([1.0, 0.0])).dtype == np.float32
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\), received labels from 0"):
        utils.to_categorical([0, 2], num_classes=2)
    with pytest.raises(ValueError, match="labels must be integers"):
        utils.to_categorical([0.5])
    with pytest.raises(TypeError, match="set_random_seed: seed must be an int"):
        utils.set_random_seed("1")
