"""Convolution layers, NHWC (channels_last) as Keras 3: Conv2D, Conv1D. Pooling layers live
in pooling.py.

All arithmetic goes through `fastnn._backend` (C kernels: csrc/conv2d*.c, csrc/pool2d.c):
- Conv2D: conv2d_forward (bias and activation fused in the kernel); act_backward (unless
  linear); conv2d_backward (kernel and bias gradients, and the input gradient unless the layer
  is the model's first).
- Conv1D: the same on (batch, 1, steps, channels), its kernel (k, in, filters) viewed as
  (1, k, in, filters); 'causal' padding pads the steps on the left.
Shapes that cannot work raise ValueError naming the layer: a stride or kernel size < 1 when
the layer is made, a kernel larger than a 'valid' input when it is built.
"""

from __future__ import annotations

from fastnn import _backend, _checks, activations, initializers, regularizers
from fastnn.layers.base import Layer


def _ints(owner: str, name: str, value, n: int) -> tuple:
    """An int or an n-tuple of ints, each >= 1, as an n-tuple."""
    if not isinstance(value, (tuple, list)):
        value = (_checks.integer(owner, name, value, low=1),) * n
    if len(value) != n:
        raise ValueError(
            f"{owner}: {name} must be an int or a tuple of {n} ints, received {name}={value!r}"
        )
    return tuple(_checks.integer(owner, name, v, low=1) for v in value)


def _channels_last(owner: str, data_format) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{owner}: only data_format='channels_last' is supported, received "
            f"data_format={data_format!r}"
        )


def _out_len(owner: str, n, k: int, s: int, d: int, padding: str, what: str):
    """Output length of one spatial dim (None stays None)."""
    if n is None:
        return None
    span = (k - 1) * d + 1
    if padding == "valid":
        if n < span:
            raise ValueError(
                f"{owner}: the {what} spans {span} along a dimension of size {n}; "
                f"with padding='valid' it must fit in the input (use "
                f"padding='same' or a smaller {what})"
            )
        return (n - span) // s + 1
    return -(-n // s)


class _Conv(Layer):
    """Shared body of Conv1D / Conv2D: rank spatial dims, computed as a 2-D convolution."""

    rank = 2
    paddings = ("valid", "same")

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self._owner = f"{type(self).__name__} layer {self.name!r}"
        self.filters = _checks.integer(owner, "filters", filters, low=1)
        self.kernel_size = _ints(owner, "kernel_size", kernel_size, self.rank)
        self.strides = _ints(owner, "strides", strides, self.rank)
        self.dilation_rate = _ints(owner, "dilation_rate", dilation_rate, self.rank)
        padding = padding.lower() if isinstance(padding, str) else padding
        self.padding = _checks.one_of(owner, "padding", padding, self.paddings)
        _channels_last(owner, data_format)
        self.data_format = data_format
        if groups != 1:
            raise NotImplementedError(
                f"{owner}: groups other than 1 are not supported yet, received groups={groups!r}"
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: strides > 1 cannot be combined with dilation_rate > 1 "
                f"(as in Keras), received strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}"
            )
        self.activation, self.act_alpha = activations.resolve(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    @property
    def output_activation(self):
        return self.activation

    def _geom(self) -> dict:
        pad = (1,) * (2 - self.rank)
        return {
            "strides": pad + self.strides,
            "padding": self.padding,
            "dilation": pad + self.dilation_rate,
        }

    def _check_rank(self, shape) -> None:
        if len(shape) != self.rank + 2 or shape[-1] is None:
            layout = (
                "(batch, steps, channels)" if self.rank == 1 else "(batch, height, width, channels)"
            )
            raise ValueError(
                f"{self._owner}: expected input of shape {layout} with known "
                f"channels, received input_shape={tuple(shape)}"
            )

    def build(self, input_shape):
        self._check_rank(input_shape)
        self.compute_output_shape(input_shape)
        shape = self.kernel_size + (input_shape[-1], self.filters)
        self.kernel = self.add_weight(
            shape, self.kernel_initializer, self.kernel_regularizer, name="kernel"
        )
        if self.use_bias:
            self.bias = self.add_weight(
                (self.filters,), self.bias_initializer, self.bias_regularizer, name="bias"
            )

    def check_input_shape(self, shape):
        self._check_rank(shape)
        if shape[-1] != self.kernel.shape[-2]:
            raise ValueError(
                f"{self._owner}: expected {self.kernel.shape[-2]} input channels, "
                f"received input of shape {tuple(shape)}"
            )
        self.compute_output_shape(shape)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = tuple(
            _out_len(self._owner, n, k, s, d, self.padding, "kernel")
            for n, k, s, d in zip(
                input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate
            )
        )
        return (input_shape[0],) + spatial + (self.filters,)

    def _as4d(self, x):
        return x if self.rank == 2 else x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])

    def call(self, x, training=False):
        x4, k4 = self._as4d(x), self.kernel.reshape((1,) * (2 - self.rank) + self.kernel.shape)
        out_shape = self.compute_output_shape(x.shape)
        out = self._buffer("out", (x.shape[0],) + (1,) * (2 - self.rank) + out_shape[1:])
        keep = self.activation != "linear" and (
            self.keep_logits or _backend.needs_preact(self.activation)
        )
        preact = self._buffer("preact", out.shape) if keep else None
        _backend.conv2d_forward(
            x4, k4, self.bias, self.activation, self.act_alpha, out, self._geom(), preact
        )
        self._x, self._x4, self._k4, self._y = x, x4, k4, out
        self._z = out if preact is None else preact
        self.logits = self._z.reshape(-1, self.filters)
        return out.reshape(out_shape)

    def backward(self, grad_out):
        grad = grad_out.reshape(self._y.shape)
        if self.activation == "linear":
            return self._backward_z(grad)
        dz = self._buffer("dz", grad.shape)
        _backend.act_backward(self.activation, self.act_alpha, self._z, self._y, grad, dz)
        return self._backward_z(dz)

    def backward_logits(self, grad_logits):
        return self._backward_z(grad_logits.reshape(self._y.shape))

    def _backward_z(self, dz):
        dk = self.grads[0].reshape(self._k4.shape)
        db = self.grads[1] if self.use_bias else None
        dx = self._buffer("dx", self._x4.shape) if self.input_grad_needed else None
        _backend.conv2d_backward(self._x4, self._k4, dz, dk, db, dx, self._geom())
        return None if dx is None else dx.reshape(self._x.shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": 1,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Conv2D(_Conv):
    """2-D convolution: (batch, h, w, in_ch) -> (batch, out_h, out_w, filters), kernel
    (kh, kw, in_ch, filters), y = activation(conv(x, kernel) + bias). padding 'valid' or
    'same' ('same' pads the odd row / column at the bottom / right, as Keras)."""

    rank = 2

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            groups,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            **kwargs,
        )


class Conv1D(_Conv):
    """1-D convolution: (batch, steps, in_ch) -> (batch, out_steps, filters), kernel
    (k, in_ch, filters). padding 'valid', 'same' or 'causal' (left padding: output t sees
    inputs up to t only)."""

    rank = 1
    paddings = ("valid", "same", "causal")

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format="channels_last",
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            groups,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            **kwargs,
        )
