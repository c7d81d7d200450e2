"""Trainer: compile, fit, evaluate, predict and the per-batch steps of a Sequential model.

One training step: forward through every layer; the loss and dL/d(output), fused with the
last layer's softmax/sigmoid when the loss takes probabilities (as Keras effectively does);
backward through the layers until the first trainable one (which skips dX); regularizer
penalties and gradients; one optimizer update per parameter (a Dense kernel's inside the
backward pass: its gradient GEMM feeds the update block by block, see `_Plan`). User arrays
are converted to float32 once per call at this edge, and batches are gathered into reused
buffers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading

import numpy as np

from fastnn import _checks, _random, losses, optimizers
from fastnn import metrics as metrics_lib
from fastnn.callbacks import CallbackList

_DEFAULT_BATCH_SIZE = 32  # Keras's default


def _verbosity(owner: str, verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"{owner}: verbose must be 0, 1, 2 or 'auto', received "
                         f"verbose={verbose!r}")
    return int(verbose)


@contextlib.contextmanager
def _defer_keyboard_interrupt(state: dict):
    """Turn a first Ctrl-C into a flag checked between steps, so an interrupted fit never
    leaves weights half-updated; a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def handler(signum, frame):
        if state.get("interrupted"):
            raise KeyboardInterrupt
        state["interrupted"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _Plan:
    """What a step needs, computed once per structure: fusion and parameter lists."""

    def __init__(self, model):
        layers = model._layers
        last = layers[-1]
        loss = model.loss
        self.fused = (loss is not None and not getattr(loss, "from_logits", True)
                      and loss.fusable_activation is not None
                      and last.output_activation == loss.fusable_activation)
        seen_params = False
        for layer in layers:
            layer.keep_logits = False
            layer.input_grad_needed = seen_params  # the first trainable layer skips dX
            seen_params |= layer.trainable and bool(layer.weights)
        last.keep_logits = self.fused
        self.trainable_layers = [layer for layer in layers if layer.trainable]
        owners = [(layer, i) for layer in self.trainable_layers
                  for i in range(len(layer.weights))]
        self.params = [layer.weights[i] for layer, i in owners]
        # Parameters whose gradient GEMM feeds the optimizer step directly (no gradient
        # buffer): a Dense kernel without a regularizer, under an optimizer with that rule.
        optimizer = getattr(model, "optimizer", None)
        fusable = optimizer is not None and optimizer.supports_fused_update
        self.skip = frozenset(
            index for index, (layer, i) in enumerate(owners)
            if fusable and i in layer.fusable_weights and layer._regularizers[i] is None)
        self._fused = [(owners[index][0], owners[index][1],
                        functools.partial(optimizer.fused_update, index, self.params[index]))
                       for index in sorted(self.skip)]
        self.grads = [None if index in self.skip else layer.grad_buffer(i)
                      for index, (layer, i) in enumerate(owners)]

    @contextlib.contextmanager
    def fused_updates(self):
        """Hands the fused updates to their layers for one training step only, so a later
        `layer.backward` outside a step never updates a weight."""
        for layer, i, update in self._fused:
            layer.fused_updates[i] = update
        try:
            yield
        finally:
            for layer, i, _ in self._fused:
                layer.fused_updates[i] = None


class Trainer:
    """Mixin of Sequential: everything that needs a loss and an optimizer."""

    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self._metric_ids: list = []
        self._metrics: list | None = None
        self._plan: _Plan | None = None
        self.stop_training = False
        self.history = None

    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Set the optimizer, the loss and the metrics (names, as Keras, or objects)."""
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. "
                             "loss='sparse_categorical_crossentropy'; received loss=None")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        metric_ids = [] if metrics is None else metrics
        if isinstance(metric_ids, (str, metrics_lib.Metric)):
            metric_ids = [metric_ids]
        if not isinstance(metric_ids, (list, tuple)):
            raise TypeError(f"compile: metrics must be a list, received "
                            f"{type(metrics).__name__}")
        for identifier in metric_ids:
            metrics_lib.check_identifier(identifier)
        self._metric_ids = list(metric_ids)
        self._metrics = None
        self._plan = None
        self.compiled = True

    def _build_optimizer(self) -> None:
        """Create the optimizer's slots now (loading a saved optimizer state needs them)."""
        self._plan = _Plan(self)
        if not self.optimizer.built:
            self.optimizer.build(self._plan.params)

    @property
    def metrics_names(self) -> list[str]:
        names = [m.name if isinstance(m, metrics_lib.Metric) else m
                 for m in self._metric_ids]
        return ["loss"] + names

    def metric_direction(self, name: str) -> str | None:
        """'up' or 'down' for a compiled metric's name (used by callbacks' mode='auto')."""
        if name == "loss":
            return "down"
        for m in self._metrics or []:
            if m.name == name:
                return m.direction
        for identifier in self._metric_ids:
            if isinstance(identifier, str) and identifier == name:
                return "up" if "acc" in identifier.lower() else "down"
        return None

    # ---- data at the edge ------------------------------------------------------------------

    def _require_compiled(self, where: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"{where}: the model must be compiled first; call "
                               f"model.compile(optimizer=..., loss=...)")

    @staticmethod
    def _as_x(x, where: str) -> np.ndarray:
        if x is None:
            raise ValueError(f"{where}: x is required, received None")
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{where}: x must be numeric, received dtype {arr.dtype}")
        if arr.ndim < 2:
            raise ValueError(f"{where}: x must have a batch dimension and features, "
                             f"received x of shape {arr.shape}")
        return _checks.c_array(arr, np.float32)

    def _prepare_x(self, x, where: str) -> np.ndarray:
        x = self._as_x(x, where)
        self._ensure_built(x.shape, where)
        self._check_x(x, where)
        self._plan = _Plan(self)  # cheap; picks up trainable flags changed since last call
        return x

    def _prepare_plan(self) -> None:
        if self._plan is None:
            self._plan = _Plan(self)

    def _prepare_xy(self, x, y, where: str) -> tuple[np.ndarray, np.ndarray]:
        x = self._prepare_x(x, where)
        if len(x) == 0:  # a mean loss over no samples is 0 / 0
            raise ValueError(f"{where}: x is empty, received 0 samples")
        if y is None:
            raise ValueError(f"{where}: y is required, received None")
        y_arr = np.asarray(y)
        if y_arr.ndim == 0 or len(y_arr) != len(x):
            raise ValueError(f"{where}: x and y must have the same number of samples, received "
                             f"x with {len(x)} and y with "
                             f"{len(y_arr) if y_arr.ndim else 'no'} samples")
        labels = self.loss.prepare_labels(y_arr, (len(x),) + self.output_shape[1:])
        if self._metrics is None:
            out_shape = (len(x),) + self.output_shape[1:]
            self._metrics = [metrics_lib.get(m, labels.shape, out_shape) for m in self._metric_ids]
        return x, labels

    @staticmethod
    def _batch_size(where: str, batch_size) -> int:
        if batch_size is None:
            return _DEFAULT_BATCH_SIZE
        return _checks.integer(where, "batch_size", batch_size, low=1)

    # ---- steps -----------------------------------------------------------------------------

    def _loss_and_grad(self, out: np.ndarray, labels: np.ndarray):
        """Mean loss of a batch and the gradient to feed backward (and where to start)."""
        layers = self._layers
        if self._plan.fused:
            last = layers[-1]
            grad = self._buffers.get("dlogits", last.logits.shape)
            loss = self.loss.compute_from_logits(last.logits, labels, grad)
            return loss, last.backward_logits(grad), len(layers) - 1
        grad = self._buffers.get("dout", out.shape)
        return self.loss.compute(out, labels, grad), grad, len(layers)

    def _train_step(self, xb: np.ndarray, yb: np.ndarray):
        plan = self._plan
        if plan.params and not self.optimizer.built:  # fused updates index its slots
            self.optimizer.build(plan.params)
        out = self._forward(xb, training=True)
        with plan.fused_updates():
            loss, grad, stop = self._loss_and_grad(out, yb)
            for layer in reversed(self._layers[:stop]):
                if grad is None:
                    break
                grad = layer.backward(grad)
        loss += sum(layer.regularization_penalty(with_grads=True)
                    for layer in plan.trainable_layers)
        if plan.params:
            self.optimizer.apply(plan.params, plan.grads, skip=plan.skip)
        return loss, out

    def _test_step(self, xb: np.ndarray, yb: np.ndarray):
        out = self._forward(xb, training=False)
        if self._plan.fused:
            last = self._layers[-1]
            grad = self._buffers.get("dlogits", last.logits.shape)
            loss = self.loss.compute_from_logits(last.logits, yb, grad)
        else:
            loss = self.loss.compute(out, yb, self._buffers.get("dout", out.shape))
        loss += sum(layer.regularization_penalty() for layer in self._plan.trainable_layers)
        return loss, out

    def _reset_metrics(self):
        self._loss_tracker = metrics_lib.Mean("loss")
        for m in self._metrics:
            m.reset_state()

    def _update_metrics(self, loss: float, labels: np.ndarray, out: np.ndarray) -> dict:
        self._loss_tracker.update_state(loss, weight=len(labels))
        for m in self._metrics:
            m.update_state(labels, out)
        logs = {"loss": self._loss_tracker.result()}
        logs.update((m.name, m.result()) for m in self._metrics)
        return dict(sorted(logs.items()))

    def _results(self, logs: dict, return_dict: bool):
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x, y, return_dict: bool = False):
        """One optimizer step on one batch; returns that batch's loss (and metrics)."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare_xy(x, y, "train_on_batch")
        self._reset_metrics()
        state: dict = {}
        with _defer_keyboard_interrupt(state):
            loss, out = self._train_step(x, y)
        if state.get("interrupted"):
            raise KeyboardInterrupt
        return self._results(self._update_metrics(loss, y, out), return_dict)

    def test_on_batch(self, x, y, return_dict: bool = False):
        """Loss (and metrics) of one batch, without updating the weights."""
        self._require_compiled("test_on_batch")
        x, y = self._prepare_xy(x, y, "test_on_batch")
        self._reset_metrics()
        loss, out = self._test_step(x, y)
        return self._results(self._update_metrics(loss, y, out), return_dict)

    def predict_on_batch(self, x) -> np.ndarray:
        """Model output for one batch (a new array)."""
        x = self._prepare_x(x, "predict_on_batch")
        return np.array(self._forward(x, training=False))

    # ---- loops -----------------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1,
            verbose="auto", callbacks=None, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, initial_epoch: int = 0):
        """Train for `epochs` epochs; returns a `History` whose `.history` maps each metric
        ('loss', 'accuracy', 'val_loss', ...) to its per-epoch values."""
        self._require_compiled("fit")
        verbose = _verbosity("fit", verbose)
        batch_size = self._batch_size("fit", batch_size)
        epochs = _checks.integer("fit", "epochs", epochs, low=0)
        initial_epoch = _checks.integer("fit", "initial_epoch", initial_epoch, low=0)
        split = _checks.real("fit", "validation_split", validation_split, low=0.0, high=1.0,
                             high_open=True)
        x, y = self._prepare_xy(x, y, "fit")
        val = None
        if validation_data is not None:
            val = self._unpack_validation(validation_data)
        elif split > 0.0:
            split_at = math.floor(len(x) * (1.0 - split))
            if split_at in (0, len(x)):
                raise ValueError(f"fit: validation_split={validation_split} leaves an empty "
                                 f"training or validation set for {len(x)} samples")
            x, y, val = x[:split_at], y[:split_at], (x[split_at:], y[split_at:])
        steps = math.ceil(len(x) / batch_size)
        cbs = CallbackList(callbacks, self, {"verbose": verbose, "epochs": epochs,
                                             "steps": steps}, add_history=True,
                           add_progbar=verbose != 0)
        shuffle_rng = _random.make_generator() if shuffle else None
        x_buf = np.empty((min(batch_size, len(x)),) + x.shape[1:], np.float32) if shuffle else None
        y_buf = np.empty((min(batch_size, len(y)),) + y.shape[1:], y.dtype) if shuffle else None
        self.stop_training = False
        state: dict = {}
        with _defer_keyboard_interrupt(state):
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                self._reset_metrics()
                cbs.on_epoch_begin(epoch)
                order = shuffle_rng.permutation(len(x)) if shuffle else None
                logs = {}
                for step in range(steps):
                    cbs.on_train_batch_begin(step)
                    lo, hi = step * batch_size, min((step + 1) * batch_size, len(x))
                    if shuffle:
                        xb, yb = x_buf[:hi - lo], y_buf[:hi - lo]
                        np.take(x, order[lo:hi], axis=0, out=xb)
                        np.take(y, order[lo:hi], axis=0, out=yb)
                    else:
                        xb, yb = x[lo:hi], y[lo:hi]
                    loss, out = self._train_step(xb, yb)
                    logs = self._update_metrics(loss, yb, out)
                    cbs.on_train_batch_end(step, logs)
                    if state.get("interrupted"):
                        raise KeyboardInterrupt
                    if self.stop_training:
                        break
                epoch_logs = dict(logs)
                if val is not None:
                    val_logs = self._evaluate_arrays(val[0], val[1], batch_size, cbs)
                    epoch_logs.update((f"val_{k}", v) for k, v in val_logs.items())
                cbs.on_epoch_end(epoch, epoch_logs)
                if state.get("interrupted"):
                    raise KeyboardInterrupt
                if self.stop_training:
                    break
            cbs.on_train_end()
        return cbs.history

    def _unpack_validation(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val), received "
                             f"{type(validation_data).__name__}")
        if len(validation_data) == 3 and validation_data[2] is not None:
            raise NotImplementedError("fit: sample weights in validation_data are not "
                                      "supported yet")
        return self._prepare_xy(validation_data[0], validation_data[1], "fit (validation_data)")

    def _evaluate_arrays(self, x, y, batch_size, cbs) -> dict:
        self._reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step in range(math.ceil(len(x) / batch_size)):
            cbs.on_test_batch_begin(step)
            xb, yb = x[step * batch_size:(step + 1) * batch_size], \
                y[step * batch_size:(step + 1) * batch_size]
            loss, out = self._test_step(xb, yb)
            logs = self._update_metrics(loss, yb, out)
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose="auto",
                 callbacks=None, return_dict: bool = False):
        """Loss and metrics over (x, y): a float, [loss, metric, ...] or a dict."""
        self._require_compiled("evaluate")
        verbose = _verbosity("evaluate", verbose)
        batch_size = self._batch_size("evaluate", batch_size)
        x, y = self._prepare_xy(x, y, "evaluate")
        steps = math.ceil(len(x) / batch_size)
        cbs = CallbackList(callbacks, self, {"verbose": verbose, "steps": steps},
                           add_progbar=verbose != 0)
        return self._results(self._evaluate_arrays(x, y, batch_size, cbs), return_dict)

    def predict(self, x, batch_size: int | None = None, verbose="auto",
                callbacks=None) -> np.ndarray:
        """Model outputs for every sample of x, batch by batch (Dropout inactive)."""
        verbose = _verbosity("predict", verbose)
        batch_size = self._batch_size("predict", batch_size)
        x = self._prepare_x(x, "predict")
        result = np.empty((len(x),) + self.output_shape[1:], np.float32)
        steps = math.ceil(len(x) / batch_size)
        cbs = CallbackList(callbacks, self, {"verbose": verbose, "steps": steps},
                           add_progbar=verbose != 0)
        cbs.on_predict_begin()
        for step in range(steps):
            cbs.on_predict_batch_begin(step)
            lo, hi = step * batch_size, min((step + 1) * batch_size, len(x))
            result[lo:hi] = self._forward(x[lo:hi], training=False)
            cbs.on_predict_batch_end(step, {"outputs": result[lo:hi]})
        cbs.on_predict_end()
        return result
