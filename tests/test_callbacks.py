"""Callbacks with Keras 3 semantics (driven by scripted metric sequences), the progress bar
formats, and their error paths."""

import io
import os
import re

import numpy as np
import pytest

import fastnn as keras
from fastnn import _progbar, callbacks


class _FakeOptimizer:
    learning_rate = 1.0


class _FakeModel:
    """Just what callbacks touch: weights per epoch, stop_training, optimizer, directions."""

    def __init__(self):
        self.stop_training = False
        self.optimizer = _FakeOptimizer()
        self.epoch = 0
        self.restored = None

    def get_weights(self):
        return [np.array(self.epoch)]

    def set_weights(self, weights):
        self.restored = int(weights[0])

    def metric_direction(self, name):
        return {"accuracy": "up", "mse": "down"}.get(name)


def _drive(cb, values, monitor="val_loss"):
    """Run the epoch hooks over `values`; returns the epochs at which training ran."""
    model = _FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    ran = []
    for epoch, value in enumerate(values):
        model.epoch = epoch
        ran.append(epoch)
        cb.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            break
    cb.on_train_end()
    return ran, model


@pytest.mark.parametrize("kwargs,values,stopped_at", [
    ({"patience": 2}, [1.0, 0.9, 0.95, 0.96, 0.97], 3),
    ({"patience": 0}, [1.0, 1.1], 1),
    ({"patience": 1, "min_delta": 0.05}, [1.0, 0.99, 0.98], 1),
    ({"patience": 2}, [0.8, 0.8, 0.8, 0.8], 2),
    ({"patience": 2, "baseline": 0.5}, [0.8, 0.8, 0.8, 0.8], 1),
    ({"patience": 1, "start_from_epoch": 2}, [1.0, 2.0, 3.0, 4.0], 3),
])
def test_early_stopping_semantics(kwargs, values, stopped_at):
    ran, _ = _drive(callbacks.EarlyStopping(**kwargs), values)
    assert ran[-1] == stopped_at


def test_early_stopping_restores_best_and_infers_max_for_accuracy(capsys):
    cb = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, verbose=1,
                                 restore_best_weights=True)
    ran, model = _drive(cb, [0.5, 0.9, 0.8, 0.7], monitor="val_accuracy")
    assert ran[-1] == 2 and model.restored == 1 and cb.best == 0.9
    out = capsys.readouterr().out
    assert "Epoch 3: early stopping" in out and "best epoch: 2" in out


def test_early_stopping_missing_monitor_and_undecidable_direction():
    with pytest.warns(UserWarning, match="monitor 'val_loss' is not available"):
        _drive(callbacks.EarlyStopping(), [1.0], monitor="loss")
    with pytest.raises(ValueError, match="cannot tell whether monitor='f1' should be"):
        _drive(callbacks.EarlyStopping(monitor="f1"), [1.0], monitor="f1")


def test_reduce_lr_on_plateau_semantics(capsys):
    cb = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1,
                                     min_lr=0.2, verbose=1)
    model = _FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    rates = []
    for epoch in range(9):
        logs = {"loss": 1.0}
        cb.on_epoch_end(epoch, logs)
        rates.append(model.optimizer.learning_rate)
        assert "learning_rate" in logs
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    assert "ReduceLROnPlateau reducing learning rate to 0.5" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="monitor 'loss' is not available"):
        cb.on_epoch_end(9, {})
    accuracy = callbacks.ReduceLROnPlateau(monitor="val_acc", patience=0)
    accuracy.set_model(_FakeModel())
    accuracy.on_train_begin()
    accuracy.on_epoch_end(0, {"val_acc": 0.5})
    accuracy.on_epoch_end(1, {"val_acc": 0.9})
    assert accuracy.model.optimizer.learning_rate == 1.0  # maximised: 0.9 improved


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


X = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
Y = np.random.default_rng(1).integers(0, 3, 40)


def test_model_checkpoint_best_only_and_weights_only(tmp_path, capsys):
    cb = callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}.keras"), monitor="loss",
                                   save_best_only=True, verbose=1)
    _model().fit(X, Y, epochs=3, verbose=0, callbacks=[cb])
    assert sorted(os.listdir(tmp_path)) == ["ck-01.keras", "ck-02.keras", "ck-03.keras"]
    assert "loss improved from None to" in capsys.readouterr().out
    restored = keras.models.load_model(tmp_path / "ck-03.keras")
    assert restored.optimizer.iterations == 6
    weights_path = tmp_path / "sub" / "w.weights.h5"
    cb = callbacks.ModelCheckpoint(weights_path, monitor="val_loss", save_weights_only=True,
                                   save_best_only=True, mode="min")
    model = _model()
    model.fit(X, Y, epochs=2, verbose=0, validation_split=0.25, callbacks=[cb])
    fresh = _model()
    fresh.load_weights(weights_path)
    assert cb.best == min(model.history.history["val_loss"])


def test_model_checkpoint_does_not_save_when_not_improving(tmp_path, capsys):
    cb = callbacks.ModelCheckpoint(tmp_path / "m.keras", monitor="val_accuracy", verbose=1,
                                   save_best_only=True, initial_value_threshold=2.0)
    _model().fit(X, Y, epochs=1, verbose=0, validation_split=0.25, callbacks=[cb])
    assert not os.listdir(tmp_path) and "did not improve from 2.00000" in capsys.readouterr().out
    cb = callbacks.ModelCheckpoint(tmp_path / "m.keras", monitor="val_f1", save_best_only=True)
    with pytest.warns(UserWarning, match="saving anyway"):
        _model().fit(X, Y, epochs=1, verbose=0, callbacks=[cb])
    assert os.listdir(tmp_path) == ["m.keras"]


def test_model_checkpoint_errors(tmp_path):
    with pytest.raises(NotImplementedError, match="only save_freq='epoch'"):
        callbacks.ModelCheckpoint("m.keras", save_freq=10)
    with pytest.raises(ValueError, match="mode must be one of"):
        callbacks.ModelCheckpoint("m.keras", mode="best")
    cb = callbacks.ModelCheckpoint(str(tmp_path / "{val_f1:.2f}.keras"))
    with pytest.raises(KeyError, match="no value for 'val_f1'"):
        _model().fit(X, Y, epochs=1, verbose=0, callbacks=[cb])


def test_lambda_callback_and_history():
    seen = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch, sorted(logs))),
        on_batch_end=lambda batch, logs: seen.append(("batch", batch)),
        on_train_end=lambda logs: seen.append("end"))
    history = _model().fit(X, Y, epochs=2, batch_size=20, verbose=0, callbacks=[cb])
    assert seen == ["begin", ("batch", 0), ("batch", 1), ("epoch", 0, ["accuracy", "loss"]),
                    ("batch", 0), ("batch", 1), ("epoch", 1, ["accuracy", "loss"]), "end"]
    assert history.history["loss"][1] < history.history["loss"][0] + 1.0
    with pytest.raises(TypeError, match=r"LambdaCallback: unknown hook\(s\) \['on_fit'\]"):
        callbacks.LambdaCallback(on_fit=print)
    with pytest.raises(AttributeError):
        _ = callbacks.CallbackList([], None, {}).history_of


def test_progress_formats(capsys):
    model = _model()
    model.fit(X, Y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out  # not a terminal: final lines only
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+(us|ms|s)/step - accuracy: \d\.\d{4} - "
                        r"loss: \d\.\d{4}", lines[1])
    model.fit(X, Y, epochs=1, verbose=2, validation_split=0.2)
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"1/1 - \d+s - \d+(us|ms|s)/step - accuracy: \S+ - loss: \S+ - "
                        r"val_accuracy: \S+ - val_loss: \S+", line)
    model.fit(X, Y, verbose=0)
    model.evaluate(X, Y, verbose=0)
    model.predict(X, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(X, Y, verbose=1)
    model.predict(X, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2/2 ━") and "loss:" in out[0] and out[1].startswith("2/2 ━")


class _TTY(io.StringIO):
    encoding = "ascii"

    def isatty(self):
        return True


def test_progbar_on_a_terminal_redraws_with_eta():
    stream = _TTY()
    bar = _progbar.Progbar(3, stream=stream)
    bar.update(1, {"loss": 0.5}, finalize=False)
    bar.update(3, {"loss": 0.25})
    text = stream.getvalue()
    assert text.startswith("\r\x1b[1m1/3\x1b[0m") and text.endswith("\n")
    assert "loss: 0.2500" in text and "=" in text  # ASCII bar on an ASCII terminal
    assert _progbar.format_value(1e-5) == "1.0000e-05"
    assert _progbar.format_duration(2.0) == "2s/step"
    assert _progbar._format_eta(3725) == "1:02:05" and _progbar._format_eta(65) == "1:05"


def test_callback_errors():
    with pytest.raises(ValueError, match="ReduceLROnPlateau: factor must be a finite number"):
        callbacks.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="EarlyStopping: patience must be an int >= 0"):
        callbacks.EarlyStopping(patience=-1)
