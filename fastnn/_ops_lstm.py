"""LSTM and SimpleRNN functional forms (re-exported by fastnn.ops). Lenient at the edge: they
take any layout of a float32 array (copying once only what the kernel cannot take) and refuse
other dtypes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn import _checks, _kernels

__all__ = [
    "LSTMCache",
    "LSTMGrads",
    "SimpleRNNCache",
    "SimpleRNNGrads",
    "lstm_backward",
    "lstm_forward",
    "simple_rnn_backward",
    "simple_rnn_forward",
]

_LSTM_ACTS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def _f32(a, op: str, name: str, optional: bool = False):
    """a as a C-contiguous, aligned float32 ndarray (one copy if its layout needs it); None
    passes if optional. Any other dtype is a TypeError: nothing is cast silently."""
    if a is None and optional:
        return None
    arr = np.asarray(a)
    if arr.dtype != np.float32:
        raise TypeError(
            f"{op}: {name} must be float32, received {arr.dtype} (convert it with "
            f".astype(np.float32) if that is what you want)"
        )
    return _checks.c_array(arr)


def _act_code(name, op: str, arg: str) -> int:
    key = "linear" if name is None else name
    if key not in _LSTM_ACTS:
        raise ValueError(f"{op}: {arg} must be one of {sorted(_LSTM_ACTS)}, received {name!r}")
    return _LSTM_ACTS[key]


def _inputs(op: str, x, kernel, recurrent_kernel, **optional):
    """((x, kernel, recurrent_kernel), (the optional arrays in the order given, None passing))
    as float32 arrays the kernels take."""
    weights = ((x, "x"), (kernel, "kernel"), (recurrent_kernel, "recurrent_kernel"))
    return (
        tuple(_f32(a, op, name) for a, name in weights),
        tuple(_f32(a, op, name, optional=True) for name, a in optional.items()),
    )


def _output_grads(op: str, cache, d_outputs, dh_last):
    """(dy, dh_last) for the kernel from the gradient of the outputs the forward returned (the
    sequence, or the last h, which then adds to dh_last) and of its returned h_last."""
    d_outputs = _f32(d_outputs, op, "d_outputs", optional=True)
    dh_last = _f32(dh_last, op, "dh_last", optional=True)
    if d_outputs is None or cache.return_sequences:
        return d_outputs, dh_last
    state_shape = (cache.y.shape[0], cache.y.shape[2])
    for name, a in (("d_outputs", d_outputs), ("dh_last", dh_last)):
        if a is not None and a.shape != state_shape:
            raise ValueError(
                f"{op}: {name} must have shape {state_shape} (batch, units), received {a.shape}"
            )
    return None, d_outputs if dh_last is None else d_outputs + dh_last


class _SingleUseCache:
    """Fields given by keyword; `consumed` once a backward kernel has overwritten the saved
    buffers with gradients (see _check_cache)."""

    __slots__ = ("consumed",)

    def __init__(self, **fields):
        for key, value in fields.items():
            setattr(self, key, value)
        self.consumed = False


def _check_cache(op: str, cache, cls: type, forward: str) -> None:
    """Refuses anything but an unused cls cache of `forward`(training=True)."""
    if not isinstance(cache, cls):
        raise TypeError(
            f"{op}: cache must be the {cls.__name__} of {forward}(training=True), "
            f"received {type(cache).__name__}"
        )
    if cache.consumed:
        raise ValueError(
            f"{op}: this cache was already used by a backward pass (the kernel "
            f"overwrites the saved gates); run {forward}(training=True) again"
        )


class LSTMCache(_SingleUseCache):
    """What lstm_backward needs from a training forward. Single use: the backward kernel
    overwrites the saved gates with their gradient, so a cache serves one backward pass."""

    __slots__ = (
        "activation",
        "c0",
        "c_seq",
        "gates",
        "go_backwards",
        "h0",
        "h_mask",
        "has_bias",
        "kernel",
        "recurrent_activation",
        "recurrent_kernel",
        "return_sequences",
        "x",
        "y",
    )


class LSTMGrads(NamedTuple):
    """Gradients of an LSTM's inputs; dx, dbias, dh0, dc0 are None when not computed."""

    dx: np.ndarray | None
    dkernel: np.ndarray
    drecurrent_kernel: np.ndarray
    dbias: np.ndarray | None
    dh0: np.ndarray | None
    dc0: np.ndarray | None


def lstm_forward(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    c0=None,
    *,
    training: bool = False,
    return_sequences: bool = True,
    go_backwards: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    recurrent_mask=None,
):
    """Runs an LSTM over whole sequences (Keras layout, gates ordered i, f, g, o).

    Args:
        x: (batch, time, features) float32.
        kernel: (features, 4*units); recurrent_kernel: (units, 4*units); bias: (4*units,) or
            None.
        h0, c0: (batch, units) initial states, or None for zeros.
        training: keep what lstm_backward needs (returned as the cache).
        return_sequences: outputs is every step's h (batch, time, units), else h_last.
        go_backwards: process time steps in reverse; outputs stay in processing order.
        activation, recurrent_activation: 'tanh', 'sigmoid', 'relu' or 'linear'.
        recurrent_mask: (batch, units) or None; multiplies h_{t-1} where it enters the
            recurrent kernel (Keras's recurrent dropout mask, 1/(1-rate) scale included).

    Returns:
        (outputs, h_last, c_last, cache); cache is an LSTMCache when training, else None.

    Raises:
        TypeError: an array is not float32. ValueError: shapes disagree or an activation is
        not supported.
    """
    op = "lstm_forward"
    act = _act_code(activation, op, "activation")
    ract = _act_code(recurrent_activation, op, "recurrent_activation")
    x, kernel = _f32(x, op, "x"), _f32(kernel, op, "kernel")
    recurrent_kernel = _f32(recurrent_kernel, op, "recurrent_kernel")
    bias, h0, c0, h_mask = (
        _f32(a, op, n, optional=True)
        for a, n in ((bias, "bias"), (h0, "h0"), (c0, "c0"), (recurrent_mask, "recurrent_mask"))
    )
    y, h_last, c_last, gates, c_seq = _kernels.lstm_fwd(
        x,
        kernel,
        recurrent_kernel,
        bias,
        h0,
        c0,
        h_mask=h_mask,
        activation=act,
        recurrent_activation=ract,
        go_backwards=go_backwards,
        training=training,
        return_sequences=return_sequences,
    )
    cache = None
    if training:
        cache = LSTMCache(
            x=x,
            kernel=kernel,
            recurrent_kernel=recurrent_kernel,
            has_bias=bias is not None,
            h0=h0,
            c0=c0,
            h_mask=h_mask,
            y=y,
            c_seq=c_seq,
            gates=gates,
            activation=act,
            recurrent_activation=ract,
            go_backwards=go_backwards,
            return_sequences=return_sequences,
        )
    outputs = y if return_sequences else h_last
    return outputs, h_last, c_last, cache


def lstm_backward(
    cache: LSTMCache, d_outputs=None, dh_last=None, dc_last=None, *, need_dx: bool = True
) -> LSTMGrads:
    """Backward through time of lstm_forward(training=True).

    Args:
        cache: the LSTMCache of that forward (consumed: it serves one backward).
        d_outputs: gradient of outputs, (batch, time, units) or (batch, units) as the forward
            returned them, or None (zero).
        dh_last, dc_last: gradients of the returned final states, or None (zero).
        need_dx: compute dx (skip it for a first layer).

    Returns:
        LSTMGrads(dx, dkernel, drecurrent_kernel, dbias, dh0, dc0); dbias is None without a
        bias, dh0 / dc0 are None where the forward had no h0 / c0.

    Raises:
        TypeError: a gradient is not float32. ValueError: a shape is wrong or the cache was
        already used.
    """
    op = "lstm_backward"
    _check_cache(op, cache, LSTMCache, "lstm_forward")
    dy, dh_last = _output_grads(op, cache, d_outputs, dh_last)
    dc_last = _f32(dc_last, op, "dc_last", optional=True)
    grads = _kernels.lstm_bwd(
        cache.x,
        cache.kernel,
        cache.recurrent_kernel,
        cache.h0,
        cache.c0,
        cache.y,
        cache.c_seq,
        cache.gates,
        dy,
        dh_last,
        dc_last,
        h_mask=cache.h_mask,
        activation=cache.activation,
        recurrent_activation=cache.recurrent_activation,
        go_backwards=cache.go_backwards,
        need_dx=need_dx,
        need_dbias=cache.has_bias,
        need_dh0=cache.h0 is not None,
        need_dc0=cache.c0 is not None,
    )
    cache.consumed = True
    return LSTMGrads(*grads)


class SimpleRNNCache(NamedTuple):
    """What simple_rnn_backward needs from a training forward: its inputs and the output
    sequence y. Read only: a cache serves any number of backward passes."""

    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    has_bias: bool
    h0: np.ndarray | None
    h_mask: np.ndarray | None
    y: np.ndarray
    activation: int
    go_backwards: bool
    return_sequences: bool


class SimpleRNNGrads(NamedTuple):
    """Gradients of a SimpleRNN's inputs; dx, dbias, dh0 are None when not computed."""

    dx: np.ndarray | None
    dkernel: np.ndarray
    drecurrent_kernel: np.ndarray
    dbias: np.ndarray | None
    dh0: np.ndarray | None


def simple_rnn_forward(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    *,
    training: bool = False,
    return_sequences: bool = True,
    go_backwards: bool = False,
    activation: str = "tanh",
    recurrent_mask=None,
):
    """Runs a SimpleRNN, h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel),
    over whole sequences (Keras layout).

    Args: as lstm_forward's, except kernel (features, units), recurrent_kernel (units,
        units), bias (units,) or None, no c0 and no recurrent_activation.

    Returns:
        (outputs, h_last, cache); cache is a SimpleRNNCache when training, else None.

    Raises:
        TypeError: an array is not float32. ValueError: shapes disagree or the activation is
        not supported.
    """
    op = "simple_rnn_forward"
    act = _act_code(activation, op, "activation")
    weights, (bias, h0, h_mask) = _inputs(
        op, x, kernel, recurrent_kernel, bias=bias, h0=h0, recurrent_mask=recurrent_mask
    )
    flags = {"go_backwards": go_backwards, "return_sequences": return_sequences}
    y, h_last = _kernels.simple_rnn_fwd(
        *weights, bias, h0, h_mask=h_mask, activation=act, training=training, **flags
    )
    cache = None
    if training:  # SimpleRNNCache's fields in order
        cache = SimpleRNNCache(*weights, bias is not None, h0, h_mask, y, act, *flags.values())
    return (y if return_sequences else h_last), h_last, cache


def simple_rnn_backward(
    cache: SimpleRNNCache, d_outputs=None, dh_last=None, *, need_dx: bool = True
) -> SimpleRNNGrads:
    """Backward through time of simple_rnn_forward(training=True).

    Args: as lstm_backward's, with the SimpleRNNCache of that forward (read only: it serves
        any number of backwards) and no dc_last.

    Returns:
        SimpleRNNGrads(dx, dkernel, drecurrent_kernel, dbias, dh0); dbias is None without a
        bias, dh0 is None where the forward had no h0.

    Raises:
        TypeError: cache is not a SimpleRNNCache or a gradient is not float32. ValueError: a
        shape is wrong.
    """
    op = "simple_rnn_backward"
    if not isinstance(cache, SimpleRNNCache):
        raise TypeError(
            f"{op}: cache must be the SimpleRNNCache of simple_rnn_forward(training=True), "
            f"received {type(cache).__name__}"
        )
    dy, dh_last = _output_grads(op, cache, d_outputs, dh_last)
    grads = _kernels.simple_rnn_bwd(
        cache.x,
        cache.kernel,
        cache.recurrent_kernel,
        cache.h0,
        cache.y,
        dy,
        dh_last,
        h_mask=cache.h_mask,
        activation=cache.activation,
        go_backwards=cache.go_backwards,
        need_dx=need_dx,
        need_dbias=cache.has_bias,
        need_dh0=cache.h0 is not None,
    )
    return SimpleRNNGrads(*grads)
