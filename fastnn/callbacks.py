"""Training callbacks, as `keras.callbacks`, with Keras 3's semantics.

Logs passed to callbacks hold running means since the start of the epoch (batch hooks) or the
epoch's results including `val_` entries (`on_epoch_end`); keys are sorted, as Keras does.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from fastnn import _checks
from fastnn._progbar import Progbar


class Callback:
    """Base class: every hook is a no-op; `self.model` and `self.params` are set by fit."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)


class History(Callback):
    """Records epoch logs in `history` ({name: [value per epoch]}) and `epoch`."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints progress (see `fastnn._progbar`); added by fit/evaluate/predict when verbose."""

    def __init__(self):
        super().__init__()
        self._in_fit = False
        self._bar = None
        self._seen = 0

    def _start(self, steps):
        self._seen = 0
        self._bar = Progbar(steps, verbose=self.params.get("verbose", 1))

    def _step(self, batch, logs):
        self._seen = batch + 1
        self._bar.update(self._seen, logs, finalize=False)  # the *_end hook finalizes

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.params.get("epochs", 1) > 1:
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", flush=True)
        self._start(self.params["steps"])

    def on_train_batch_end(self, batch, logs=None):
        self._step(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._bar.update(self._seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start(self.params["steps"])

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._step(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._bar.update(self._seen, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self._start(self.params["steps"])

    def on_predict_batch_end(self, batch, logs=None):
        self._step(batch, None)

    def on_predict_end(self, logs=None):
        self._bar.update(self._seen, None, finalize=True)


class CallbackList:
    """Dispatches every hook to a list of callbacks; adds History and ProgbarLogger."""

    def __init__(self, callbacks, model, params: dict, add_history: bool = False,
                 add_progbar: bool = False):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fastnn.callbacks.Callback instances, "
                                f"received {type(cb).__name__}")
        self.history = next((cb for cb in callbacks if isinstance(cb, History)), None)
        if add_history and self.history is None:
            self.history = History()
            callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in callbacks):
            callbacks.append(ProgbarLogger())
        self.callbacks = callbacks
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        takes_index = hook.startswith("on_epoch_") or "batch_" in hook
        arity = 2 if takes_index else 1

        def dispatch(*args):
            args = args + (None,) * (arity - len(args))  # hooks always get their logs arg
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return dispatch


def _resolve_direction(owner: str, monitor: str, mode: str, model) -> str:
    """'min' or 'max' for a monitored quantity, as Keras's mode='auto' infers it."""
    if mode in ("min", "max"):
        return mode
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    direction = model.metric_direction(name) if model is not None else None
    if direction is None:
        raise ValueError(f"{owner}: cannot tell whether monitor={monitor!r} should be minimized "
                         f"or maximized; pass mode='min' or mode='max'")
    return "max" if direction == "up" else "min"


def _check_mode(owner: str, mode: str) -> str:
    return _checks.one_of(owner, "mode", mode, ("auto", "min", "max"))


class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved by more than min_delta for `patience`
    epochs; optionally restore the weights of the best epoch (Keras 3 semantics)."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(_checks.real("EarlyStopping", "min_delta", min_delta))
        self.patience = _checks.integer("EarlyStopping", "patience", patience, low=0)
        self.verbose = verbose
        self.mode = _check_mode("EarlyStopping", mode)
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _checks.integer("EarlyStopping", "start_from_epoch",
                                                start_from_epoch, low=0)
        self._direction = None

    def _improved(self, current: float, reference: float) -> bool:
        if self._direction == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0
        self._direction = None
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        if self._direction is None:
            self._direction = _resolve_direction("EarlyStopping", self.monitor, self.mode,
                                                 self.model)
            self.best = math.inf if self._direction == "min" else -math.inf
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: monitor {self.monitor!r} is not available; "
                          f"available: {sorted(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) after each epoch, optionally only when `monitor`
    improved. `filepath` may hold format fields: '{epoch:02d}-{val_loss:.2f}.keras'."""

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq="epoch",
                 initial_value_threshold: float | None = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _check_mode("ModelCheckpoint", mode)
        if save_freq != "epoch":
            raise NotImplementedError(f"ModelCheckpoint: only save_freq='epoch' is supported, "
                                      f"received save_freq={save_freq!r}")
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._direction = None

    def _should_save(self, epoch, logs, path) -> bool:
        if not self.save_best_only:
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ModelCheckpoint: can save the best model only with "
                          f"{self.monitor!r} available; saving anyway", stacklevel=3)
            return True
        if self._direction is None:
            self._direction = _resolve_direction("ModelCheckpoint", self.monitor, self.mode,
                                                 self.model)
        better = self.best is None or (current < self.best if self._direction == "min"
                                       else current > self.best)
        if self.verbose > 0:
            best = "None" if self.best is None else f"{self.best:.5f}"
            verdict = f"improved from {best} to {current:.5f}, saving model to {path}" \
                if better else f"did not improve from {best}"
            print(f"\nEpoch {epoch + 1}: {self.monitor} {verdict}")
        if better:
            self.best = current
        return better

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: cannot format filepath {self.filepath!r}: "
                           f"no value for {exc}; available: {sorted(logs)}") from None
        if not self._should_save(epoch, logs, path):
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class TerminateOnNaN(Callback):
    """Stop training as soon as the running loss becomes NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback built from plain functions, e.g. `LambdaCallback(on_epoch_end=f)`;
    the hooks take (epoch, logs), (batch, logs) or (logs) as the Callback methods do."""

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        unknown = sorted(set(hooks) - set(self._HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hook(s) {unknown}; expected some of "
                            f"{list(self._HOOKS)}")
        for name, func in hooks.items():
            if func is not None:
                setattr(self, name, func)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than
    min_delta for `patience` epochs, then wait `cooldown` epochs (Keras 3 semantics)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        self.monitor = monitor
        self.factor = _checks.real("ReduceLROnPlateau", "factor", factor, low=0.0,
                                   high=1.0, high_open=True)
        self.patience = _checks.integer("ReduceLROnPlateau", "patience", patience, low=0)
        self.verbose = verbose
        self.mode = _check_mode("ReduceLROnPlateau", mode)
        self.min_delta = _checks.real("ReduceLROnPlateau", "min_delta", min_delta)
        self.cooldown = _checks.integer("ReduceLROnPlateau", "cooldown", cooldown, low=0)
        self.min_lr = _checks.real("ReduceLROnPlateau", "min_lr", min_lr, low=0.0)

    def on_train_begin(self, logs=None):
        # Keras: mode 'auto' maximises when the monitor's name contains 'acc'.
        self._minimize = self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor)
        self.best = math.inf if self._minimize else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: monitor {self.monitor!r} is not available; "
                          f"available: {sorted(logs)}", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        improved = (current < self.best - self.min_delta if self._minimize
                    else current > self.best + self.min_delta)
        if improved:
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                              f"rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
