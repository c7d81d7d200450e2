"""Layers: gradients against float64 finite differences and PyTorch, lifecycle, configs,
activations by name and function, and every error path of fastnn.layers/activations."""

import numpy as np
import pytest
from _reference import activation, dense, numerical_grad

from fastnn import activations, layers
from fastnn.layers import base

ACTS = [("linear", 0.0), ("relu", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("softmax", 0.0),
        ("leaky_relu", 0.2), ("elu", 1.0), ("gelu", 0.0)]


def _away_from_kinks(x):
    x[np.abs(x) < 0.05] = 0.3
    return x


def _check_grads(layer, x, reference, rng, input_grad=True):
    """Compare layer.backward (dX and every dW) with central differences of `reference`."""
    layer(x)  # build
    layer.input_grad_needed = input_grad
    y = layer.call(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy.astype(np.float32))
    weights = [w.astype(np.float64) for w in layer.weights]
    if input_grad:
        num = numerical_grad(lambda v: np.sum(dy * reference(v, weights)), x)
        np.testing.assert_allclose(dx, num, rtol=1e-4, atol=1e-5)
    else:
        assert dx is None
    for i, grad in enumerate(layer.grads):
        def f(w, i=i):
            ws = list(weights)
            ws[i] = w
            return np.sum(dy * reference(x.astype(np.float64), ws))
        np.testing.assert_allclose(grad, numerical_grad(f, weights[i]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act,alpha", ACTS)
def test_dense_gradients(rng, act, alpha):
    layer = layers.Dense(3, activation=act, bias_initializer="random_normal")
    x = rng.standard_normal((5, 4)).astype(np.float32)

    def reference(v, ws):
        return dense(v, ws[0], ws[1], act, alpha)
    _check_grads(layer, x, reference, rng)


def test_dense_on_3d_input_and_first_layer_skips_dx(rng):
    layer = layers.Dense(2, activation="tanh", use_bias=False)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    assert layer(x).shape == (3, 4, 2)
    _check_grads(layer, x, lambda v, ws: activation("tanh", v @ ws[0]), rng)
    _check_grads(layer, x, lambda v, ws: activation("tanh", v @ ws[0]), rng, input_grad=False)


@pytest.mark.parametrize("make,act,alpha", [
    (lambda: layers.Activation("elu"), "elu", 1.0),
    (lambda: layers.Activation(activations.sigmoid), "sigmoid", 0.0),
    (lambda: layers.ReLU(), "relu", 0.0),
    (lambda: layers.ReLU(negative_slope=0.1), "leaky_relu", 0.1),
    (lambda: layers.Softmax(), "softmax", 0.0),
])
def test_activation_layer_gradients(rng, make, act, alpha):
    x = _away_from_kinks(rng.standard_normal((4, 5)).astype(np.float32))
    _check_grads(make(), x, lambda v, ws: activation(act, v, alpha), rng)


def test_dropout_gradient_and_inference_identity(rng):
    layer = layers.Dropout(0.4, seed=7)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    assert layer(x, training=False) is not x and np.array_equal(layer(x), x)
    y = layer.call(x, training=True)
    mask = layer._mask.astype(np.float64)  # fixed by the forward pass
    np.testing.assert_allclose(y, x * mask / 0.6, rtol=1e-6)
    dy = rng.standard_normal(x.shape)
    dx = layer.backward(dy.astype(np.float32))
    num = numerical_grad(lambda v: np.sum(dy * v * mask / 0.6), x)
    np.testing.assert_allclose(dx, num, rtol=1e-4, atol=1e-5)
    layer.call(x, training=False)
    assert layer.backward(x) is x  # identity when inactive


def test_flatten_roundtrip(rng):
    layer = layers.Flatten()
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    assert layer(x).shape == (2, 12)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 12)
    assert layer.compute_output_shape((None, None, 4)) == (None, None)
    assert layer.backward(np.ones((2, 12), np.float32)).shape == (2, 3, 4)


def test_buffers_are_reused_across_batches(rng):
    layer = layers.Dense(4, activation="relu")
    x = rng.standard_normal((8, 3)).astype(np.float32)
    layer(x)
    first = layer.call(x)
    second = layer.call(x + 1)
    assert np.shares_memory(first, second)
    layer.call(x[:5])
    assert np.shares_memory(layer.call(x), first)


def test_dense_get_set_weights_keras_shapes_and_order():
    layer = layers.Dense(3, input_shape=(4,))
    layer(np.zeros((1, 4)))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    layer.set_weights([np.ones((4, 3)), np.arange(3)])
    np.testing.assert_array_equal(layer(np.ones((1, 4))), [[4, 5, 6]])
    assert layer.count_params() == 15
    with pytest.raises(ValueError, match=r"set_weights expected 2 arrays of shapes \[\(4, 3\), "):
        layer.set_weights([np.ones((4, 3))])


LAYER_FACTORIES = [
    lambda: layers.Dense(5, activation="gelu", use_bias=False, kernel_initializer="he_normal",
                         kernel_regularizer="l2", bias_regularizer=None, name="d"),
    lambda: layers.Dense(2, input_shape=(7,), kernel_regularizer=None),
    lambda: layers.Activation("tanh"),
    lambda: layers.ReLU(negative_slope=0.3),
    lambda: layers.Softmax(),
    lambda: layers.Dropout(0.3, seed=5),
    lambda: layers.Flatten(),
    lambda: layers.InputLayer(shape=(3, 2)),
]


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_config_roundtrip(factory):
    layer = factory()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert base.get_layer_class(type(layer).__name__) is type(layer)


def test_names_are_unique_and_keras_like():
    a, b = layers.Dense(1), layers.Dense(1)
    assert a.name.startswith("dense") and a.name != b.name
    assert layers.ReLU().name.startswith("re_lu")


def test_input_declarations():
    assert layers.Input((4,)).shape == (4,)
    assert layers.InputLayer(input_shape=(2, 3)).shape == (2, 3)
    assert layers.InputLayer(batch_input_shape=(None, 5)).shape == (5,)
    assert layers.Dense(2, input_dim=6)._declared_input_shape == (6,)
    assert layers.Dense(2, batch_input_shape=(None, 6))._declared_input_shape == (6,)


@pytest.mark.parametrize("identifier,expected", [
    (None, ("linear", 0.0)), ("ReLU", ("relu", 0.0)), (activations.elu, ("elu", 1.0)),
    ("leaky_relu", ("leaky_relu", 0.2)),
])
def test_activation_resolution(identifier, expected):
    assert activations.resolve(identifier) == expected


@pytest.mark.parametrize("name", [a for a, _ in ACTS])
def test_activation_functions_by_name(rng, name):
    x = rng.standard_normal((3, 4))
    alpha = dict(ACTS)[name]
    np.testing.assert_allclose(activations.get(name)(x), activation(name, x, alpha),
                               rtol=1e-5, atol=1e-6)
    assert activations.serialize(activations.get(name)) == name


# ---- every raise in fastnn.layers and fastnn.activations --------------------------------

@pytest.mark.parametrize("call,exc,match", [
    (lambda: layers.Dense(0), ValueError, r"Dense: units must be an int >= 1, received units=0"),
    (lambda: layers.Dense(2.5), TypeError, "units must be an int"),
    (lambda: layers.Dense(2, foo=1), TypeError, r"Dense: unexpected keyword argument\(s\) \['foo'"),
    (lambda: layers.Dense(2, dtype="float64"), ValueError, "only float32 is supported"),
    (lambda: layers.Dense(2, name=3), TypeError, "name must be a string"),
    (lambda: layers.Dense(2, input_shape=5), TypeError, "input_shape must be a tuple"),
    (lambda: layers.Dense(2, input_shape=(0,)), ValueError, "must hold positive ints"),
    (lambda: layers.InputLayer(), ValueError, "InputLayer: shape is required"),
    (lambda: layers.ReLU(max_value=6.0), NotImplementedError, "max_value and threshold"),
    (lambda: layers.Softmax(axis=1), ValueError, "only axis=-1 is supported, received axis=1"),
    (lambda: layers.Dropout(1.0), ValueError, r"rate must be a finite number in \[0, 1\)"),
    (lambda: layers.Dropout(0.5, noise_shape=(1, 2)), NotImplementedError, "noise_shape"),
    (lambda: layers.Flatten(data_format="channels_first"), ValueError, "channels_last"),
    (lambda: base.get_layer_class("Conv9D"), ValueError, "Unknown layer class 'Conv9D'"),
    (lambda: activations.resolve("swish"), ValueError, "Unknown activation 'swish'"),
    (lambda: activations.resolve(np.exp), ValueError, "Unsupported activation function"),
    (lambda: activations.resolve(3), TypeError, "activation must be a string"),
    (lambda: activations.softmax([1.0], axis=0), ValueError, "only axis=-1"),
    (lambda: activations.gelu([1.0], approximate=True), ValueError, "approximate=True"),
])
def test_constructor_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_shape_errors_at_call():
    dense_layer = layers.Dense(2)
    dense_layer(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"expected last input dim 4, received shape \(3, 5\)"):
        dense_layer(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="needs a known last dimension"):
        layers.Dense(2).build_for((None,))
    act = layers.Activation("relu")
    act(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"expected input shape \(None, 3\), received shape"):
        act(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="leading batch dimension"):
        layers.Activation("relu")(np.float32(1.0))


def test_base_class_hooks_raise():
    layer = base.Layer()
    with pytest.raises(NotImplementedError, match="does not implement call"):
        layer.call(np.zeros((1, 1), np.float32))
    with pytest.raises(NotImplementedError, match="does not implement backward"):
        layer.backward(np.zeros((1, 1), np.float32))
    with pytest.raises(NotImplementedError, match="cannot fuse"):
        layer.backward_logits(np.zeros((1, 1), np.float32))


TORCH_ACTS = {"linear": lambda t, a: t, "relu": lambda t, a: t.relu(),
              "sigmoid": lambda t, a: t.sigmoid(), "tanh": lambda t, a: t.tanh(),
              "softmax": lambda t, a: t.softmax(-1), "elu": None, "gelu": None,
              "leaky_relu": None}


@pytest.mark.parametrize("act,alpha", ACTS)
def test_dense_matches_torch(rng, act, alpha):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    ops = dict(TORCH_ACTS, elu=lambda t, a: fn.elu(t, a), gelu=lambda t, a: fn.gelu(t),
               leaky_relu=lambda t, a: fn.leaky_relu(t, a))
    layer = layers.Dense(4, activation=act, bias_initializer="random_normal")
    x = rng.standard_normal((6, 5)).astype(np.float32)
    layer(x)
    y = layer.call(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(layer.weights[0], dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(layer.weights[1], dtype=torch.float64, requires_grad=True)
    yt = ops[act](xt @ wt + bt, alpha)
    (yt * torch.tensor(dy, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.grads[0], wt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.grads[1], bt.grad.numpy(), rtol=1e-4, atol=1e-5)
