"""Recurrent layers: LSTM over whole sequences.

One C kernel call runs the whole sequence forward (fastnn.ops / csrc/lstm.c: every step's input
projection in one GEMM, then per step the recurrent GEMM and one fused gate pass) and one call
runs backward through time. The training forward keeps the kernel's saved buffers (every h, c
and activated gate) until `backward`, which consumes them.
"""

from __future__ import annotations

import numpy as np

from fastnn import _checks, _kernels, _random, activations, initializers, regularizers
from fastnn.layers.base import Layer

_KERNEL_ACTS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def _lstm_activation(owner: str, name: str, identifier) -> str:
    act, _ = activations.resolve(identifier)
    if act not in _KERNEL_ACTS:
        raise ValueError(
            f"{owner}: {name} must be one of {sorted(_KERNEL_ACTS)} (the fused "
            f"kernel's activations), received {name}={identifier!r}"
        )
    return act


def _rate(owner: str, name: str, value) -> float:
    return _checks.real(owner, name, value, low=0.0, high=1.0, high_open=True)


class LSTM(Layer):
    """Long short-term memory (Hochreiter 1997), Keras's LSTM layer.

    (batch, time, features) -> (batch, units), or (batch, time, units) with return_sequences.
    Weights in Keras's layout and order: kernel (features, 4*units), recurrent_kernel
    (units, 4*units), bias (4*units,), gates ordered i, f, c, o. Per step:
    z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias; i, f, o = recurrent_activation(z);
    g = activation(z_c); c_t = f * c_{t-1} + i * g; h_t = o * activation(c_t).

    dropout drops input features and recurrent_dropout drops h_{t-1} before the recurrent
    kernel, each with one mask per sequence (as Keras). With return_state, calling the layer
    directly returns [output, h_last, c_last]; inside a Sequential only output flows on.
    """

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _checks.integer("LSTM", "units", units, low=1)
        self.activation = _lstm_activation("LSTM", "activation", activation)
        self.recurrent_activation = _lstm_activation(
            "LSTM", "recurrent_activation", recurrent_activation
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate("LSTM", "dropout", dropout)
        self.recurrent_dropout = _rate("LSTM", "recurrent_dropout", recurrent_dropout)
        self.seed = None if seed is None else _checks.integer("LSTM", "seed", seed, low=0)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        if stateful:
            raise NotImplementedError("LSTM: stateful=True is not supported yet")
        self.unroll = bool(unroll)  # a hint for graph backends; the kernel never unrolls
        self.kernel = self.recurrent_kernel = self.bias = None
        self.states = None
        self._rng = None
        self._saved = None

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"LSTM layer {self.name!r}: expected input of shape (batch, time, "
                f"features) with known features, received {tuple(input_shape)}"
            )
        features, units = input_shape[-1], self.units
        self.kernel = self.add_weight(
            (features, 4 * units), self.kernel_initializer, self.kernel_regularizer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            (units, 4 * units),
            self.recurrent_initializer,
            self.recurrent_regularizer,
            name="recurrent_kernel",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                (4 * units,), self.bias_initializer, self.bias_regularizer, name="bias"
            )
            if self.unit_forget_bias:
                self.bias[units : 2 * units] = 1.0
        self._rng = _random.generator_from_seed(self.seed)

    def check_input_shape(self, shape):
        features = self.kernel.shape[0]
        if len(shape) != 3 or shape[-1] != features:
            raise ValueError(
                f"LSTM layer {self.name!r}: expected input of shape (batch, time, "
                f"{features}), received shape {tuple(shape)}"
            )

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def _mask(self, shape, rate):
        """Inverted-dropout mask: 0, or 1 / (1 - rate) with probability 1 - rate."""
        keep = self._rng.random(shape) >= rate
        return keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate))

    def _forward(self, x, training, h0=None, c0=None):
        codes = {
            "activation": _KERNEL_ACTS[self.activation],
            "recurrent_activation": _KERNEL_ACTS[self.recurrent_activation],
            "go_backwards": self.go_backwards,
        }
        in_mask = h_mask = None
        if training and self.dropout > 0.0:
            in_mask = self._mask((x.shape[0], 1, x.shape[2]), self.dropout)
            x = x * in_mask
        if training and self.recurrent_dropout > 0.0:
            h_mask = self._mask((x.shape[0], self.units), self.recurrent_dropout)
        y, h_last, c_last, gates, c_seq = _kernels.lstm_fwd(
            x,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            h0,
            c0,
            h_mask=h_mask,
            training=training,
            return_sequences=self.return_sequences,
            **codes,
        )
        self._saved = (x, h0, c0, h_mask, in_mask, y, gates, c_seq, codes) if training else None
        self.states = [h_last, c_last]
        return y if self.return_sequences else h_last

    def call(self, x, training=False):
        return self._forward(x, training)

    def backward(self, grad_out, dh_last=None, dc_last=None):
        """dL/d(output) (plus optional dL/d(h_last), dL/d(c_last) of the returned states) ->
        dL/d(input); fills self.grads. Consumes the training forward's saved buffers."""
        if self._saved is None:
            raise RuntimeError(
                f"LSTM layer {self.name!r}: backward needs a training forward "
                f"first (call(x, training=True)); its buffers serve one backward"
            )
        x, h0, c0, h_mask, in_mask, y, gates, c_seq, codes = self._saved
        self._saved = None
        grad = np.ascontiguousarray(grad_out, dtype=np.float32)
        dy = grad if self.return_sequences else None
        if not self.return_sequences:
            dh_last = grad if dh_last is None else grad + dh_last
        dx, dkernel, drec, dbias, _, _ = _kernels.lstm_bwd(
            x,
            self.kernel,
            self.recurrent_kernel,
            h0,
            c0,
            y,
            c_seq,
            gates,
            dy,
            dh_last,
            dc_last,
            h_mask=h_mask,
            need_dx=self.input_grad_needed,
            need_dbias=self.use_bias,
            need_dh0=False,
            need_dc0=False,
            **codes,
        )
        np.copyto(self.grads[0], dkernel)
        np.copyto(self.grads[1], drec)
        if self.use_bias:
            np.copyto(self.grads[2], dbias)
        if dx is not None and in_mask is not None:
            dx *= in_mask
        return dx

    def __call__(self, x, training: bool = False, initial_state=None):
        """Apply the layer to a batch; initial_state=[h0, c0] sets the starting states.
        Returns a copy of the output, or [output, h_last, c_last] with return_state."""
        x = _checks.c_array(x)
        if self.built:
            self.check_input_shape(x.shape)
        else:
            self.build_for((None,) + x.shape[1:])
        h0 = c0 = None
        if initial_state is not None:
            if len(initial_state) != 2:
                raise ValueError(
                    f"LSTM layer {self.name!r}: initial_state must be [h0, c0], "
                    f"received {len(initial_state)} arrays"
                )
            h0, c0 = (_checks.c_array(s) for s in initial_state)
            for name, state in (("h0", h0), ("c0", c0)):
                if state.shape != (x.shape[0], self.units):
                    raise ValueError(
                        f"LSTM layer {self.name!r}: initial state {name} must "
                        f"have shape {(x.shape[0], self.units)}, received "
                        f"{state.shape}"
                    )
        out = np.array(self._forward(x, training, h0, c0))
        if self.return_state:
            return [out, self.states[0].copy(), self.states[1].copy()]
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "recurrent_activation": self.recurrent_activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": False,
            "unroll": self.unroll,
        }
