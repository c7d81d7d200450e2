"""Recurrent layers: LSTM, GRU and SimpleRNN over whole sequences.

One C kernel call runs the whole sequence forward (fastnn.ops / csrc/rnn_fwd.c: every step's input
projection in one GEMM, then per step the recurrent GEMM and one fused gate pass) and one call
runs backward through time. The training forward keeps the kernel's saved buffers (every h;
the LSTM's c and activated gates, the GRU's gates and recurrent candidate part) until
`backward`.
"""

from __future__ import annotations

import numpy as np

from fastnn import _checks, _kernels, _random, activations, initializers, regularizers
from fastnn.layers.base import Layer

_KERNEL_ACTS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def _kernel_activation(owner: str, name: str, identifier) -> str:
    act, _ = activations.resolve(identifier)
    if act not in _KERNEL_ACTS:
        raise ValueError(
            f"{owner}: {name} must be one of {sorted(_KERNEL_ACTS)} (the fused "
            f"kernel's activations), received {name}={identifier!r}"
        )
    return act


def _rate(owner: str, name: str, value) -> float:
    return _checks.real(owner, name, value, low=0.0, high=1.0, high_open=True)


class _Recurrent(Layer):
    """What every recurrent layer shares: Keras's constructor arguments, weights of `gates`
    blocks of units columns (kernel (features, gates*units), recurrent_kernel (units,
    gates*units), bias), dropout masks (one per sequence, as Keras), shapes, initial and
    returned states (`state_names`), the bookkeeping of backward and the config."""

    gates = 1
    state_names = ("h0",)
    bias_rows = ()  # the bias is bias_rows + (gates*units,)
    # the kernels (fastnn._kernels) and the names of the buffers the forward returns after
    # the final states (fwd_saved) and the backward takes after y (bwd_saved)
    fwd_kernel = bwd_kernel = None
    fwd_saved = bwd_saved = ()

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
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
        owner = type(self).__name__
        self.units = _checks.integer(owner, "units", units, low=1)
        self.activation = _kernel_activation(owner, "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate(owner, "dropout", dropout)
        self.recurrent_dropout = _rate(owner, "recurrent_dropout", recurrent_dropout)
        self.seed = None if seed is None else _checks.integer(owner, "seed", seed, low=0)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        if stateful:
            raise NotImplementedError(f"{owner}: stateful=True is not supported yet")
        self.unroll = bool(unroll)  # a hint for graph backends; the kernel never unrolls
        self.kernel = self.recurrent_kernel = self.bias = None
        self.states = None
        self._rng = None
        self._saved = None

    def _where(self) -> str:
        return f"{type(self).__name__} layer {self.name!r}"

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{self._where()}: expected input of shape (batch, time, features) with known "
                f"features, received {tuple(input_shape)}"
            )
        features, columns = input_shape[-1], self.gates * self.units
        self.kernel = self.add_weight(
            (features, columns), self.kernel_initializer, self.kernel_regularizer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            (self.units, columns),
            self.recurrent_initializer,
            self.recurrent_regularizer,
            name="recurrent_kernel",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                self.bias_rows + (columns,),
                self.bias_initializer,
                self.bias_regularizer,
                name="bias",
            )
        self._rng = _random.generator_from_seed(self.seed)

    def check_input_shape(self, shape):
        features = self.kernel.shape[0]
        if len(shape) != 3 or shape[-1] != features:
            raise ValueError(
                f"{self._where()}: expected input of shape (batch, time, {features}), "
                f"received shape {tuple(shape)}"
            )

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def _mask(self, shape, rate):
        """Inverted-dropout mask: 0, or 1 / (1 - rate) with probability 1 - rate."""
        keep = self._rng.random(shape) >= rate
        return keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate))

    def _dropout(self, x, training):
        """(x with its input mask applied, in_mask, h_mask); the masks None when unused."""
        in_mask = h_mask = None
        if training and self.dropout > 0.0:
            in_mask = self._mask((x.shape[0], 1, x.shape[2]), self.dropout)
            x = x * in_mask
        if training and self.recurrent_dropout > 0.0:
            h_mask = self._mask((x.shape[0], self.units), self.recurrent_dropout)
        return x, in_mask, h_mask

    def _codes(self) -> dict:
        """The kernels' activation and direction arguments."""
        return {"activation": _KERNEL_ACTS[self.activation], "go_backwards": self.go_backwards}

    def _kernel_forward(self, x, states, h_mask, training):
        """The forward kernel (fwd_kernel) over x from `states` (None: zeros): (y or None, the
        final states, {name: the buffers it saved for backward, fwd_saved})."""
        out = self.fwd_kernel(
            x,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            *states,
            h_mask=h_mask,
            training=training,
            return_sequences=self.return_sequences,
            **self._codes(),
        )
        n = len(self.state_names)
        return out[0], list(out[1 : 1 + n]), dict(zip(self.fwd_saved, out[1 + n :]))

    def _kernel_backward(self, saved, dy, dh_last, *more):
        """The backward kernel (bwd_kernel) on the forward's saved dict; more: the gradients
        of the other returned states. Returns (dx, dkernel, drec, dbias)."""
        weights = (self.kernel, self.recurrent_kernel)
        grads = self.bwd_kernel(
            saved["x"],
            *weights,
            *saved["states"],
            saved["y"],
            *(saved[name] for name in self.bwd_saved),
            dy,
            dh_last,
            *more,
            h_mask=saved["h_mask"],
            **self._needs(),
            **self._codes(),
        )
        return grads[:4]

    def _forward(self, x, training, states):
        x, in_mask, h_mask = self._dropout(x, training)
        y, self.states, kept = self._kernel_forward(x, states, h_mask, training)
        self._saved = None
        if training:
            self._saved = {
                "x": x,
                "states": states,
                "h_mask": h_mask,
                "in_mask": in_mask,
                "y": y,
                **kept,
            }
        return y if self.return_sequences else self.states[0]

    def backward(self, grad_out, dh_last=None):
        """dL/d(output) (plus optional dL/d(h_last) of the returned state) -> dL/d(input);
        fills self.grads. Consumes the training forward's saved buffers."""
        return self._backward(grad_out, dh_last)

    def _backward(self, grad_out, dh_last, *more):
        saved = self._take_saved()
        dy, dh_last = self._output_grads(grad_out, dh_last)
        dx, dkernel, drec, dbias = self._kernel_backward(saved, dy, dh_last, *more)
        return self._finish_backward(dx, dkernel, drec, dbias, saved["in_mask"])

    def call(self, x, training=False):
        return self._forward(x, training, [None] * len(self.state_names))

    def _take_saved(self):
        if self._saved is None:
            raise RuntimeError(
                f"{self._where()}: backward needs a training forward first "
                f"(call(x, training=True)); its buffers serve one backward"
            )
        saved, self._saved = self._saved, None
        return saved

    def _output_grads(self, grad_out, dh_last):
        """(dy, dh_last) for the kernel: the output's gradient is the sequence's or adds to
        h_last's."""
        grad = np.ascontiguousarray(grad_out, dtype=np.float32)
        if self.return_sequences:
            return grad, dh_last
        return None, grad if dh_last is None else grad + dh_last

    def _needs(self) -> dict:
        """The backward kernels' need_* arguments: dx unless the first layer, dbias with a
        bias, never the initial states' gradients."""
        return {"need_dx": self.input_grad_needed, "need_dbias": self.use_bias, "need_dh0": False}

    def _finish_backward(self, dx, dkernel, drec, dbias, in_mask):
        """Stores the weight gradients; returns dx through the input dropout mask."""
        np.copyto(self.grads[0], dkernel)
        np.copyto(self.grads[1], drec)
        if self.use_bias:
            np.copyto(self.grads[2], dbias)
        if dx is not None and in_mask is not None:
            dx *= in_mask
        return dx

    def __call__(self, x, training: bool = False, initial_state=None):
        """Apply the layer to a batch; initial_state (a list, one array per state_names) sets
        the starting states. Returns a copy of the output, or [output, *states] with
        return_state."""
        x = _checks.c_array(x)
        if self.built:
            self.check_input_shape(x.shape)
        else:
            self.build_for((None,) + x.shape[1:])
        out = np.array(self._forward(x, training, self._initial_states(x, initial_state)))
        if self.return_state:
            return [out] + [s.copy() for s in self.states]
        return out

    def _initial_states(self, x, initial_state) -> list:
        """The starting states for a batch x: initial_state (a list, one array per
        state_names) checked and made float32 C arrays, or None for each when it is None."""
        if initial_state is None:
            return [None] * len(self.state_names)
        names = ", ".join(self.state_names)
        if len(initial_state) != len(self.state_names):
            raise ValueError(
                f"{self._where()}: initial_state must be [{names}], received "
                f"{len(initial_state)} arrays"
            )
        states = [_checks.c_array(s) for s in initial_state]
        for name, state in zip(self.state_names, states):
            if state.shape != (x.shape[0], self.units):
                raise ValueError(
                    f"{self._where()}: initial state {name} must have shape "
                    f"{(x.shape[0], self.units)}, received {state.shape}"
                )
        return states

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
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


class _GatedRecurrent(_Recurrent):
    """A recurrent layer with gates under recurrent_activation (LSTM, GRU): Keras puts it
    third, before use_bias and the rest of the base layer's arguments."""

    def __init__(
        self, units: int, activation="tanh", recurrent_activation="sigmoid", *args, **kwargs
    ):
        super().__init__(units, activation, *args, **kwargs)
        self.recurrent_activation = _kernel_activation(
            type(self).__name__, "recurrent_activation", recurrent_activation
        )

    def _codes(self) -> dict:
        ract = _KERNEL_ACTS[self.recurrent_activation]
        return {**super()._codes(), "recurrent_activation": ract}

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation}


class LSTM(_GatedRecurrent):
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

    gates = 4
    state_names = ("h0", "c0")
    fwd_kernel, bwd_kernel = staticmethod(_kernels.lstm_fwd), staticmethod(_kernels.lstm_bwd)
    fwd_saved, bwd_saved = ("gates", "c_seq"), ("c_seq", "gates")

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
        **kwargs,
    ):
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            **kwargs,
        )
        self.unit_forget_bias = bool(unit_forget_bias)

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_bias and self.unit_forget_bias:
            self.bias[self.units : 2 * self.units] = 1.0

    def backward(self, grad_out, dh_last=None, dc_last=None):
        """dL/d(output) (plus optional dL/d(h_last), dL/d(c_last) of the returned states) ->
        dL/d(input); fills self.grads. Consumes the training forward's saved buffers."""
        return self._backward(grad_out, dh_last, dc_last)

    def _needs(self) -> dict:
        return {**super()._needs(), "need_dc0": False}

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_GatedRecurrent):
    """Gated recurrent unit (Cho 2014), Keras's GRU layer with reset_after=True (its default).

    (batch, time, features) -> (batch, units), or (batch, time, units) with return_sequences.
    Weights in Keras's layout: kernel (features, 3*units), recurrent_kernel (units, 3*units),
    gates ordered z, r, h; bias (2, 3*units): input bias, recurrent bias. Per step:
    z = recurrent_activation(x W_z + b_z + h U_z + rb_z), r likewise,
    hh = activation(x W_h + b_h + r * (h U_h + rb_h)), h_t = z * h_{t-1} + (1 - z) * hh.

    dropout and recurrent_dropout as the LSTM's. With return_state, calling the layer directly
    returns [output, h_last].
    """

    gates = 3
    bias_rows = (2,)
    fwd_kernel, bwd_kernel = staticmethod(_kernels.gru_fwd), staticmethod(_kernels.gru_bwd)
    fwd_saved = bwd_saved = ("gates", "hn_seq")

    def __init__(self, units: int, *args, reset_after: bool = True, **kwargs):
        if not reset_after:
            raise NotImplementedError(
                "GRU: reset_after=False (the reset gate applied before the recurrent kernel) "
                "is not supported; the kernels implement Keras 3's default reset_after=True"
            )
        super().__init__(units, *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "reset_after": True}


class SimpleRNN(_Recurrent):
    """Fully-connected RNN (Elman 1990), Keras's SimpleRNN layer.

    (batch, time, features) -> (batch, units), or (batch, time, units) with return_sequences.
    Weights in Keras's layout: kernel (features, units), recurrent_kernel (units, units), bias
    (units,). Per step: h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel).

    dropout and recurrent_dropout as the LSTM's. With return_state, calling the layer directly
    returns [output, h_last].
    """

    fwd_kernel = staticmethod(_kernels.simple_rnn_fwd)
    bwd_kernel = staticmethod(_kernels.simple_rnn_bwd)
