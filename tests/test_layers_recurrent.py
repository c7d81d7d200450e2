"""Recurrent layers: LSTM and Embedding against float64 references and PyTorch, Keras's
initialisation, dropout, stacking inside Sequential, configs and saving, every error path,
and the sequence example."""

import warnings

import numpy as np
import pytest
from _reference_lstm import ref_lstm, ref_lstm_grads

import fastnn as keras
from fastnn import layers
from fastnn.examples import sequence


def _weights(layer):
    """(kernel, recurrent_kernel, bias or None) of a built LSTM."""
    w = layer.weights
    return w[0], w[1], (w[2] if len(w) > 2 else None)


def _close(got, want, tol=2e-5):
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_lstm_forward_backward_match_reference(rng, return_sequences, go_backwards, use_bias):
    layer = layers.LSTM(
        7,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        use_bias=use_bias,
        bias_initializer="random_normal",
    )
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    out = layer(x)
    kernel, rkernel, bias = _weights(layer)
    y, h, _, _ = ref_lstm(x, kernel, rkernel, bias, go_backwards=go_backwards)
    _close(out, y if return_sequences else h)
    y_train = layer.call(x, training=True)
    _close(y_train, y if return_sequences else h)
    dout = rng.standard_normal(y_train.shape).astype(np.float32)
    dx = layer.backward(dout)
    dy, dh = (dout, None) if return_sequences else (None, dout)
    want = ref_lstm_grads(
        x, kernel, rkernel, bias, None, None, dy, dh, None, go_backwards=go_backwards
    )
    _close(dx, want[0])
    _close(layer.grads[0], want[1])
    _close(layer.grads[1], want[2])
    if use_bias:
        _close(layer.grads[2], want[3])
    assert len(layer.grads) == (3 if use_bias else 2)


def test_lstm_keras_initialisation_and_weights(rng):
    layer = layers.LSTM(5)
    layer(np.zeros((2, 3, 4), np.float32))
    kernel, rkernel, bias = _weights(layer)
    assert kernel.shape == (4, 20) and rkernel.shape == (5, 20) and bias.shape == (20,)
    assert [w.dtype for w in layer.weights] == [np.float32] * 3
    limit = np.sqrt(6.0 / (4 + 20))  # glorot_uniform on (in, 4*units)
    assert np.abs(kernel).max() <= limit
    np.testing.assert_allclose(rkernel @ rkernel.T, np.eye(5), atol=1e-5)  # orthogonal rows
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    no_forget = layers.LSTM(5, unit_forget_bias=False)
    no_forget(np.zeros((2, 3, 4), np.float32))
    assert not no_forget.weights[2].any()
    assert layer.count_params() == 4 * 20 + 5 * 20 + 20


def test_lstm_matches_torch_layer(rng):
    torch = pytest.importorskip("torch")
    layer = layers.LSTM(6, return_sequences=True)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    out = layer(x)
    kernel, rkernel, bias = _weights(layer)
    ref = torch.nn.LSTM(4, 6, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
        ref.weight_hh_l0.copy_(torch.from_numpy(rkernel.T))
        ref.bias_ih_l0.copy_(torch.from_numpy(bias))
        ref.bias_hh_l0.zero_()
        want, _ = ref(torch.from_numpy(x))
    _close(out, want.numpy())


def test_lstm_dropout_masks(rng):
    x = rng.standard_normal((6, 5, 4)).astype(np.float32)
    layer = layers.LSTM(8, dropout=0.4, recurrent_dropout=0.3, seed=3, return_sequences=True)
    plain = layer(x)  # inference: no dropout
    kernel, rkernel, bias = _weights(layer)
    _close(plain, ref_lstm(x, kernel, rkernel, bias)[0])
    y = layer.call(x, training=True)
    h_mask, in_mask = layer._saved["h_mask"], layer._saved["in_mask"]
    assert set(np.unique(in_mask)) <= {0.0, np.float32(1 / 0.6)}
    assert in_mask.shape == (6, 1, 4) and h_mask.shape == (6, 8)
    xm = x * in_mask
    _close(y, ref_lstm(xm, kernel, rkernel, bias, h_mask=h_mask)[0])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    want = ref_lstm_grads(xm, kernel, rkernel, bias, None, None, dy, None, None, h_mask=h_mask)
    _close(dx, want[0] * in_mask)
    _close(layer.grads[0], want[1])
    _close(layer.grads[1], want[2])


def test_lstm_state_in_and_out(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 5)).astype(np.float32)
    c0 = rng.standard_normal((2, 5)).astype(np.float32)
    layer = layers.LSTM(5, return_state=True)
    out, h, c = layer(x, initial_state=[h0, c0])
    kernel, rkernel, bias = _weights(layer)
    _, rh, rc, _ = ref_lstm(x, kernel, rkernel, bias, h0, c0)
    _close(out, rh)
    _close(h, rh)
    _close(c, rc)
    with pytest.raises(ValueError, match="initial_state must be"):
        layer(x, initial_state=[h0])
    with pytest.raises(ValueError, match=r"initial state c0 must have shape \(2, 5\)"):
        layer(x, initial_state=[h0, c0[:, :4]])


def test_embedding_forward_and_sparse_gradient(rng):
    layer = layers.Embedding(12, 4)
    ids = np.array([[1, 3, 3], [0, 11, 3]])
    out = layer(ids)
    table = layer.weights[0]
    np.testing.assert_array_equal(out, table[ids])
    assert np.abs(table).max() <= 0.05  # Keras's "uniform": U(-0.05, 0.05)
    layer.call(ids.astype(np.float32), training=True)
    dout = rng.standard_normal((2, 3, 4)).astype(np.float32)
    assert layer.backward(dout) is None
    one_hot = np.eye(12)[ids.ravel()]
    np.testing.assert_allclose(layer.grads[0], one_hot.T @ dout.reshape(-1, 4), atol=1e-6)
    # the next batch clears the rows of the last one and fills only its own
    layer.call(np.array([[5, 5, 2], [2, 2, 2]], np.float32), training=True)
    layer.backward(np.ones((2, 3, 4), np.float32))
    expected = np.zeros((12, 4))
    expected[5], expected[2] = 2.0, 4.0
    np.testing.assert_array_equal(layer.grads[0], expected)


def test_embedding_with_regularizer_rebuilds_whole_gradient(rng):
    layer = layers.Embedding(6, 2, embeddings_regularizer="l2")
    ids = np.array([[1, 2]], np.float32)
    layer(ids)
    layer.call(ids, training=True)
    layer.backward(np.ones((1, 2, 2), np.float32))
    layer.regularization_penalty(with_grads=True)
    assert layer.grads[0][4].any()  # the penalty's gradient reaches every row
    layer.call(np.array([[3, 3]], np.float32), training=True)
    layer.backward(np.ones((1, 2, 2), np.float32))
    assert not layer.grads[0][4].any() and (layer.grads[0][3] == 2.0).all()


def test_stacked_lstms_learn_in_sequential(rng):
    """Embedding -> LSTM(return_sequences) -> LSTM(go_backwards) -> Dense: XOR of the first
    two of six binary ids."""
    keras.utils.set_random_seed(0)
    ids = rng.integers(0, 2, size=(512, 6))
    y = ids[:, 0] ^ ids[:, 1]
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            layers.Embedding(2, 8),
            layers.LSTM(16, return_sequences=True),
            layers.LSTM(16, go_backwards=True),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(ids, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(ids, y, verbose=0)[1] > 0.9
    assert model.output_shape == (None, 2)
    assert model.layers[1].compute_output_shape((None, 6, 8)) == (None, 6, 16)


def test_configs_round_trip_and_saving(tmp_path, rng):
    lstm = layers.LSTM(
        4,
        activation="relu",
        recurrent_activation="tanh",
        dropout=0.1,
        recurrent_dropout=0.2,
        seed=5,
        return_sequences=True,
        go_backwards=True,
        kernel_regularizer="l2",
        use_bias=False,
        unroll=True,
    )
    cfg = lstm.get_config()
    assert layers.LSTM.from_config(cfg).get_config() == cfg
    emb = layers.Embedding(7, 3, embeddings_regularizer="l1")
    cfg = emb.get_config()
    assert layers.Embedding.from_config(cfg).get_config() == cfg
    model = keras.Sequential(
        [keras.Input(shape=(5,)), layers.Embedding(7, 3), layers.LSTM(4), layers.Dense(2)]
    )
    x = rng.integers(0, 7, size=(3, 5))
    before = model.predict(x, verbose=0)
    path = tmp_path / "seq.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)


def test_errors():
    with pytest.raises(ValueError, match="activation must be one of"):
        layers.LSTM(3, activation="gelu")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        layers.LSTM(3, recurrent_activation="softmax")
    with pytest.raises(ValueError, match="units must be an int >= 1"):
        layers.LSTM(0)
    with pytest.raises(ValueError, match="dropout must be a finite number"):
        layers.LSTM(3, dropout=1.0)
    with pytest.raises(NotImplementedError, match="stateful"):
        layers.LSTM(3, stateful=True)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, time, features\)"):
        layers.LSTM(3)(np.zeros((2, 4), np.float32))
    layer = layers.LSTM(3)
    layer(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, time, 5\)"):
        layer(np.zeros((2, 4, 6), np.float32))
    with pytest.raises(RuntimeError, match="backward needs a training forward"):
        layer.backward(np.zeros((2, 3), np.float32))
    with pytest.raises(NotImplementedError, match="mask_zero"):
        layers.Embedding(5, 2, mask_zero=True)
    emb = layers.Embedding(5, 2)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 5\), received 5"):
        emb(np.array([[1, 5]]))
    with pytest.raises(ValueError, match="must be integer token ids"):
        emb(np.array([[1.5, 2.0]]))


def test_sequence_example_learns(capsys):
    error = sequence.main(["--epochs", "6", "--verbose", "0"])
    out = capsys.readouterr().out
    assert error < 0.35  # predicting 0 scores about 0.6, repeating the last value about 0.75
    assert "test RMSE" in out


def test_embedding_refuses_nan_ids_without_a_cast_warning():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Embedding(5, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="non-integral values such as .*nan"):
            model.predict(np.array([[0.0, np.nan, 1.0]]), verbose=0)
