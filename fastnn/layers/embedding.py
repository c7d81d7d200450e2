"""Embedding: integer token ids -> rows of a learned table, as `keras.layers.Embedding`."""

from __future__ import annotations

import numpy as np

from fastnn import _checks, initializers, regularizers
from fastnn.layers.base import Layer


class Embedding(Layer):
    """(batch, ...) token ids in [0, input_dim) -> (batch, ..., output_dim) rows of
    `embeddings` (input_dim, output_dim).

    Ids may arrive as any integer or integral float array (Sequential.fit converts inputs to
    float32, exact for ids below 2**24). The gradient touches only the rows a batch used: the
    rows of the previous batch are cleared and this batch's rows accumulated, so a batch costs
    O(rows used), not O(input_dim) (with an embeddings_regularizer the whole table carries a
    gradient, and it is rebuilt whole). The ids have no gradient: backward returns None.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        mask_zero: bool = False,
        **kwargs,
    ):
        kwargs.pop("input_length", None)  # Keras 2 argument, ignored by Keras 3
        super().__init__(**kwargs)
        self.input_dim = _checks.integer("Embedding", "input_dim", input_dim, low=1)
        self.output_dim = _checks.integer("Embedding", "output_dim", output_dim, low=1)
        if embeddings_initializer == "uniform":  # Keras's alias of RandomUniform(-0.05, 0.05)
            embeddings_initializer = "random_uniform"
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        if mask_zero:
            raise NotImplementedError(
                "Embedding: mask_zero=True is not supported (fastnn layers do not propagate masks)"
            )
        self.mask_zero = False
        self.embeddings = None
        self._rows_touched = None

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            self.embeddings_regularizer,
            name="embeddings",
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _ids(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # NaN / inf ids: refused just below, no warning
            ids = x.astype(np.intp)
        if x.dtype.kind == "f" and not np.array_equal(ids, x):
            raise ValueError(
                f"Embedding layer {self.name!r}: inputs must be integer token ids, "
                f"received non-integral values such as "
                f"{x[ids != x].flat[0]!r}"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):
            bad = ids[(ids < 0) | (ids >= self.input_dim)].flat[0]
            raise ValueError(
                f"Embedding layer {self.name!r}: token ids must be in "
                f"[0, {self.input_dim}), received {bad}"
            )
        return ids

    def call(self, x, training=False):
        ids = self._ids(np.asarray(x))
        out = self._buffer("out", ids.shape + (self.output_dim,))
        np.take(self.embeddings, ids, axis=0, out=out)
        self._ids_seen = ids
        return out

    def backward(self, grad_out):
        grad = self.grads[0]
        if self.embeddings_regularizer is not None or self._rows_touched is None:
            grad.fill(0.0)
        else:
            grad[self._rows_touched] = 0.0
        ids = self._ids_seen.reshape(-1)
        np.add.at(grad, ids, np.asarray(grad_out, dtype=np.float32).reshape(-1, self.output_dim))
        self._rows_touched = np.unique(ids)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "mask_zero": False,
        }
