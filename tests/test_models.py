"""Sequential end to end: the Keras quickstart, a train_on_batch step equal to PyTorch's,
fusion, regularization, determinism, NaN data, Ctrl-C, and every error of the model API."""

import signal
import time

import numpy as np
import pytest

import fastnn as keras
from fastnn import _backend


def _mlp(input_dim=20, classes=10, **dense_kwargs):
    model = keras.Sequential()
    model.add(keras.layers.Dense(units=64, activation="relu", input_shape=(input_dim,),
                                 **dense_kwargs))
    model.add(keras.layers.Dense(units=classes, activation="softmax"))
    return model


def test_keras_quickstart_runs_unchanged_and_learns_fast(blobs):
    x, labels = blobs
    y = keras.utils.to_categorical(labels, 10)
    start = time.perf_counter()
    model = _mlp()
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:500], y[:500], epochs=10, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(x[500:], y[500:], verbose=0)
    predictions = model.predict(x[500:], verbose=0)
    assert time.perf_counter() - start < 2.0
    assert accuracy >= 0.95 and loss < history.history["loss"][0]
    assert sorted(history.history) == ["accuracy", "loss"] and history.epoch == list(range(10))
    assert predictions.shape == (100, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", keras.optimizers.SGD(0.1, 0.9)])
def test_sparse_labels_and_other_optimizers_learn(blobs, optimizer):
    x, labels = blobs
    model = _mlp()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, labels, epochs=5, verbose=0)
    assert model.evaluate(x, labels, verbose=0)[1] >= 0.95


def test_binary_and_regression_models(rng):
    x = rng.standard_normal((300, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=30, verbose=0)
    assert isinstance(model.metric_direction("accuracy"), str)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9
    reg = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    reg.compile(keras.optimizers.SGD(0.1), "mse")
    target = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    reg.fit(x, target, epochs=20, verbose=0)
    assert reg.evaluate(x, target, verbose=0) < 1e-3  # a float when there are no metrics


def _torch_step(torch, weights, x, y, lr, l2, momentum=0.0, steps=1):
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        hidden = torch.relu(xt @ params[0] + params[1])
        logits = hidden @ params[2] + params[3]
        loss = torch.nn.functional.cross_entropy(logits, yt) + l2 * (params[0] ** 2).sum()
        loss.backward()
        opt.step()
    return loss.item(), [p.detach().numpy() for p in params]


@pytest.mark.parametrize("momentum,steps", [(0.0, 1), (0.9, 3)])
def test_train_on_batch_equals_pytorch(rng, momentum, steps):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01),
                           bias_initializer="random_normal"),
        keras.layers.Dense(4, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1, momentum=momentum),
                  "sparse_categorical_crossentropy")
    weights = model.get_weights()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    ref_loss, ref_weights = _torch_step(torch, weights, x, y, 0.1, 0.01, momentum, steps)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for ours, ref in zip(model.get_weights(), ref_weights):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_fused_softmax_equals_logits_model(rng):
    x, y = rng.standard_normal((32, 5)).astype(np.float32), rng.integers(0, 3, 32)
    fused = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    logits = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    split = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Softmax()])
    logits.set_weights(fused.get_weights())
    split.set_weights(fused.get_weights())
    fused.compile("adam", "sparse_categorical_crossentropy")
    split.compile("adam", "sparse_categorical_crossentropy")
    logits.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    results = [m.train_on_batch(x, y) for m in (fused, logits, split)]
    assert results[0] == pytest.approx(results[1], rel=1e-6) == results[2]
    for a, b, c in zip(fused.get_weights(), logits.get_weights(), split.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-6)
    assert fused._plan.fused and split._plan.fused and not logits._plan.fused


def test_regularization_is_added_to_the_reported_loss(rng):
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 2, 8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        2, activation="softmax", kernel_regularizer="l1", bias_regularizer="l2",
        bias_initializer="ones")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    kernel, bias = model.get_weights()
    plain = keras.losses.SparseCategoricalCrossentropy()(y, model.predict(x, verbose=0))
    penalty = 0.01 * np.abs(kernel).sum() + 0.01 * (bias ** 2).sum()
    assert model.test_on_batch(x, y) == pytest.approx(plain + penalty, rel=1e-5)


def test_same_seed_same_bits(blobs):
    x, labels = blobs

    def run():
        keras.utils.set_random_seed(42)
        model = keras.Sequential([keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dropout(0.3), keras.layers.Dense(10)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, labels, epochs=2, batch_size=50, verbose=0, validation_split=0.1)
        return b"".join(w.tobytes() for w in model.get_weights())
    assert run() == run()


def test_build_paths_summary_and_weights(capsys):
    deferred = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    assert not deferred.built
    assert deferred.predict(np.ones((3, 5)), verbose=0).shape == (3, 2) and deferred.built
    declared = keras.models.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(4)])
    assert declared.built and declared.input_shape == (None, 5)
    declared.add(keras.layers.Dense(2))
    assert declared.output_shape == (None, 2) and declared.count_params() == 34
    explicit = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
    explicit.build((None, 2, 2))
    assert explicit.output_shape == (None, 3) and explicit(np.ones((1, 2, 2))).shape == (1, 3)
    _mlp().summary()
    out = capsys.readouterr().out
    assert "dense" in out and "(None, 64)" in out and "Total params: 1,994 (7.79 KB)" in out
    lines = []
    declared.summary(print_fn=lines.append)
    assert "Trainable params: 34" in "\n".join(lines)
    declared.set_weights([w + 1 for w in declared.get_weights()])
    assert declared.pop().units == 2 and len(declared.layers) == 1
    assert declared.get_layer(index=0) is declared.get_layer(declared.layers[0].name)


def test_frozen_layer_is_not_updated(blobs):
    x, labels = blobs
    model = _mlp()
    model.layers[0].trainable = False
    before = model.layers[0].get_weights()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=1, verbose=0)
    for a, b in zip(before, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 1,344" in "\n".join(lines)
    frozen = keras.Sequential([keras.layers.Dense(2)], trainable=False)
    assert not frozen.layers[0].trainable


def test_steady_state_reuses_buffers(blobs):
    x, labels = blobs
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_on_batch(x[:32], labels[:32])
    first = [layer._buffers.get("out", (32, layer.units)) for layer in model.layers]
    model.train_on_batch(x[32:64], labels[32:64])
    again = [layer._buffers.get("out", (32, layer.units)) for layer in model.layers]
    assert all(a is b for a, b in zip(first, again))


def test_nan_data_with_terminate_on_nan_stops_without_crashing(blobs, capsys):
    x, labels = blobs
    x = x.copy()
    x[100:] = np.nan
    model = _mlp()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, labels, epochs=5, batch_size=50, shuffle=False, verbose=0,
                        callbacks=[keras.callbacks.TerminateOnNaN()])
    assert len(history.epoch) == 1 and np.isnan(history.history["loss"][0])
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    history = model.fit(x, labels, epochs=2, verbose=0)  # without the callback: no crash
    assert len(history.epoch) == 2


def test_ctrl_c_finishes_the_step_and_leaves_the_model_usable(blobs, monkeypatch):
    x, labels = blobs
    model = _mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    reference = _mlp()
    reference.set_weights(model.get_weights())
    reference.compile("sgd", "sparse_categorical_crossentropy")
    real_update = _backend.sgd_update
    calls = []

    def interrupting_update(*args):
        calls.append(1)
        # in the middle of step 3: 2 bias updates per step (the kernels' updates run fused
        # with their gradient GEMMs in backward, before these)
        if len(calls) == 5:
            signal.raise_signal(signal.SIGINT)
        real_update(*args)
    monkeypatch.setattr(_backend, "sgd_update", interrupting_update)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, labels, epochs=3, batch_size=32, shuffle=False, verbose=0)
    monkeypatch.setattr(_backend, "sgd_update", real_update)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert model.optimizer.iterations == 3  # step 3 completed for every parameter
    for step in range(3):
        reference.train_on_batch(x[32 * step:32 * step + 32], labels[32 * step:32 * step + 32])
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, labels, epochs=1, verbose=0)
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


def test_validation_and_history(blobs):
    x, labels = blobs
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, labels, epochs=3, validation_split=0.2, verbose=0, initial_epoch=1)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.epoch == [1, 2] and model.history is history
    history = model.fit(x[:400], labels[:400], validation_data=(x[400:], labels[400:], None),
                        verbose=0, shuffle=False)
    assert history.history["val_accuracy"][0] > 0.5
    assert model.metrics_names == ["loss", "accuracy"]
    assert model.evaluate(x, labels, verbose=0, return_dict=True).keys() == {"accuracy", "loss"}
    assert len(model.test_on_batch(x[:10], labels[:10])) == 2
    assert model.train_on_batch(x[:10], labels[:10], return_dict=True)["loss"] > 0
    assert model.predict_on_batch(x[:7]).shape == (7, 10)


def test_predict_ignores_dropout(rng):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5),
                              keras.layers.Dense(2)])
    x = rng.standard_normal((5, 4))
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not np.array_equal(model(x, training=True), model(x, training=True))


@pytest.fixture
def compiled():
    model = _mlp(input_dim=4, classes=3)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


X4, Y3 = np.zeros((6, 4), np.float32), np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("call,exc,match", [
    (lambda m: m.fit(X4, Y3[:5], verbose=0), ValueError,
     "fit: x and y must have the same number of samples, received x with 6 and y with 5"),
    (lambda m: m.fit(np.zeros((6, 5)), Y3, verbose=0), ValueError,
     (r"fit: expected x of shape \(None, 4\) \(the model's input shape\), received x of shape "
     r"\(6, 5\)")),
    (lambda m: m.fit(X4, np.zeros((6, 3)), verbose=0), ValueError,
     "expected integer labels of shape .* look like one-hot labels"),
    (lambda m: m.fit(X4, Y3 + 1, verbose=0), ValueError,
     r"labels must be integers in \[0, 3\) for 3 output classes, received labels from 1 to 3"),
    (lambda m: m.fit(None, Y3), ValueError, "fit: x is required"),
    (lambda m: m.fit(np.array([["a"] * 4]), Y3), TypeError, "x must be numeric"),
    (lambda m: m.fit(np.zeros(4), Y3), ValueError, "x must have a batch dimension"),
    (lambda m: m.fit(X4, None), ValueError, "fit: y is required"),
    (lambda m: m.fit(X4, Y3, batch_size=0), ValueError, "batch_size must be an int >= 1"),
    (lambda m: m.fit(X4, Y3, epochs=-1), ValueError, "epochs must be an int >= 0"),
    (lambda m: m.fit(X4, Y3, verbose=3), ValueError, "verbose must be 0, 1, 2 or 'auto'"),
    (lambda m: m.fit(X4, Y3, validation_split=1.0), ValueError, "validation_split must be"),
    (lambda m: m.fit(X4, Y3, validation_split=0.9), ValueError,
     "leaves an empty training or validation set for 6 samples"),
    (lambda m: m.fit(X4[:0], Y3[:0]), ValueError, "fit: x is empty"),
    (lambda m: m.evaluate(X4[:0], Y3[:0]), ValueError, "evaluate: x is empty"),
    (lambda m: m.train_on_batch(X4[:0], Y3[:0]), ValueError, "train_on_batch: x is empty"),
    (lambda m: m.test_on_batch(X4[:0], Y3[:0]), ValueError, "test_on_batch: x is empty"),
    (lambda m: m.fit(X4, Y3, validation_data=X4), ValueError,
     r"validation_data must be a tuple \(x_val, y_val\)"),
    (lambda m: m.fit(X4, Y3, validation_data=(X4, Y3, np.ones(6))), NotImplementedError,
     "sample weights"),
    (lambda m: m.fit(X4, Y3, callbacks=[print]), TypeError, "callbacks must be"),
    (lambda m: m.compile("sgd"), ValueError, "compile: a loss is required"),
    (lambda m: m.compile("sgd", "mse", metrics={"a": "mse"}), TypeError, "metrics must be a list"),
    (lambda m: m.compile("sgd", "mse", metrics=["f1"]), ValueError, "Unknown metric 'f1'"),
    (lambda m: m.compile("adagrad", "mse"), ValueError, "Unknown optimizer 'adagrad'"),
    (lambda m: m.compile("sgd", "hinge"), ValueError, "Unknown loss 'hinge'"),
    (lambda m: m.set_weights([]), ValueError, "Sequential.set_weights: expected 4 arrays"),
    (lambda m: m.get_layer("nope"), ValueError, "no layer named 'nope'"),
])
def test_bad_input_errors(compiled, call, exc, match):
    with pytest.raises(exc, match=match):
        call(compiled)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: _mlp().fit(X4, Y3), RuntimeError, "fit: the model must be compiled first"),
    (lambda: _mlp().evaluate(X4, Y3), RuntimeError, "evaluate: the model must be compiled"),
    (lambda: _mlp().train_on_batch(X4, Y3), RuntimeError, "train_on_batch: the model must"),
    (lambda: _mlp().test_on_batch(X4, Y3), RuntimeError, "test_on_batch: the model must"),
    (lambda: keras.Sequential().predict(X4), ValueError, "predict: the model has no layers"),
    (lambda: keras.Sequential([keras.layers.Dense(1), keras.Input((2,))]), ValueError,
     "an InputLayer must be the first"),
    (lambda: keras.Sequential(["dense"]), TypeError, "expected a fastnn.layers.Layer"),
    (lambda: keras.Sequential([keras.layers.Dense(1, name="a"), keras.layers.Dense(1, name="a")]),
     ValueError, "already has a layer named 'a'"),
    (lambda: keras.Sequential().pop(), IndexError, "the model has no layers"),
    (lambda: keras.Sequential([keras.layers.Dense(1)]).build(), ValueError,
     "Sequential.build: the input shape is unknown"),
    (lambda: keras.Sequential().input_shape, AttributeError, "input shape is not known"),
    (lambda: keras.Sequential([keras.layers.Dense(1)]).build(5), ValueError,
     "input_shape must be a tuple with a batch dimension"),
    (lambda: keras.Sequential().output_shape, AttributeError, "not built yet"),
    (lambda: keras.Sequential([keras.layers.Dense(1)]).summary(), ValueError,
     "has not been built yet"),
])
def test_model_api_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_failed_add_leaves_model_unchanged():
    model = keras.Sequential([keras.Input((3, 2))])
    model.add(keras.layers.Flatten())
    with pytest.raises(ValueError, match="needs a known last dimension"):
        model.add(_BadLayer())
    assert len(model.layers) == 1


class _BadLayer(keras.layers.Dense):
    def __init__(self):
        super().__init__(2)

    def build(self, input_shape):
        super().build((None,))


def test_interrupt_in_train_on_batch_completes_the_step(monkeypatch, compiled):
    real_update = _backend.sgd_update
    calls = []

    def interrupting_update(*args):
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        real_update(*args)
    monkeypatch.setattr(_backend, "sgd_update", interrupting_update)
    with pytest.raises(KeyboardInterrupt):
        compiled.train_on_batch(X4, Y3)
    assert len(calls) == 2  # both biases (the kernels' updates are fused into backward)
    assert compiled.optimizer.iterations == 1


def test_second_ctrl_c_interrupts_at_once_and_epoch_end_interrupts(monkeypatch, compiled):
    real_update = _backend.sgd_update

    def double_interrupt(*args):
        signal.raise_signal(signal.SIGINT)
        real_update(*args)
    monkeypatch.setattr(_backend, "sgd_update", double_interrupt)
    with pytest.raises(KeyboardInterrupt):
        compiled.fit(X4, Y3, verbose=0)
    assert compiled.optimizer.iterations == 0  # the second signal stopped the first step
    monkeypatch.setattr(_backend, "sgd_update", real_update)
    at_epoch_end = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: signal.raise_signal(signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        compiled.fit(X4, Y3, epochs=3, verbose=0, callbacks=[at_epoch_end])
    assert compiled.optimizer.iterations == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_empty_batches_predict_and_losses():
    """Found by the fuzz tests: Flatten could not reshape a batch of 0 (reshape(0, -1)) and the
    losses divided 0 by 0 (ZeroDivisionError). Predicting nothing gives nothing; a loss over no
    samples is 0, as Keras's divide_no_nan reduction gives."""
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    assert model.predict(np.zeros((0, 3, 2)), verbose=0).shape == (0, 4)
    assert model(np.zeros((0, 3, 2))).shape == (0, 4)
    for name in ("mean_squared_error", "categorical_crossentropy", "binary_crossentropy"):
        loss = keras.losses.get(name)
        assert loss(np.zeros((0, 4)), np.zeros((0, 4))) == 0.0
        assert loss.gradient(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 4)
    assert keras.losses.mean_squared_error(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
