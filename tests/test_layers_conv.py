"""Convolution and pooling layers: gradients against float64 finite differences and PyTorch,
shapes, summary, configs, build errors, a CNN trained end to end, and the digits CNN example."""

import itertools

import numpy as np
import pytest
from _reference import activation, numerical_grad
from _reference_conv import ref_conv2d

import fastnn as keras
from fastnn import layers
from fastnn.layers import base


def ref_conv(x, kernel, bias, strides, padding, dilation, act="linear", alpha=0.0):
    """float64 conv2d of NHWC x with an HWIO kernel, then act; padding as Keras/TF."""
    return activation(act, ref_conv2d(x, kernel, bias, strides, padding, dilation), alpha)


def _grad_check(layer, x, reference, rng, input_grad=True, tol=2e-4):
    layer(x)
    layer.input_grad_needed = input_grad
    y = layer.call(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy.astype(np.float32))
    weights = [w.astype(np.float64) for w in layer.weights]
    if input_grad:
        num = numerical_grad(lambda v: np.sum(dy * reference(v, weights)), x)
        np.testing.assert_allclose(dx, num, rtol=tol, atol=tol)
    else:
        assert dx is None
    for i, grad in enumerate(layer.grads):

        def f(wi, i=i):
            ws = list(weights)
            ws[i] = wi
            return np.sum(dy * reference(x.astype(np.float64), ws))

        np.testing.assert_allclose(grad, numerical_grad(f, weights[i]), rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "act,strides,padding,dilation",
    [
        ("linear", 1, "same", 1),
        ("relu", 2, "same", 1),
        ("tanh", (1, 2), "valid", 1),
        ("gelu", 1, "valid", 2),
        ("elu", 1, "same", (2, 1)),
    ],
)
def test_conv2d_gradients(rng, act, strides, padding, dilation):
    layer = layers.Conv2D(
        3,
        (3, 2),
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        activation=act,
        bias_initializer="random_normal",
    )
    x = rng.standard_normal((2, 6, 7, 2)).astype(np.float32)
    s, d = layer.strides, layer.dilation_rate

    def reference(v, ws):
        return ref_conv(v, ws[0], ws[1], s, padding, d, layer.activation, layer.act_alpha)

    _grad_check(layer, x, reference, rng)


def test_conv1d_causal_gradients_and_first_layer(rng):
    layer = layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="sigmoid")
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)

    def reference(v, ws):
        y = ref_conv(v[:, None], ws[0][None], ws[1], (1, 1), "causal", (1, 2), "sigmoid")
        return y[:, 0]

    assert layer(x).shape == (2, 9, 4)
    _grad_check(layer, x, reference, rng)
    _grad_check(layer, x, reference, rng, input_grad=False)


@pytest.mark.parametrize(
    "cls,pool,strides,padding",
    [
        (layers.MaxPooling2D, 2, None, "valid"),
        (layers.MaxPooling2D, 3, 2, "same"),
        (layers.AveragePooling2D, 2, None, "valid"),
        (layers.AveragePooling2D, (3, 2), 1, "same"),
    ],
)
def test_pool2d_layers(rng, cls, pool, strides, padding):
    layer = cls(pool, strides, padding)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    y = layer(x)
    ref = keras.ops.max_pool2d if cls is layers.MaxPooling2D else keras.ops.avg_pool2d
    np.testing.assert_array_equal(y, ref(x, pool, strides, padding))
    assert (None,) + y.shape[1:] == layer.compute_output_shape((None,) + x.shape[1:])
    if cls is layers.AveragePooling2D:
        _grad_check(layer, x, lambda v, ws: _np_avg(v, layer), rng, tol=1e-4)
    else:
        layer.call(x, training=True)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_array_equal(
            layer.backward(dy), keras.ops.max_pool2d_backward(x, dy, pool, strides, padding)
        )


def _np_avg(v, layer):
    """float64 average pooling through the layer's geometry (windows clipped to the image)."""
    (kh, kw), (sh, sw) = layer.pool_size, layer.strides
    _, h, w, _ = v.shape
    out = layer.compute_output_shape(v.shape)
    y = np.zeros(out)
    for i, j in itertools.product(range(out[1]), range(out[2])):
        ph = max((out[1] - 1) * sh + kh - h, 0) // 2 if layer.padding == "same" else 0
        pw = max((out[2] - 1) * sw + kw - w, 0) // 2 if layer.padding == "same" else 0
        y0, x0 = max(i * sh - ph, 0), max(j * sw - pw, 0)
        y1, x1 = min(i * sh - ph + kh, h), min(j * sw - pw + kw, w)
        y[:, i, j] = v[:, y0:y1, x0:x1].mean(axis=(1, 2))
    return y


def test_pool1d_and_global_pools(rng):
    x = rng.standard_normal((3, 9, 4)).astype(np.float32)
    mp = layers.MaxPool1D(3, padding="same")
    y = mp(x)
    assert y.shape == (3, 3, 4)
    np.testing.assert_array_equal(y, x.reshape(3, 3, 3, 4).max(axis=2))
    x4 = rng.standard_normal((3, 5, 6, 4)).astype(np.float32)
    gap, gmp = layers.GlobalAveragePooling2D(), layers.GlobalMaxPooling2D(keepdims=True)
    np.testing.assert_allclose(gap(x4), x4.mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_array_equal(gmp(x4), x4.max(axis=(1, 2), keepdims=True))
    _grad_check(gap, x4, lambda v, ws: v.mean(axis=(1, 2)), rng)
    gmp.call(x4, training=True)
    dx = gmp.backward(np.ones((3, 1, 1, 4), np.float32))
    np.testing.assert_array_equal(dx, x4 == x4.max(axis=(1, 2), keepdims=True))


@pytest.mark.parametrize("act", ["relu", "linear"])
def test_conv2d_matches_torch(rng, act):
    torch = pytest.importorskip("torch")
    layer = layers.Conv2D(
        5, 3, strides=2, padding="same", activation=act, bias_initializer="random_normal"
    )
    x = rng.standard_normal((2, 8, 9, 4)).astype(np.float32)
    layer(x)
    y = layer.call(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(
        layer.weights[0].transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True
    )
    bt = torch.tensor(layer.weights[1], dtype=torch.float64, requires_grad=True)
    # 'same' for 8x9, stride 2, 3x3: pad (0, 1) rows and (1, 1) columns, odd pad after
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (1, 1, 0, 1)), wt, bt, stride=2)
    yt = yt.relu() if act == "relu" else yt
    (yt * torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-4)
    np.testing.assert_allclose(layer.grads[0], wt.grad.numpy().transpose(2, 3, 1, 0), atol=1e-4)
    np.testing.assert_allclose(layer.grads[1], bt.grad.numpy(), atol=1e-4)


LAYER_FACTORIES = [
    lambda: layers.Conv2D(
        8,
        (3, 2),
        strides=(2, 1),
        padding="same",
        activation="relu",
        kernel_regularizer="l2",
        name="c",
    ),
    lambda: layers.Conv2D(4, 1, dilation_rate=2, use_bias=False, input_shape=(5, 5, 3)),
    lambda: layers.Conv1D(3, 5, padding="causal", activation="tanh"),
    lambda: layers.MaxPooling2D((3, 3), strides=2, padding="same"),
    lambda: layers.MaxPool2D(),
    lambda: layers.AveragePooling2D(2, 1),
    lambda: layers.MaxPooling1D(2),
    lambda: layers.GlobalAveragePooling2D(keepdims=True),
    lambda: layers.GlobalMaxPooling2D(),
]


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_config_roundtrip(factory):
    layer = factory()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert base.get_layer_class(type(layer).__name__) is type(layer)


def test_summary_shapes_and_params(capsys):
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ]
    )
    model.summary()
    out = capsys.readouterr().out
    assert "(None, 26, 26, 32)" in out and "(None, 13, 13, 32)" in out
    assert "(None, 7, 7, 64)" in out and "(None, 64)" in out
    assert model.count_params() == 320 + 18496 + 650


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: layers.Conv2D(4, 3, strides=0), ValueError, r"Conv2D layer '.*': strides must"),
        (lambda: layers.Conv2D(0, 3), ValueError, "filters must be an int >= 1"),
        (lambda: layers.Conv2D(4, (3, 3, 3)), ValueError, "kernel_size must be an int or a tuple"),
        (lambda: layers.Conv2D(4, "3x3"), TypeError, "kernel_size must be an int"),
        (lambda: layers.Conv2D(4, 3, padding="causal"), ValueError, "padding must be one of"),
        (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), ValueError, "cannot be combined"),
        (lambda: layers.Conv2D(4, 3, groups=2), NotImplementedError, "groups"),
        (lambda: layers.Conv2D(4, 3, data_format="channels_first"), ValueError, "channels_last"),
        (lambda: layers.Conv1D(4, 2.5), TypeError, "kernel_size must be an int"),
        (lambda: layers.MaxPooling2D(0), ValueError, "pool_size must be an int >= 1"),
        (lambda: layers.MaxPooling2D(2, padding="full"), ValueError, "padding must be one of"),
        (
            lambda: layers.GlobalMaxPooling2D(data_format="channels_first"),
            ValueError,
            "channels_last",
        ),
    ],
)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_build_and_call_errors():
    """Shapes that cannot work fail when the model is built (at once, given an Input)."""
    with pytest.raises(ValueError, match=r"Conv2D layer 'big': the kernel spans 5 along"):
        keras.Sequential([keras.Input((3, 3, 1)), layers.Conv2D(4, 5, name="big")])
    late = keras.Sequential([layers.MaxPooling2D(4, name="p")])
    with pytest.raises(ValueError, match=r"MaxPooling2D layer 'p': the pool spans 4"):
        late.build((None, 3, 3, 1))
    with pytest.raises(ValueError, match=r"Conv2D layer 'flat': expected input of shape"):
        keras.Sequential([keras.Input((8,)), layers.Conv2D(2, 1, name="flat")])
    conv = layers.Conv2D(2, 3, name="cc")
    conv(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D layer 'cc': expected 3 input channels"):
        conv(np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"MaxPooling2D layer 'mp': expected input of rank 4"):
        layers.MaxPooling2D(name="mp")(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"GlobalAveragePooling2D layer 'g': expected input"):
        layers.GlobalAveragePooling2D(name="g").compute_output_shape((None, 0, 3, 2))


def test_cnn_fits_separable_images():
    """Bright top half vs bright bottom half: a tiny CNN separates them in a few epochs."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = rng.normal(0.0, 0.3, (256, 8, 8, 1)).astype(np.float32)
    x[y == 0, :4] += 1.0
    x[y == 1, 4:] += 1.0
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] >= 0.95


def test_digits_cnn_example_reaches_target(capsys):
    from fastnn.examples import digits_cnn

    accuracy = digits_cnn.main(["--verbose", "0"])
    assert accuracy >= 0.97
    assert "test accuracy" in capsys.readouterr().out


def test_cnn_save_and_load(tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((9, 8, 2)),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.MaxPool2D(),
            layers.Conv2D(3, 2, strides=2),
            layers.GlobalAveragePooling2D(),
        ]
    )
    x = rng.standard_normal((3, 9, 8, 2)).astype(np.float32)
    path = tmp_path / "cnn.fastnn"
    model.save(path)
    clone = keras.models.load_model(path)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
