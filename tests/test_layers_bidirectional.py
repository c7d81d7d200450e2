"""layers.Bidirectional: outputs and every gradient against torch's bidirectional LSTM/GRU and
against two plain fastnn layers for every merge mode, a finite-difference check through a
stacked model, states in and out, dropout and regularizers, training, saving, configs, the
load guard and every error path."""

import json

import numpy as np
import pytest
from _reference import numerical_grad

import fastnn as keras
from fastnn import layers, regularizers, saving
from fastnn.errors import ModelFileError
from fastnn.models.sequential import expect_weight_shapes

MODES = ["concat", "sum", "mul", "ave", None]


def _close(got, want, tol=2e-5):
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


def _randomize(layer, rng, scale=0.5):
    """Random weights (biases included) for a built layer."""
    layer.set_weights([scale * rng.standard_normal(w.shape) for w in layer.weights])


def _built(bi, rng, x):
    bi(x)
    _randomize(bi, rng)
    return bi


# ---- against torch -----------------------------------------------------------------------


def _gru_torch_order(a):
    """Keras's gate blocks z | r | h <-> torch's r | z | n (the swap is its own inverse)."""
    z, r, h = np.split(np.asarray(a), 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _torch_params(layer, gru):
    """(kernel.T, recurrent_kernel.T, bias_ih, bias_hh) in torch's layout for one direction."""
    order = _gru_torch_order if gru else (lambda a: a)
    kernel, rkernel, bias = layer.weights
    if gru:
        return order(kernel).T, order(rkernel).T, order(bias[0]), order(bias[1])
    return kernel.T, rkernel.T, bias, np.zeros_like(bias)


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (1, 1, 2, 3)])
def test_matches_torch_bidirectional(rng, cls, return_sequences, shape):
    """nn.LSTM/GRU(bidirectional=True): its output sequence is Keras's concat merge (the
    reverse direction aligned with the input steps); its h_n the last outputs."""
    torch = pytest.importorskip("torch")
    batch, time, features, units = shape
    gru = cls is layers.GRU
    x = rng.standard_normal((batch, time, features)).astype(np.float32)
    bi = _built(layers.Bidirectional(cls(units, return_sequences=return_sequences)), rng, x)
    module = getattr(torch.nn, cls.__name__)(features, units, batch_first=True,
                                             bidirectional=True).double()
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    params = dict(module.named_parameters())
    with torch.no_grad():
        for suffix, layer in (("", bi.forward_layer), ("_reverse", bi.backward_layer)):
            for name, value in zip(names, _torch_params(layer, gru)):
                params[name + suffix].copy_(torch.from_numpy(np.asarray(value, np.float64)))
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    seq, state = module(xt)
    h_n = state[0] if isinstance(state, tuple) else state
    out = seq if return_sequences else torch.cat([h_n[0], h_n[1]], dim=-1)
    dout = rng.standard_normal(tuple(out.shape))
    (out * torch.from_numpy(dout)).sum().backward()

    got = bi.call(x, training=True)
    _close(got, out.detach().numpy())
    _close(bi.backward(dout.astype(np.float32)), xt.grad.numpy())
    for suffix, layer in (("", bi.forward_layer), ("_reverse", bi.backward_layer)):
        g = [params[name + suffix].grad.numpy() for name in names]
        if gru:
            want = [_gru_torch_order(g[0].T), _gru_torch_order(g[1].T),
                    np.stack([_gru_torch_order(g[2]), _gru_torch_order(g[3])])]
        else:  # torch's two biases add up to Keras's one: both get its gradient
            want = [g[0].T, g[1].T, g[2]]
        for got, ref in zip(layer.grads, want, strict=True):
            _close(got, ref)


# ---- against two plain layers ------------------------------------------------------------


def _composition(bi, x, dout):
    """Output and (dx, grads) of two plain layers with the wrapper's configs and weights,
    merged in float64 as Keras writes it."""
    pair = []
    for inner in bi.sublayers:
        config = {**inner.get_config(), "name": None}
        plain = type(inner).from_config(config)
        plain(x)
        plain.set_weights(inner.get_weights())
        pair.append(plain)
    y, y_rev = (p.call(x, training=True).astype(np.float64) for p in pair)
    if bi.return_sequences:
        y_rev = y_rev[:, ::-1]
    merge = {"concat": lambda: np.concatenate([y, y_rev], axis=-1), "sum": lambda: y + y_rev,
             "mul": lambda: y * y_rev, "ave": lambda: (y + y_rev) / 2,
             None: lambda: [y, y_rev]}
    out = merge[bi.merge_mode]()
    units = y.shape[-1]
    grads = {"concat": lambda: (dout[..., :units], dout[..., units:]),
             "sum": lambda: (dout, dout), "mul": lambda: (dout * y_rev, dout * y),
             "ave": lambda: (dout / 2, dout / 2), None: lambda: dout}
    dy, dy_rev = grads[bi.merge_mode]()
    if bi.return_sequences:
        dy_rev = dy_rev[:, ::-1]
    dx = (pair[0].backward(np.float32(dy)).astype(np.float64)
          + pair[1].backward(np.float32(dy_rev)))
    return out, dx, pair[0].grads + pair[1].grads


@pytest.mark.parametrize("merge_mode", MODES)
@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 4), (1, 1, 2)])
def test_matches_two_layers(rng, merge_mode, cls, return_sequences, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    bi = layers.Bidirectional(cls(3, return_sequences=return_sequences), merge_mode=merge_mode)
    _built(bi, rng, x)
    out_shape = bi.compute_output_shape((None,) + shape[1:])
    out = bi.call(x, training=True)
    if merge_mode is None:
        dout = [rng.standard_normal(o.shape).astype(np.float32) for o in out]
        assert [o.shape for o in out] == [(shape[0],) + s[1:] for s in out_shape]
    else:
        dout = rng.standard_normal(out.shape).astype(np.float32)
        assert out.shape == (shape[0],) + out_shape[1:]
    want, want_dx, want_grads = _composition(bi, x, dout)
    _close(out, want)
    _close(bi.backward(dout), want_dx)
    assert len(bi.grads) == len(want_grads) == 6
    for got, ref in zip(bi.grads, want_grads):
        _close(got, ref)
    inference = bi(x)
    _close(inference, want)  # no dropout: training and inference agree


def test_custom_backward_layer(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    backward = layers.GRU(5, activation="relu", go_backwards=True, return_sequences=True)
    bi = layers.Bidirectional(layers.GRU(2, return_sequences=True), backward_layer=backward)
    _built(bi, rng, x)
    assert bi.backward_layer is backward and bi.forward_layer.name.startswith("forward_gru")
    out = bi.call(x, training=True)
    assert out.shape == (2, 4, 7)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    want, want_dx, want_grads = _composition(bi, x, dout)
    _close(out, want)
    _close(bi.backward(dout), want_dx)
    for got, ref in zip(bi.grads, want_grads):
        _close(got, ref)


def test_states_in_and_out(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    bi = layers.Bidirectional(layers.LSTM(3, return_state=True), merge_mode="sum")
    states = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(4)]
    out, hf, cf, hb, cb = bi(x, initial_state=states)
    fwd = bi.forward_layer(x, initial_state=states[:2])
    bwd = bi.backward_layer(x, initial_state=states[2:])
    _close(out, fwd[0] + bwd[0])
    for got, want in zip([hf, cf, hb, cb], fwd[1:] + bwd[1:]):
        _close(got, want)
    assert bi.compute_output_shape((None, 4, 3)) == (None, 3)
    both = layers.Bidirectional(layers.GRU(2, return_state=True), merge_mode=None)(x)
    assert [a.shape for a in both] == [(2, 2)] * 4


def test_state_gradients_reach_both_layers(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    bi = _built(layers.Bidirectional(layers.GRU(3, return_state=True)), rng, x)
    out = bi.call(x, training=True)
    dout, dhf, dhb = (rng.standard_normal(s).astype(np.float32)
                      for s in (out.shape, (2, 3), (2, 3)))
    dx = bi.backward(dout, dhf, dhb)
    plain = [type(inner).from_config({**inner.get_config(), "name": None})
             for inner in bi.sublayers]
    want = 0.0
    for p, inner, grad, dh in zip(plain, bi.sublayers, (dout[:, :3], dout[:, 3:]), (dhf, dhb)):
        p(x)
        p.set_weights(inner.get_weights())
        p.call(x, training=True)
        want = want + p.backward(grad, dh)
    _close(dx, want)


# ---- finite differences through a stacked model ------------------------------------------


def test_finite_differences_through_a_stack(rng):
    """A float32 central-difference check of d(sum(w * model(x))) w.r.t. x and every
    weight of Bidirectional(LSTM, seq, mul) -> Bidirectional(GRU, ave) -> Dense."""
    model = keras.Sequential([
        layers.Input((3, 2)),
        layers.Bidirectional(layers.LSTM(2, return_sequences=True), merge_mode="mul"),
        layers.Bidirectional(layers.GRU(2), merge_mode="ave"),
        layers.Dense(1),
    ])
    for layer in model.layers:
        _randomize(layer, rng, scale=0.8)
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    w = rng.standard_normal((2, 1))

    def loss(xv):
        return float(np.sum(model._forward(np.float32(xv), training=False) * w))

    out = model._forward(x, training=True)
    grad = np.float32(w * np.ones_like(out))
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    eps, tol = 1e-2, 2e-3  # float32 forwards: eps large enough for the rounding
    np.testing.assert_allclose(numerical_grad(loss, x, eps), grad, rtol=0, atol=tol)

    def loss_at(weight):
        def f(value):
            np.copyto(weight, value)
            return loss(x)
        return f

    for layer in model.layers:
        for weight, analytic in zip(layer.weights, layer.grads):
            keep = weight.copy()
            numeric = numerical_grad(loss_at(weight), keep, eps)
            np.copyto(weight, keep)
            np.testing.assert_allclose(numeric, analytic, rtol=0, atol=tol, err_msg=layer.name)


# ---- training behaviour ------------------------------------------------------------------


def test_dropout_in_training(rng):
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    bi = layers.Bidirectional(layers.LSTM(4, dropout=0.5, recurrent_dropout=0.3, seed=2,
                                          return_sequences=True))
    plain = bi(x)
    _close(bi(x), plain)  # inference: no dropout
    train = bi.call(x, training=True)
    assert not np.allclose(train, plain)
    masks = [inner._saved["in_mask"] for inner in bi.sublayers]
    assert all(m is not None and m.shape == (4, 1, 3) for m in masks)
    dx = bi.backward(np.ones_like(train))
    dropped = (masks[0] == 0) & (masks[1] == 0)
    assert np.all(dx[np.broadcast_to(dropped, dx.shape)] == 0.0)


def test_regularizers_of_both_layers_count(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    bi = layers.Bidirectional(layers.SimpleRNN(3, kernel_regularizer=regularizers.L2(0.1)))
    bi(x)
    kernels = [bi.forward_layer.kernel, bi.backward_layer.kernel]
    want = sum(0.1 * float(np.sum(np.float64(k) ** 2)) for k in kernels)
    assert bi.regularization_penalty() == pytest.approx(want, rel=1e-5)
    bi.call(x, training=True)
    bi.backward(np.zeros((2, 6), np.float32))
    assert bi.regularization_penalty(with_grads=True) == pytest.approx(want, rel=1e-5)
    _close(bi.grads[0], 0.2 * kernels[0])
    _close(bi.grads[3], 0.2 * kernels[1])


def test_trainable_reaches_both_layers():
    bi = layers.Bidirectional(layers.GRU(2), trainable=False)
    assert not bi.forward_layer.trainable and not bi.backward_layer.trainable
    bi.trainable = True
    assert bi.forward_layer.trainable and bi.backward_layer.trainable


def _stack(merge_mode="concat"):
    return keras.Sequential([
        layers.Input((6, 2)),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True), merge_mode=merge_mode),
        layers.Bidirectional(layers.GRU(3)),
        layers.Dense(2, activation="softmax"),
    ])


def _sequences(rng, n=64):
    """Label: whether the first step's first feature is positive (the backward direction
    reads it last)."""
    x = rng.standard_normal((n, 6, 2)).astype(np.float32)
    return x, (x[:, 0, 0] > 0).astype(np.int64)


def test_stack_trains_summarises_and_round_trips(tmp_path, rng, capsys):
    x, y = _sequences(rng)
    model = _stack()
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    model.summary()
    text = capsys.readouterr().out
    assert "(Bidirectional)" in text and "(None, 6, 8)" in text
    assert model.layers[0].count_params() == 2 * (2 * 16 + 4 * 16 + 16)
    path = tmp_path / "bi.fastnn"
    model.save(path)
    loaded = keras.models.load_model(path)
    _close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), tol=1e-6)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)  # optimizer state fits
    weights = tmp_path / "bi.weights.fastnn"
    model.save_weights(weights)
    fresh = _stack()
    fresh.load_weights(weights)
    _close(fresh.predict(x, verbose=0), model.predict(x, verbose=0), tol=1e-6)


def test_load_guard_checks_the_inner_layers(tmp_path, rng):
    """expect_weight_shapes checks each weight the inner layers create, at its position after
    the layers before the wrapper, before allocating it; load_model refuses an edited file."""
    dense = layers.Dense(2)
    dense.build_for((None, 5))
    bi = layers.Bidirectional(layers.LSTM(4, return_sequences=True))
    shapes = [(5, 2), (2,)] + [(2, 16), (4, 16), (16,)] * 2
    bad = shapes[:6] + [(3, 16)] + shapes[7:]  # the backward LSTM's recurrent kernel
    match = (r"'backward_lstm.*' \(LSTM\) would create its weight 'recurrent_kernel' of shape "
             r"\(4, 16\), but the weights to load have shape \(3, 16\) there \(weight 6 of 8\)")
    with pytest.raises(ValueError, match=match), expect_weight_shapes([dense, bi], bad):
        bi.build_for((None, 6, 2))
    other = layers.Bidirectional(layers.LSTM(4))
    with pytest.raises(ValueError, match="hold only 4 arrays"), \
            expect_weight_shapes([dense, other], shapes[:4]):
        other.build_for((None, 6, 2))
    fine = layers.Bidirectional(layers.LSTM(4, return_sequences=True))
    with expect_weight_shapes([dense, fine], shapes):  # the right shapes pass
        fine.build_for((None, 6, 2))
    assert [w.shape for w in fine.weights] == shapes[2:]
    assert "add_weight" not in vars(bi.forward_layer)  # the guard is removed again

    model = _stack()
    path, edited = tmp_path / "bi.fastnn", tmp_path / "edited.fastnn"
    model.save(path)
    config, arrays = saving._read(path, (saving.FORMAT_MODEL,))
    entry = config["model"]["config"]["layers"][0]["config"]["backward_layer"]["config"]
    entry["units"] = 400_000_000  # would allocate gigabytes without the guard
    config.pop("weights_sha256")
    saving._write(edited, config, arrays, overwrite=True)
    with pytest.raises(ModelFileError, match="backward_lstm.*would create its weight 'kernel'"):
        keras.models.load_model(edited)


def test_config_round_trip():
    backward = layers.LSTM(3, go_backwards=True, activation="relu", return_sequences=True)
    bi = layers.Bidirectional(layers.LSTM(3, dropout=0.25, return_sequences=True),
                              merge_mode="ave", backward_layer=backward, name="bi")
    config = bi.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["layer"]["class_name"] == "LSTM" and config["merge_mode"] == "ave"
    again = layers.Bidirectional.from_config(config)
    assert again.get_config() == config
    assert again.forward_layer.name == bi.forward_layer.name
    assert again.backward_layer.activation == "relu" and again.forward_layer.dropout == 0.25
    declared = layers.Bidirectional(layers.GRU(2, input_shape=(5, 3)))
    assert declared._declared_input_shape == (5, 3)
    assert keras.Sequential([declared]).built
    assert layers.Bidirectional.from_config(declared.get_config()).get_config() == \
        declared.get_config()


def test_initial_weights(rng):
    source = layers.Bidirectional(layers.SimpleRNN(2))
    source.build_for((None, 3, 4))
    _randomize(source, rng)
    bi = layers.Bidirectional(layers.SimpleRNN(2), weights=source.get_weights())
    bi.build_for((None, 3, 4))
    for a, b in zip(bi.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"layer": layers.Dense(2)}, "layer must be a recurrent layer"),
    ({"backward_layer": layers.Dense(2)}, "backward_layer must be a recurrent layer"),
    ({"merge_mode": "max"}, "merge_mode must be one of"),
    ({"backward_layer": layers.LSTM(2)}, "different go_backwards"),
    ({"backward_layer": layers.LSTM(2, go_backwards=True, return_sequences=True)},
     "same return_sequences"),
    ({"backward_layer": layers.LSTM(2, go_backwards=True, return_state=True)},
     "same return_state"),
    ({"backward_layer": layers.LSTM(3, go_backwards=True), "merge_mode": "sum"},
     "need the same units, received 2 and 3"),
])
def test_constructor_errors(kwargs, match):
    kwargs = {"layer": layers.LSTM(2), **kwargs}
    with pytest.raises(ValueError, match=match):
        layers.Bidirectional(**kwargs)


def test_call_errors(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    bi = layers.Bidirectional(layers.LSTM(2))
    bi(x)
    with pytest.raises(ValueError, match=r"initial_state must hold 4 arrays .* received 2"):
        bi(x, initial_state=[np.zeros((2, 2))] * 2)
    with pytest.raises(ValueError, match=r"initial state h0 must have shape \(2, 2\)"):
        bi(x, initial_state=[np.zeros((2, 3))] * 4)
    with pytest.raises(ValueError, match=r"expected input shape \(None, 3, 4\)"):
        bi(x[..., :3])
    with pytest.raises(RuntimeError, match="backward needs a training forward"):
        bi.backward(np.zeros((2, 4), np.float32))
