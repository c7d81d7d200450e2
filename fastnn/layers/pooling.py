"""Pooling layers, NHWC (channels_last) as Keras 3: MaxPooling2D / MaxPool2D,
AveragePooling2D / AvgPool2D, MaxPooling1D / MaxPool1D, GlobalAveragePooling2D /
GlobalAvgPool2D, GlobalMaxPooling2D / GlobalMaxPool2D.

All arithmetic goes through `fastnn._backend` (C kernels: csrc/pool2d.c):
max_pool2d_forward (keeping the argmax for the backward) / max_pool2d_backward,
avg_pool2d_forward / avg_pool2d_backward. 1-D pools run on (batch, 1, steps, channels); a
global pool is one window over the whole image. A pool size or stride < 1 raises ValueError
naming the layer when it is made, a pool larger than a 'valid' input when it is built.
"""

from __future__ import annotations

import numpy as np

from fastnn import _backend, _checks
from fastnn.layers.base import Layer
from fastnn.layers.convolutional import _channels_last, _ints, _out_len


class _Pooling(Layer):
    """Shared body of the max / average pools over rank spatial dims."""

    rank = 2
    mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = self._owner = f"{type(self).__name__} layer {self.name!r}"
        self.pool_size = _ints(owner, "pool_size", pool_size, self.rank)
        self.strides = (
            self.pool_size if strides is None else _ints(owner, "strides", strides, self.rank)
        )
        padding = padding.lower() if isinstance(padding, str) else padding
        self.padding = _checks.one_of(owner, "padding", padding, ("valid", "same"))
        _channels_last(owner, data_format)
        self.data_format = data_format

    def _geom(self) -> dict:
        pad = (1,) * (2 - self.rank)
        return {
            "pool_size": pad + self.pool_size,
            "strides": pad + self.strides,
            "padding": self.padding,
        }

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{self._owner}: expected input of rank {self.rank + 2} "
                f"(batch, spatial..., channels), received {tuple(input_shape)}"
            )
        spatial = tuple(
            _out_len(self._owner, n, k, s, 1, self.padding, "pool")
            for n, k, s in zip(input_shape[1:-1], self.pool_size, self.strides)
        )
        return (input_shape[0],) + spatial + (input_shape[-1],)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        self.compute_output_shape(shape)

    def call(self, x, training=False):
        x4 = x if self.rank == 2 else x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
        out_shape = self.compute_output_shape(x.shape)
        out = self._buffer("out", (x.shape[0],) + (1,) * (2 - self.rank) + out_shape[1:])
        if self.mode == "max":
            self._argmax = self._buffer("argmax", out.shape, np.int32)
            _backend.max_pool2d_forward(x4, out, self._argmax, self._geom())
        else:
            _backend.avg_pool2d_forward(x4, out, self._geom())
        self._x, self._x4, self._y = x, x4, out
        return out.reshape(out_shape)

    def backward(self, grad_out):
        if not self.input_grad_needed:
            return None
        dy = grad_out.reshape(self._y.shape)
        dx = self._buffer("dx", self._x4.shape)
        if self.mode == "max":
            _backend.max_pool2d_backward(dy, self._argmax, dx, self._geom())
        else:
            _backend.avg_pool2d_backward(dy, dx, self._geom())
        return dx.reshape(self._x.shape)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }


class MaxPooling2D(_Pooling):
    """Max over pool_size windows (strides default to pool_size); NaN propagates."""


class AveragePooling2D(_Pooling):
    """Mean over pool_size windows; with 'same' padding, over the pixels inside the image."""

    mode = "avg"


class MaxPooling1D(_Pooling):
    """Max over windows of pool_size steps: (batch, steps, ch) -> (batch, out_steps, ch)."""

    rank = 1

    def __init__(
        self, pool_size=2, strides=None, padding="valid", data_format="channels_last", **kwargs
    ):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling2D(Layer):
    """One window over each image: (batch, h, w, ch) -> (batch, ch), or (batch, 1, 1, ch)."""

    mode = "max"

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._owner = f"{type(self).__name__} layer {self.name!r}"
        _channels_last(self._owner, data_format)
        self.data_format = data_format
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4 or any(n is not None and n < 1 for n in input_shape[1:3]):
            raise ValueError(
                f"{self._owner}: expected input of shape (batch, height, width, "
                f"channels) with height, width >= 1, received {tuple(input_shape)}"
            )
        n, c = input_shape[0], input_shape[-1]
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        self._geom = {"pool_size": x.shape[1:3], "padding": "valid"}
        out = self._buffer("out", (x.shape[0], 1, 1, x.shape[3]))
        if self.mode == "max":
            self._argmax = self._buffer("argmax", out.shape, np.int32)
            _backend.max_pool2d_forward(x, out, self._argmax, self._geom)
        else:
            _backend.avg_pool2d_forward(x, out, self._geom)
        self._x = x
        return out if self.keepdims else out.reshape(x.shape[0], x.shape[3])

    def backward(self, grad_out):
        if not self.input_grad_needed:
            return None
        x = self._x
        dy = grad_out.reshape(x.shape[0], 1, 1, x.shape[3])
        dx = self._buffer("dx", x.shape)
        if self.mode == "max":
            _backend.max_pool2d_backward(dy, self._argmax, dx, self._geom)
        else:
            _backend.avg_pool2d_backward(dy, dx, self._geom)
        return dx

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over height and width per channel."""


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width per channel."""

    mode = "avg"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
