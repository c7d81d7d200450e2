"""Core layers: InputLayer, Dense, Activation, ReLU, Softmax, Dropout, Flatten.

Each forward pass and its backward sit side by side; all arithmetic goes through
`fastnn._backend`:
- Dense: dense_forward; act_backward (unless linear); matmul for dW = x^T dz and dX = dz W^T
  (dX skipped on the first layer); bias_grad. In training, dW usually goes straight into the
  optimizer step (`fused_updates[0]`, a GEMM whose tiles update the kernel: no dW buffer).
- Activation / ReLU / Softmax: act_forward, act_backward.
- Dropout: dropout_forward, dropout_backward (training only; identity otherwise).
- Flatten, InputLayer: reshapes only.
"""

from __future__ import annotations

import numpy as np

from fastnn import _backend, _checks, _random, activations, initializers, regularizers
from fastnn.layers.base import Layer, flat_size, normalize_shape


class InputLayer(Layer):
    """Declares a model's input shape (without the batch dimension); not a computing layer."""

    def __init__(self, shape=None, batch_size: int | None = None, dtype=None,
                 name: str | None = None, **kwargs):
        if shape is None:
            shape = kwargs.pop("input_shape", None)
        if shape is None and "batch_input_shape" in kwargs:
            shape = tuple(kwargs.pop("batch_input_shape"))[1:]
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None:
            raise ValueError("InputLayer: shape is required, e.g. shape=(784,), received None")
        self.shape = normalize_shape("InputLayer", "shape", shape)
        self.batch_size = batch_size

    def call(self, x, training=False):
        return x

    def get_config(self):
        return {"shape": list(self.shape), "batch_size": self.batch_size, "name": self.name}


def Input(shape=None, batch_size: int | None = None, dtype=None, name: str | None = None):
    """The input declaration of a Sequential model, e.g. `Sequential([Input((64,)), ...])`."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name)


class Dense(Layer):
    """y = activation(x @ kernel + bias) on the last axis: (..., in_dim) -> (..., units)."""

    fusable_weights = (0,)

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.integer("Dense", "units", units, low=1)
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

    def build(self, input_shape):
        in_dim = input_shape[-1] if len(input_shape) >= 2 else None
        if in_dim is None:
            raise ValueError(f"Dense layer {self.name!r}: the input needs a known last "
                             f"dimension and a batch dimension, received {tuple(input_shape)}")
        self.kernel = self.add_weight((in_dim, self.units), self.kernel_initializer,
                                      self.kernel_regularizer, name="kernel")
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer,
                                        self.bias_regularizer, name="bias")

    def check_input_shape(self, shape):
        in_dim = self.kernel.shape[0]
        if len(shape) < 2 or shape[-1] != in_dim:
            raise ValueError(f"Dense layer {self.name!r}: expected last input dim {in_dim}, "
                             f"received shape {tuple(shape)}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training=False):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        out = self._buffer("out", (x2.shape[0], self.units))
        keep = self.activation != "linear" and (
            self.keep_logits or _backend.needs_preact(self.activation))
        preact = self._buffer("preact", out.shape) if keep else None
        _backend.dense_forward(x2, self.kernel, self.bias, self.activation, self.act_alpha,
                               out, preact)
        self._x, self._y, self._lead = x2, out, lead
        self.logits = out if preact is None else preact
        return out.reshape(lead + (self.units,))

    def backward(self, grad_out):
        grad = grad_out.reshape(-1, self.units)
        if self.activation == "linear":
            return self.backward_logits(grad)
        dz = self._buffer("dz", grad.shape)
        _backend.act_backward(self.activation, self.act_alpha, self.logits, self._y, grad, dz)
        return self.backward_logits(dz)

    def backward_logits(self, grad_logits):
        fused = self.fused_updates[0]
        if fused is None:
            _backend.matmul(self._x, grad_logits, self.grad_buffer(0), trans_a=True)
        if self.use_bias:
            _backend.bias_grad(grad_logits, self.grad_buffer(1))
        dx = None
        if self.input_grad_needed:
            dx = self._buffer("dx", self._x.shape)
            _backend.matmul(grad_logits, self.kernel, dx, trans_b=True)
            dx = dx.reshape(self._lead + (self._x.shape[1],))
        if fused is not None:  # dW = x^T dz into the optimizer step, after dX read the kernel
            fused(self._x, grad_logits, trans_a=True)
        return dx

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}


class _ActivationLayer(Layer):
    """Shared body of layers that apply one activation elementwise (softmax: last axis)."""

    act = "linear"
    act_alpha = 0.0

    @property
    def output_activation(self):
        return self.act

    def call(self, x, training=False):
        out = self._buffer("out", x.shape)
        _backend.act_forward(self.act, self.act_alpha, x, out)
        self._x, self._y = x, out
        self.logits = x.reshape(-1, x.shape[-1]) if x.ndim >= 2 else x.reshape(-1, 1)
        return out

    def backward(self, grad_out):
        if not self.input_grad_needed:
            return None
        dx = self._buffer("dx", grad_out.shape)
        _backend.act_backward(self.act, self.act_alpha, self._x, self._y, grad_out, dx)
        return dx

    def backward_logits(self, grad_logits):
        return grad_logits.reshape(self._x.shape) if self.input_grad_needed else None


class Activation(_ActivationLayer):
    """Applies an activation given by name or `fastnn.activations` function."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.act, self.act_alpha = activations.resolve(activation)

    def get_config(self):
        return {**super().get_config(), "activation": self.act}


class ReLU(_ActivationLayer):
    """max(x, 0), or negative_slope * x for x < 0 (Keras's ReLU; max_value and threshold
    other than their defaults are not supported yet)."""

    def __init__(self, max_value=None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if max_value is not None or threshold != 0.0:
            raise NotImplementedError(f"ReLU: max_value and threshold are not supported yet, "
                                      f"received max_value={max_value!r}, threshold={threshold!r}")
        self.negative_slope = _checks.real("ReLU", "negative_slope", negative_slope, low=0.0)
        self.act = "leaky_relu" if self.negative_slope else "relu"
        self.act_alpha = self.negative_slope

    def get_config(self):
        return {**super().get_config(), "max_value": None,
                "negative_slope": self.negative_slope, "threshold": 0.0}


class Softmax(_ActivationLayer):
    """Softmax over the last axis (the only axis supported)."""

    act = "softmax"

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"Softmax: only axis=-1 is supported, received axis={axis!r}")
        self.axis = -1

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability `rate` and scale the
    rest by 1/(1 - rate); the identity in evaluate and predict."""

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _checks.real("Dropout", "rate", rate, low=0.0, high=1.0, high_open=True)
        if noise_shape is not None:
            raise NotImplementedError(f"Dropout: noise_shape is not supported yet, "
                                      f"received noise_shape={noise_shape!r}")
        self.seed = None if seed is None else _checks.integer("Dropout", "seed", seed, low=0)
        self._rng = None
        self._active = False

    def build(self, input_shape):
        self._rng = _random.generator_from_seed(self.seed)

    def call(self, x, training=False):
        self._active = bool(training) and self.rate > 0.0
        if not self._active:
            return x
        self._mask = self._buffer("mask", x.shape, np.uint8)
        out = self._buffer("out", x.shape)
        _backend.dropout_forward(x, self.rate, self._rng, self._mask, out)
        return out

    def backward(self, grad_out):
        if not self.input_grad_needed:
            return None
        if not self._active:
            return grad_out
        dx = self._buffer("dx", grad_out.shape)
        _backend.dropout_backward(grad_out, self._mask, self.rate, dx)
        return dx

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": None,
                "seed": self.seed}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...), a view of the input."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten: only data_format='channels_last' is supported, "
                             f"received data_format={data_format!r}")
        self.data_format = data_format

    def compute_output_shape(self, input_shape):
        return (input_shape[0], flat_size(input_shape[1:]))

    def call(self, x, training=False):
        self._in_shape = x.shape
        return x.reshape(x.shape[0], flat_size(x.shape[1:]))  # not -1: batch 0 is legal

    def backward(self, grad_out):
        return grad_out.reshape(self._in_shape) if self.input_grad_needed else None

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
