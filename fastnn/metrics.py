"""Metrics, as `keras.metrics`: running means over the samples seen since the last reset.

'accuracy' (or 'acc') resolves as Keras 3 does, from the shapes of labels and outputs: one
output unit gives binary accuracy; labels of lower rank than the output (integer class labels,
as sparse_categorical_crossentropy takes) give sparse categorical accuracy; otherwise
categorical accuracy. Because the loss validates the labels' shape first, this amounts to the
accuracy that matches the loss.
"""

from __future__ import annotations

import numpy as np

from fastnn import _checks


class Metric:
    """Base class: `update_state(y_true, y_pred)`, `result()`, `reset_state()`.

    `direction` is 'up' when larger is better (EarlyStopping's mode='auto' uses it).
    """

    direction = "down"

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def update_state(self, y_true, y_pred) -> None:
        values = self._values(np.asarray(y_true), np.asarray(y_pred))
        self._total += float(np.sum(values, dtype=np.float64))
        self._count += int(values.size)

    def _fit_labels(self, y_true: np.ndarray, shape: tuple) -> np.ndarray:
        """y_true reshaped to `shape`, or ValueError naming both shapes."""
        if y_true.size != int(np.prod(shape)):
            raise ValueError(f"{self.name}: labels of shape {y_true.shape} do not fit "
                             f"outputs needing labels of shape {tuple(shape)}")
        return y_true.reshape(shape)

    def _values(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement _values")

    def get_config(self) -> dict:
        return {"name": self.name}


class Mean(Metric):
    """Weighted mean of the values passed to `update_state(value, weight)`."""

    def __init__(self, name: str = "mean"):
        super().__init__(name)

    def update_state(self, value, weight: float = 1.0) -> None:
        self._total += float(value) * weight
        self._count += weight


class BinaryAccuracy(Metric):
    """Fraction of outputs where (y_pred > threshold) equals y_true."""

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        self.threshold = _checks.real("BinaryAccuracy", "threshold", threshold)
        super().__init__(name)

    def _values(self, y_true, y_pred):
        return (y_pred > self.threshold) == self._fit_labels(y_true, y_pred.shape)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """Fraction of samples where argmax(y_pred) equals argmax(y_true) (one-hot labels)."""

    direction = "up"

    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(name)

    def _values(self, y_true, y_pred):
        labels = self._fit_labels(y_true, y_pred.shape)
        return np.argmax(y_pred, axis=-1) == np.argmax(labels, axis=-1)


class SparseCategoricalAccuracy(Metric):
    """Fraction of samples where argmax(y_pred) equals the integer label."""

    direction = "up"

    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(name)

    def _values(self, y_true, y_pred):
        labels = self._fit_labels(y_true, y_pred.shape[:-1])
        return np.argmax(y_pred, axis=-1) == labels


class MeanSquaredError(Metric):
    """Mean of (y_true - y_pred)^2."""

    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(name)

    def _values(self, y_true, y_pred):
        return np.square(y_pred - self._fit_labels(y_true, y_pred.shape))


class MeanAbsoluteError(Metric):
    """Mean of |y_true - y_pred|."""

    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(name)

    def _values(self, y_true, y_pred):
        return np.abs(y_pred - self._fit_labels(y_true, y_pred.shape))


_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}


def check_identifier(identifier) -> None:
    """Raise early (at compile) for an identifier `get` could never resolve."""
    if isinstance(identifier, Metric):
        return
    if not isinstance(identifier, str):
        raise TypeError(f"metrics entries must be names or fastnn.metrics.Metric instances, "
                        f"received {type(identifier).__name__}")
    if identifier.lower() not in ("accuracy", "acc") and identifier.lower() not in _BY_NAME:
        raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of "
                         f"{sorted(_BY_NAME)}")


def get(identifier, y_true_shape: tuple, y_pred_shape: tuple) -> Metric:
    """A Metric for an identifier; 'accuracy'/'acc' resolve from the shapes as Keras does.

    The metric is named by the identifier string ('accuracy' stays 'accuracy', 'mse' stays
    'mse'), so history keys match what the user passed.
    """
    check_identifier(identifier)
    if isinstance(identifier, Metric):
        return identifier
    key = identifier.lower()
    if key in ("accuracy", "acc"):
        is_binary = y_pred_shape[-1] == 1
        is_sparse = len(y_true_shape) < len(y_pred_shape) or (
            y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
        if is_binary:
            return BinaryAccuracy(name=identifier)
        if is_sparse:
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    return _BY_NAME[key](name=identifier)
