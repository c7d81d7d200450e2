"""Losses by name and class, as `keras.losses`, reduced by the mean over the batch.

A Loss object validates labels once per fit (`prepare_labels`), then computes the mean loss
and dL/dy_pred per batch through `fastnn._backend`:
- CategoricalCrossentropy / SparseCategoricalCrossentropy: softmax_xent on logits (from_logits,
  or fused with a softmax output layer), else xent_probs.
- BinaryCrossentropy: sigmoid_bce on logits (from_logits, or fused with a sigmoid output),
  else bce_probs.
- MeanSquaredError: mse. MeanAbsoluteError: mae.
"""

from __future__ import annotations

import numpy as np

from fastnn import _backend, _checks


def _numeric(name: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name}: labels must be numeric, received dtype {y.dtype}")
    return y


class Loss:
    """Base class. `__call__(y_true, y_pred)` returns the mean loss as a float and
    `gradient(y_true, y_pred)` returns dL/dy_pred; both accept any array-likes.

    Subclasses implement `prepare_labels` and `compute`; cross-entropies also set
    `fusable_activation` (the output activation they can absorb) and `compute_from_logits`.
    """

    fusable_activation: str | None = None

    def __init__(self, name: str):
        self.name = name

    def prepare_labels(self, y, output_shape: tuple) -> np.ndarray:
        """Validate labels against the model output shape (batch included); return them
        converted once (float32, or int64 class indices) and C-contiguous."""
        raise NotImplementedError(f"{type(self).__name__} does not implement prepare_labels")

    def compute(self, y_pred: np.ndarray, y_true: np.ndarray, grad_out: np.ndarray) -> float:
        """Mean loss of a batch; writes dL/dy_pred into grad_out (y_pred's shape)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compute")

    def compute_from_logits(self, logits: np.ndarray, y_true: np.ndarray,
                            grad_out: np.ndarray) -> float:
        """Like compute, on the pre-activation of a fused output activation (2-D logits)."""
        raise NotImplementedError(f"{self.name} cannot be fused with an output activation")

    def _evaluate(self, y_true, y_pred) -> tuple[float, np.ndarray]:
        y_pred = np.asarray(y_pred, dtype=np.float32)
        if y_pred.ndim < 1:
            raise ValueError(f"{self.name}: y_pred must have a batch dimension, "
                             f"received shape {y_pred.shape}")
        y_pred = _checks.c_array(y_pred)
        labels = self.prepare_labels(y_true, y_pred.shape)
        if y_pred.size == 0:  # Keras divides with divide_no_nan: the mean over nothing is 0
            return 0.0, np.zeros_like(y_pred)
        grad = np.empty_like(y_pred)
        return self.compute(y_pred, labels, grad), grad

    def __call__(self, y_true, y_pred) -> float:
        return self._evaluate(y_true, y_pred)[0]

    def gradient(self, y_true, y_pred) -> np.ndarray:
        return self._evaluate(y_true, y_pred)[1]

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        return cls(**config)


def _same_shape_labels(loss: Loss, y, output_shape: tuple) -> np.ndarray:
    """Labels with the output's shape; (batch,) is accepted for a (batch, 1) output."""
    y = _numeric(loss.name, y)
    output_shape = tuple(output_shape)
    if y.shape != output_shape:
        if output_shape[-1] == 1 and y.shape == output_shape[:-1]:
            y = y.reshape(output_shape)
        else:
            raise ValueError(f"{loss.name}: expected labels of shape {output_shape} (the model "
                             f"output's shape), received labels of shape {y.shape}")
    return _checks.c_array(y, np.float32)


class MeanSquaredError(Loss):
    """mean((y_true - y_pred)^2)."""

    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(name)

    def prepare_labels(self, y, output_shape):
        return _same_shape_labels(self, y, output_shape)

    def compute(self, y_pred, y_true, grad_out):
        return _backend.mse(y_pred, y_true, grad_out)


class MeanAbsoluteError(Loss):
    """mean(|y_true - y_pred|)."""

    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(name)

    def prepare_labels(self, y, output_shape):
        return _same_shape_labels(self, y, output_shape)

    def compute(self, y_pred, y_true, grad_out):
        return _backend.mae(y_pred, y_true, grad_out)


class _CrossentropyBase(Loss):
    def __init__(self, from_logits: bool, name: str):
        super().__init__(name)
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {"from_logits": self.from_logits, "name": self.name}


class CategoricalCrossentropy(_CrossentropyBase):
    """-sum(y_true * log softmax) per sample, for one-hot (or soft) labels (batch, classes)."""

    fusable_activation = "softmax"
    sparse = False

    def __init__(self, from_logits: bool = False, name: str = "categorical_crossentropy"):
        super().__init__(from_logits, name)

    def prepare_labels(self, y, output_shape):
        y = _numeric(self.name, y)
        if y.shape != tuple(output_shape):
            hint = ""
            if y.ndim == len(output_shape) - 1:
                hint = ("; these look like integer class labels: use "
                        "sparse_categorical_crossentropy or fastnn.utils.to_categorical")
            raise ValueError(f"{self.name}: expected one-hot labels of shape "
                             f"{tuple(output_shape)}, received labels of shape {y.shape}{hint}")
        return _checks.c_array(y, np.float32)

    def _labels_2d(self, y_true, rows):
        return y_true.reshape(rows, -1)

    def compute(self, y_pred, y_true, grad_out):
        pred = y_pred.reshape(-1, y_pred.shape[-1])
        labels = self._labels_2d(y_true, pred.shape[0])
        grad = grad_out.reshape(pred.shape)
        if self.from_logits:
            return _backend.softmax_xent(pred, labels, self.sparse, grad)
        return _backend.xent_probs(pred, labels, self.sparse, grad)

    def compute_from_logits(self, logits, y_true, grad_out):
        labels = self._labels_2d(y_true, logits.shape[0])
        return _backend.softmax_xent(logits, labels, self.sparse, grad_out)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer class labels (batch,) in [0, classes)."""

    sparse = True

    def __init__(self, from_logits: bool = False,
                 name: str = "sparse_categorical_crossentropy"):
        super().__init__(from_logits, name)

    def prepare_labels(self, y, output_shape):
        y = _numeric(self.name, y)
        output_shape = tuple(output_shape)
        classes = output_shape[-1]
        if y.shape == output_shape[:-1] + (1,) and classes > 1:
            y = y.reshape(output_shape[:-1])
        if y.shape != output_shape[:-1]:
            hint = "; these look like one-hot labels: use categorical_crossentropy" \
                if y.shape == output_shape else ""
            raise ValueError(f"{self.name}: expected integer labels of shape "
                             f"{output_shape[:-1]} for outputs of shape {output_shape}, "
                             f"received labels of shape {y.shape}{hint}")
        if y.dtype.kind == "f" and y.size and not np.array_equal(y, np.floor(y)):
            raise ValueError(f"{self.name}: labels must be integer class indices, received "
                             f"non-integer values such as {y[y != np.floor(y)].flat[0]!r}")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"{self.name}: labels must be integers in [0, {classes}) for "
                             f"{classes} output classes, received labels from {y.min()} "
                             f"to {y.max()}")
        return _checks.c_array(y, np.int64)

    def _labels_2d(self, y_true, rows):
        return y_true.reshape(rows)


class BinaryCrossentropy(_CrossentropyBase):
    """-mean(y log p + (1 - y) log(1 - p)) over all outputs, labels in [0, 1]."""

    fusable_activation = "sigmoid"

    def __init__(self, from_logits: bool = False, name: str = "binary_crossentropy"):
        super().__init__(from_logits, name)

    def prepare_labels(self, y, output_shape):
        y = _same_shape_labels(self, y, output_shape)
        if y.size and (y.min() < 0.0 or y.max() > 1.0):
            raise ValueError(f"{self.name}: labels must lie in [0, 1], received labels from "
                             f"{y.min()} to {y.max()}")
        return y

    def compute(self, y_pred, y_true, grad_out):
        if self.from_logits:
            return _backend.sigmoid_bce(y_pred, y_true, grad_out)
        return _backend.bce_probs(y_pred, y_true, grad_out)

    def compute_from_logits(self, logits, y_true, grad_out):
        return _backend.sigmoid_bce(logits, y_true.reshape(logits.shape), grad_out)


# Function forms (per-sample losses, as keras.losses.<name>); also accepted by compile().

def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Per-sample mean over the last axis of (y_true - y_pred)^2."""
    diff = np.asarray(y_pred, dtype=np.float32) - np.asarray(y_true, dtype=np.float32)
    return np.mean(diff * diff, axis=-1)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Per-sample mean over the last axis of |y_true - y_pred|."""
    diff = np.asarray(y_pred, dtype=np.float32) - np.asarray(y_true, dtype=np.float32)
    return np.mean(np.abs(diff), axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Per-sample categorical cross-entropy (probabilities clipped as Keras)."""
    return _per_sample(CategoricalCrossentropy(from_logits), y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Per-sample sparse categorical cross-entropy."""
    return _per_sample(SparseCategoricalCrossentropy(from_logits), y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Per-sample binary cross-entropy, averaged over the last axis."""
    return _per_sample(BinaryCrossentropy(from_logits), y_true, y_pred)


def _per_sample(loss: Loss, y_true, y_pred) -> np.ndarray:
    y_pred = _checks.c_array(y_pred, np.float32)
    labels = loss.prepare_labels(y_true, y_pred.shape)
    if y_pred.size == 0:  # no samples, or samples without values: mean losses of 0 (Keras)
        return np.zeros(y_pred.shape[:1], np.float32)
    return np.asarray([loss.compute(y_pred[i:i + 1], labels[i:i + 1],
                                    np.empty_like(y_pred[i:i + 1]))
                       for i in range(y_pred.shape[0])], dtype=np.float32)


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
}
_BY_FUNCTION = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier) -> Loss:
    """A Loss from a name ('mse', 'categorical_crossentropy', ...), a function of this module,
    a config dict {'class_name', 'config'} or a Loss instance.

    Raises:
        ValueError: unknown name, function or class.
        TypeError: any other type.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)} "
                             f"or a fastnn.losses.Loss instance")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown loss class {identifier.get('class_name')!r}; "
                             f"expected one of {sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        if identifier not in _BY_FUNCTION:
            raise ValueError(f"Unsupported loss function {identifier!r}: use a name or a "
                             f"function or class of fastnn.losses")
        return _BY_FUNCTION[identifier]()
    raise TypeError(f"loss must be a string, a function, a dict or a Loss, "
                    f"received {type(identifier).__name__}")


def serialize(loss: Loss) -> dict:
    """The config dict stored for a loss."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
