"""layers.SimpleRNN and layers.GRU: against the float64 references (outputs, states, every
gradient, dropout), Keras's initialisation, states in and out, stacking in Sequential with
summary, configs and saving, and every error path."""

import numpy as np
import pytest
from _reference_lstm import ref_gru, ref_gru_grads, ref_simple_rnn, ref_simple_rnn_grads

import fastnn as keras
from fastnn import layers

CLASSES = [layers.SimpleRNN, layers.GRU]


def _close(got, want, tol=2e-5):
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


def _ref_args(layer, x, h0=None):
    """The reference's leading arguments for a built layer: x, weights, h0, activations."""
    kernel, rkernel = layer.weights[:2]
    bias = layer.weights[2] if layer.use_bias else None
    acts = (layer.activation,)
    if isinstance(layer, layers.GRU):
        acts += (layer.recurrent_activation,)
    return (x, kernel, rkernel, bias, h0), acts


def reference(layer, x, h0=None, h_mask=None):
    """(y, h_last) of the float64 reference of the layer's cell."""
    (args, acts), gru = _ref_args(layer, x, h0), isinstance(layer, layers.GRU)
    out = (ref_gru if gru else ref_simple_rnn)(*args, *acts, layer.go_backwards, h_mask)
    return out[0], out[1]


def reference_grads(layer, x, dy, dh, h0=None, h_mask=None):
    """(dx, dkernel, drecurrent_kernel, dbias, dh0) of the float64 reference."""
    (args, acts), gru = _ref_args(layer, x, h0), isinstance(layer, layers.GRU)
    grads = ref_gru_grads if gru else ref_simple_rnn_grads
    return grads(*args, dy, dh, *acts, layer.go_backwards, h_mask)


def _check_training_step(layer, x, dout):
    """The backward of a training forward of a built layer against the reference."""
    h_mask, in_mask = layer._saved["h_mask"], layer._saved["in_mask"]
    xm = x if in_mask is None else x * in_mask
    dy, dh = (dout, None) if layer.return_sequences else (None, dout)
    want = reference_grads(layer, xm, dy, dh, h_mask=h_mask)
    dx = layer.backward(dout)
    _close(dx, want[0] if in_mask is None else want[0] * in_mask)
    for got, ref in zip(layer.grads, want[1:4]):
        _close(got, ref)
    assert len(layer.grads) == (3 if layer.use_bias else 2)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_backward_match_reference(rng, cls, return_sequences, go_backwards, use_bias):
    layer = cls(
        7, return_sequences=return_sequences, go_backwards=go_backwards, use_bias=use_bias,
        bias_initializer="random_normal", activation="relu" if use_bias else "tanh",
    )
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    out = layer(x)
    y, h = reference(layer, x)
    _close(out, y if return_sequences else h)
    _close(layer.call(x, training=True), out)
    _check_training_step(layer, x, rng.standard_normal(out.shape).astype(np.float32))


@pytest.mark.parametrize("cls", CLASSES)
def test_dropout_masks(rng, cls):
    x = rng.standard_normal((6, 5, 4)).astype(np.float32)
    layer = cls(8, dropout=0.4, recurrent_dropout=0.3, seed=3, return_sequences=True)
    plain = layer(x)  # inference: no dropout
    _close(plain, reference(layer, x)[0])
    y = layer.call(x, training=True)
    h_mask, in_mask = layer._saved["h_mask"], layer._saved["in_mask"]
    assert set(np.unique(in_mask)) <= {0.0, np.float32(1 / 0.6)}
    assert set(np.unique(h_mask)) <= {0.0, np.float32(1 / 0.7)}
    assert in_mask.shape == (6, 1, 4) and h_mask.shape == (6, 8)
    _close(y, reference(layer, x * in_mask, h_mask=h_mask)[0])
    _check_training_step(layer, x, rng.standard_normal(y.shape).astype(np.float32))


@pytest.mark.parametrize("cls,gates,bias_shape", [(layers.SimpleRNN, 1, (5,)),
                                                  (layers.GRU, 3, (2, 15))])
def test_keras_initialisation_and_weights(cls, gates, bias_shape):
    layer = cls(5)
    layer(np.zeros((2, 3, 4), np.float32))
    kernel, rkernel, bias = layer.weights
    assert (kernel.shape, rkernel.shape, bias.shape) == ((4, 5 * gates), (5, 5 * gates),
                                                         bias_shape)
    assert np.abs(kernel).max() <= np.sqrt(6.0 / (4 + 5 * gates))  # glorot_uniform
    # orthogonal on (units, gates*units): orthonormal rows
    np.testing.assert_allclose(rkernel @ rkernel.T, np.eye(5), atol=1e-5)
    assert not bias.any() and layer.count_params() == kernel.size + rkernel.size + bias.size
    assert [w.dtype for w in layer.weights] == [np.float32] * 3


@pytest.mark.parametrize("cls", CLASSES)
def test_initial_state_and_return_state(rng, cls):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 5)).astype(np.float32)
    layer = cls(5, return_state=True, return_sequences=True)
    seq, h = layer(x, initial_state=[h0])
    y, rh = reference(layer, x, h0)
    _close(seq, y)
    _close(h, rh)
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name} layer .*initial_state must be \[h0\], rec"):
        layer(x, initial_state=[h0, h0])
    with pytest.raises(ValueError, match=r"initial state h0 must have shape \(2, 5\)"):
        layer(x, initial_state=[h0[:, :4]])


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.GRU, layers.LSTM])
def test_input_gradient_skipped_on_first_layer(rng, cls):
    layer = cls(3)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    layer(x)
    layer.input_grad_needed = False
    layer.call(x, training=True)
    assert layer.backward(np.ones((2, 3), np.float32)) is None
    assert layer.grads[0].any() and layer.grads[1].any()


@pytest.mark.parametrize("cls,params", [(layers.SimpleRNN, 304), (layers.GRU, 960)])
def test_stacked_in_sequential_learns_saves_and_summarises(tmp_path, rng, capsys, cls, params):
    """cls(return_sequences) -> cls(go_backwards) -> Dense: the sign of the sum of the first
    two of eight noisy steps. params: the first layer's (2*16 + 16*16 + 16 per gate, GRU's
    bias twice)."""
    keras.utils.set_random_seed(0)
    x = rng.standard_normal((512, 8, 2)).astype(np.float32)
    y = (x[:, :2].sum(axis=(1, 2)) > 0).astype(np.int64)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 2)),
            cls(16, return_sequences=True),
            cls(16, go_backwards=True),
            layers.Dense(2, activation="softmax"),
        ]
    )
    adam = keras.optimizers.Adam(learning_rate=1e-2)
    model.compile(adam, "sparse_categorical_crossentropy", metrics=["accuracy"])
    losses = model.fit(x, y, epochs=15, batch_size=32, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0] and model.evaluate(x, y, verbose=0)[1] > 0.9
    assert model.output_shape == (None, 2)
    assert model.layers[0].compute_output_shape((None, 8, 2)) == (None, 8, 16)
    model.summary()
    text = capsys.readouterr().out
    assert cls.__name__ in text and "(None, 8, 16)" in text and str(params) in text
    before = model.predict(x[:5], verbose=0)
    model.save(tmp_path / "rnn.keras")
    loaded = keras.models.load_model(tmp_path / "rnn.keras")
    np.testing.assert_array_equal(loaded.predict(x[:5], verbose=0), before)


@pytest.mark.parametrize("cls", CLASSES)
def test_config_round_trip(cls):
    layer = cls(
        4, activation="relu", dropout=0.1, recurrent_dropout=0.2, seed=5, return_sequences=True,
        go_backwards=True, kernel_regularizer="l2", use_bias=False, return_state=True,
    )
    cfg = layer.get_config()
    assert cls.from_config(cfg).get_config() == cfg
    assert cfg["units"] == 4 and cfg["activation"] == "relu" and cfg["use_bias"] is False
    if cls is layers.GRU:
        assert cfg["recurrent_activation"] == "sigmoid" and cfg["reset_after"] is True


@pytest.mark.parametrize(
    "cls,kwargs,error,match",
    [
        (layers.SimpleRNN, {"units": 0}, ValueError, "units must be an int >= 1"),
        (layers.SimpleRNN, {"units": 3, "activation": "gelu"}, ValueError,
         "activation must be one of"),
        (layers.SimpleRNN, {"units": 3, "recurrent_dropout": -0.1}, ValueError,
         "recurrent_dropout must be"),
        (layers.SimpleRNN, {"units": 3, "stateful": True}, NotImplementedError,
         "SimpleRNN: stateful"),
        (layers.SimpleRNN, {"units": 3, "reset_after": True}, TypeError, "unexpected keyword"),
        (layers.GRU, {"units": 3, "reset_after": False}, NotImplementedError,
         "GRU: reset_after=False .* is not supported"),
        (layers.GRU, {"units": 3, "recurrent_activation": "softmax"}, ValueError,
         "GRU: recurrent_activation must be one of"),
        (layers.GRU, {"units": -1}, ValueError, "GRU: units must be an int >= 1"),
    ],
)
def test_constructor_errors(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def _built(cls, units=3, features=5):
    layer = cls(units)
    layer(np.zeros((2, 4, features), np.float32))
    return layer


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda cls: cls(3)(np.zeros((2, 4))), ValueError, r"\(batch, time, features\)"),
        (lambda cls: _built(cls)(np.zeros((2, 4, 6))), ValueError, r"shape \(batch, time, 5\)"),
        (lambda cls: _built(cls).backward(np.zeros((2, 3))), RuntimeError,
         "needs a training forward"),
    ],
)
def test_call_errors(cls, call, error, match):
    with pytest.raises(error, match=f"{cls.__name__} layer .*" + match):
        call(cls)
