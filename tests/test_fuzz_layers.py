"""Fuzzing of the layers through the model API: random stacks of layers, inputs in every layout
and dtype, run through predict / __call__ / predict_on_batch and train_on_batch, against a
float64 NumPy reference of the forward and backward passes (see tests/_fuzz.py).

The registry LAYERS holds one LayerSpec per layer class: how to draw one (given the input
shape), and its float64 forward and backward. Adding a layer (Conv2D, MaxPooling2D, LSTM...)
means adding one LayerSpec; the stacks, layouts, dtypes and checks come for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import _fuzz
import _reference_conv as conv_reference  # ref_conv2d, ref_pool, ref_pool_grads
import _reference_lstm as lstm_reference
import numpy as np
import pytest
from _fuzz import F32, Case
from hypothesis import assume, event, given
from hypothesis import strategies as st

import fastnn
from fastnn import layers

EPS = _fuzz.EPS32
ACTS = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu")
KINKED = ("relu", "leaky_relu")  # derivative jumps at 0: training examples avoid z near 0
FEATURES = (1, 2, 3, 5, 7, 13, 17, 33)
BATCHES = (1, 2, 3, 5, 7, 13, 32, 33, 65, 0)
# NaN, signed zeros, denormals and a big value; no infinities: softmax of a row holding inf is
# implementation-defined (inf - inf), not an IEEE rule.
MODEL_SPECIALS = (np.nan, 0.0, -0.0, 1e-40, -3e-42, 1e15)


@dataclass
class Ref:
    """A layer's float64 forward result: y, an error bound for it, and what backward needs."""

    y: np.ndarray
    err: np.ndarray
    cache: dict


@dataclass(frozen=True)
class LayerSpec:
    """One layer class under test.

    make(data, in_shape, ctx) -> layer or None (None: this layer does not take in_shape);
        ctx: {"train": the example trains (no internal randomness the reference cannot
        see), "first": the layer is the model's first};
    forward(layer, weights64, x64, err_in, training) -> Ref;
    backward(layer, weights64, ref, grad, grad_is_logits) -> (dx64, [dweights64])
        (grad_is_logits: grad is dL/d(pre-activation), for a fused output activation).
    """

    name: str
    make: Callable
    forward: Callable
    backward: Callable
    requires: tuple = ()

    def available(self) -> bool:
        return all(hasattr(layers, r) for r in self.requires)


# Set while check() replays the backward pass the kernels' way (see _act_grad).
_KERNEL_WAY = {"on": False}


def _act_grad(act, alpha, z, g):
    """dL/dz from dL/dy. Normally exact (float64, from z). While _KERNEL_WAY is on, the
    derivatives the kernels take from the float32 output y (tanh: 1 - y^2, sigmoid:
    y (1 - y), softmax's Jacobian) use y rounded to float32, as they do: near saturation that
    rounding alone moves 1 - y^2 by a large relative amount, an ill-conditioning of float32
    itself that the weight-update bound must allow (Keras computes these the same way)."""
    if not _KERNEL_WAY["on"] or act not in ("tanh", "sigmoid", "softmax"):
        return _fuzz.act64_grad(act, z, g, alpha)
    y = _fuzz.act64(act, np.asarray(z, np.float64), alpha).astype(F32).astype(np.float64)
    with np.errstate(all="ignore"):
        if act == "tanh":
            return (1.0 - y * y) * g
        if act == "sigmoid":
            return y * (1.0 - y) * g
        return y * (g - (g * y).sum(axis=-1, keepdims=True))


def _slope(act: str, alpha: float) -> float:
    return 1.0 if act == "linear" else max(1.13, abs(alpha))


def _act_forward(act, alpha, z, err_z):
    y = _fuzz.act64(act, z, alpha)
    y_abs = np.abs(np.nan_to_num(y))
    if act == "softmax":
        row_err = err_z.max(axis=-1, keepdims=True, initial=0.0)
        err = 2.0 * y_abs * row_err + 64 * EPS * y_abs + 1e-30
    else:
        err = _slope(act, alpha) * err_z + 64 * EPS * y_abs + 1e-30
    return y, err


# --- Dense -----------------------------------------------------------------------------------

def make_dense(data, in_shape, ctx):
    units = data.draw(st.sampled_from(FEATURES), label="units")
    act = data.draw(st.sampled_from(ACTS), label="activation")
    return layers.Dense(units, activation=act,
                        use_bias=not _fuzz.rare(data, 4, "no bias"))


def dense_forward(layer, weights, x, err_x, training):
    kernel = weights[0]
    bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[1])
    x2 = x.reshape(-1, x.shape[-1])
    z = _fuzz.matmul64(x2, kernel) + bias
    err_z = (_fuzz.gemm_bound(x2, kernel, kernel.shape[0])
             + np.nan_to_num(err_x.reshape(x2.shape)) @ np.abs(kernel)
             + 2 * EPS * np.abs(np.nan_to_num(z)))
    y, err = _act_forward(layer.activation, layer.act_alpha, z, err_z)
    shape = x.shape[:-1] + (kernel.shape[1],)
    return Ref(y.reshape(shape), err.reshape(shape), {"x2": x2, "z": z, "in_shape": x.shape})


def dense_backward(layer, weights, ref, grad, grad_is_logits):
    kernel = weights[0]
    g = grad.reshape(-1, kernel.shape[1])
    dz = g if grad_is_logits else _act_grad(layer.activation, layer.act_alpha, ref.cache["z"],
                                            g)
    grads = [ref.cache["x2"].T @ dz] + ([dz.sum(axis=0)] if layer.use_bias else [])
    return (dz @ kernel.T).reshape(ref.cache["in_shape"]), grads


# --- Activation, ReLU, Softmax ---------------------------------------------------------------

def make_activation(data, in_shape, ctx):
    kind = data.draw(st.sampled_from(("Activation", "ReLU", "Softmax")), label="kind")
    if kind == "ReLU":
        return layers.ReLU(negative_slope=data.draw(st.sampled_from((0.0, 0.1)), label="slope"))
    if kind == "Softmax":
        return layers.Softmax()
    return layers.Activation(data.draw(st.sampled_from(ACTS), label="activation"))


def activation_forward(layer, weights, x, err_x, training):
    y, err = _act_forward(layer.act, layer.act_alpha, x, err_x)
    return Ref(y, err, {"x": x})


def activation_backward(layer, weights, ref, grad, grad_is_logits):
    if grad_is_logits:
        return grad, []
    return _act_grad(layer.act, layer.act_alpha, ref.cache["x"], grad), []


# --- Dropout ---------------------------------------------------------------------------------

def make_dropout(data, in_shape, ctx):
    rate = data.draw(st.sampled_from((0.0, 0.1, 0.5, 0.9)), label="rate")
    return layers.Dropout(rate, seed=data.draw(st.integers(0, 2**31), label="dropout seed"))


def _dropout_scale(layer):
    """mask / (1 - rate) of the last training call, or None in inference (the identity).
    The mask is read from the layer (the kernel draws it; the reference cannot)."""
    if not (layer.rate > 0.0 and getattr(layer, "_active", False)):
        return None
    return layer._mask.astype(np.float64) / (1.0 - np.float32(layer.rate))


def dropout_forward(layer, weights, x, err_x, training):
    scale = _dropout_scale(layer) if training else None
    if scale is None:
        return Ref(x, err_x, {"scale": None})
    y = x * scale
    return Ref(y, err_x * scale + 2 * EPS * np.abs(np.nan_to_num(y)), {"scale": scale})


def dropout_backward(layer, weights, ref, grad, grad_is_logits):
    scale = ref.cache["scale"]
    return (grad if scale is None else grad * scale), []


# --- Flatten ---------------------------------------------------------------------------------

def make_flatten(data, in_shape, ctx):
    return layers.Flatten()


def flatten_forward(layer, weights, x, err_x, training):
    flat = (len(x), int(np.prod(x.shape[1:])))
    return Ref(x.reshape(flat), err_x.reshape(flat), {"shape": x.shape})


def flatten_backward(layer, weights, ref, grad, grad_is_logits):
    return grad.reshape(ref.cache["shape"]), []


# --- LSTM and SimpleRNN ----------------------------------------------------------------------

def make_recurrent(data, in_shape, ctx):
    if len(in_shape) != 2:
        return None
    acts = ("tanh", "sigmoid") if ctx["train"] else ("tanh", "sigmoid", "relu", "linear")
    rate = 0.0 if ctx["train"] else data.draw(st.sampled_from((0.0, 0.3)), label="dropouts")
    cls = data.draw(st.sampled_from((layers.LSTM, layers.GRU, layers.SimpleRNN)), label="cell")
    extra = {}
    if cls is not layers.SimpleRNN:
        extra["recurrent_activation"] = data.draw(st.sampled_from(("sigmoid", "tanh")),
                                                  label="ract")
    return cls(
        data.draw(st.sampled_from((1, 2, 3, 5, 8)), label="units"),
        activation=data.draw(st.sampled_from(acts), label="activation"),
        use_bias=not _fuzz.rare(data, 4, "no bias"),
        return_sequences=data.draw(st.booleans(), label="return_sequences"),
        go_backwards=data.draw(st.booleans(), label="go_backwards"),
        dropout=rate, recurrent_dropout=rate, **extra)


def _lstm_weights(layer, weights):
    return weights[0], weights[1], (weights[2] if layer.use_bias else None)


def lstm_forward(layer, weights, x, err_x, training):
    kernel, rkernel, bias = _lstm_weights(layer, weights)
    with np.errstate(all="ignore"):
        if isinstance(layer, layers.SimpleRNN):
            y, h = lstm_reference.ref_simple_rnn(x, kernel, rkernel, bias, None,
                                                 layer.activation, layer.go_backwards)
        elif isinstance(layer, layers.GRU):
            y, h, _ = lstm_reference.ref_gru(x, kernel, rkernel, bias, None, layer.activation,
                                             layer.recurrent_activation, layer.go_backwards)
        else:
            y, h, _, _ = lstm_reference.ref_lstm(x, kernel, rkernel, bias, None, None,
                                                 layer.activation, layer.recurrent_activation,
                                                 layer.go_backwards)
    out = y if layer.return_sequences else h
    time = x.shape[1]
    err = (1e-4 * np.sqrt(time + 1.0) * (1.0 + np.abs(np.nan_to_num(out)))
           + 4.0 * np.nan_to_num(err_x).max(initial=0.0) * (1.0 + np.abs(kernel).sum(axis=0).max(
               initial=0.0)) * (time + 1))
    return Ref(out, err, {"x": x})


def lstm_backward(layer, weights, ref, grad, grad_is_logits):
    kernel, rkernel, bias = _lstm_weights(layer, weights)
    dy, dh_last = (grad, None) if layer.return_sequences else (None, grad)
    if isinstance(layer, layers.SimpleRNN):
        dx, dk, drk, db, _ = lstm_reference.ref_simple_rnn_grads(
            ref.cache["x"], kernel, rkernel, bias, None, dy, dh_last, layer.activation,
            layer.go_backwards)
    elif isinstance(layer, layers.GRU):
        dx, dk, drk, db, _ = lstm_reference.ref_gru_grads(
            ref.cache["x"], kernel, rkernel, bias, None, dy, dh_last, layer.activation,
            layer.recurrent_activation, layer.go_backwards)
    else:
        dx, dk, drk, db, _, _ = lstm_reference.ref_lstm_grads(
            ref.cache["x"], kernel, rkernel, bias, None, None, dy, dh_last, None,
            layer.activation, layer.recurrent_activation, layer.go_backwards)
    return dx, [dk, drk] + ([db] if layer.use_bias else [])


# --- Embedding (first layer only: its inputs are token ids) -----------------------------------

def make_embedding(data, in_shape, ctx):
    if not ctx["first"] or len(in_shape) != 1:
        return None
    return layers.Embedding(data.draw(st.sampled_from((1, 3, 50)), label="input_dim"),
                            data.draw(st.sampled_from(FEATURES), label="output_dim"))


def embedding_forward(layer, weights, x, err_x, training):
    ids = x.astype(np.intp)
    y = weights[0][ids]
    return Ref(y, np.zeros_like(y), {"ids": ids})


def embedding_backward(layer, weights, ref, grad, grad_is_logits):
    table_grad = np.zeros_like(weights[0])
    np.add.at(table_grad, ref.cache["ids"].reshape(-1), grad.reshape(-1, weights[0].shape[1]))
    return None, [table_grad]


# --- Conv2D / Conv1D (references: tests/test_conv2d.py) ---------------------------------------

def _fits(layer, in_shape):
    """The layer, if it takes in_shape (its output is not empty), else None."""
    try:
        out = layer.compute_output_shape((None,) + tuple(in_shape))
    except ValueError:
        return None
    return layer if all(d is None or d > 0 for d in out[1:]) else None


def make_conv(data, in_shape, ctx):
    rank = len(in_shape) - 1
    if rank not in (1, 2):
        return None
    cls = layers.Conv2D if rank == 2 else getattr(layers, "Conv1D", None)
    if cls is None:
        return None
    kernel = tuple(data.draw(st.sampled_from((1, 2, 3)), label="kernel") for _ in range(rank))
    dilate = data.draw(st.booleans(), label="dilate")
    strides = (1,) * rank if dilate else tuple(
        data.draw(st.sampled_from((1, 2)), label="stride") for _ in range(rank))
    dilation = tuple(data.draw(st.sampled_from((1, 2)), label="dilation")
                     for _ in range(rank)) if dilate else (1,) * rank
    paddings = ("valid", "same") + (("causal",) if rank == 1 else ())
    acts = ACTS[:4] if ctx["train"] else ACTS  # no softmax inside a train stack
    layer = cls(data.draw(st.sampled_from((1, 2, 3, 5, 8)), label="filters"), kernel,
                strides=strides if rank == 2 else strides[0],
                padding=data.draw(st.sampled_from(paddings), label="padding"),
                dilation_rate=dilation if rank == 2 else dilation[0],
                activation=data.draw(st.sampled_from(acts), label="activation"),
                use_bias=not _fuzz.rare(data, 4, "no bias"))
    return _fits(layer, in_shape)


def _conv_geometry(layer):
    pad = (1,) * (2 - layer.rank)
    return {"strides": pad + layer.strides, "padding": layer.padding,
            "dilation": pad + layer.dilation_rate}


def _as4d(layer, x):
    return x if layer.rank == 2 else x[:, None]


def conv_forward(layer, weights, x, err_x, training):
    kernel = weights[0].reshape((1,) * (2 - layer.rank) + weights[0].shape)
    bias = weights[1] if layer.use_bias else None
    x4, geom = _as4d(layer, x), _conv_geometry(layer)
    with np.errstate(all="ignore"):
        z = conv_reference.ref_conv2d(_fuzz.daz(x4), kernel, bias, **geom)
        mag = conv_reference.ref_conv2d(np.abs(np.nan_to_num(x4)), np.abs(kernel), None, **geom)
        prop = conv_reference.ref_conv2d(np.nan_to_num(err_x.reshape(x4.shape)), np.abs(kernel),
                                         None, **geom)
    terms = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    err_z = 2 * max(terms, 1) * EPS * mag + prop + 2 * EPS * np.abs(np.nan_to_num(z)) \
        + 2 * max(terms, 1) * _fuzz.TINY32
    y, err = _act_forward(layer.activation, layer.act_alpha, z, err_z)
    shape = (len(x),) + z.shape[1 + (2 - layer.rank):]
    return Ref(y.reshape(shape), err.reshape(shape),
               {"x4": x4, "z": z, "kernel": kernel, "in_shape": x.shape})


def conv_backward(layer, weights, ref, grad, grad_is_logits):
    z = ref.cache["z"]
    g = grad.reshape(z.shape)
    dz = g if grad_is_logits else _act_grad(layer.activation, layer.act_alpha, z, g)
    _, dx, dw, db = conv_reference.ref_conv2d(ref.cache["x4"], ref.cache["kernel"], None,
                                               dy=dz, **_conv_geometry(layer))
    grads = [dw.reshape(weights[0].shape)] + ([db] if layer.use_bias else [])
    return dx.reshape(ref.cache["in_shape"]), grads


# --- pooling (references: tests/test_pool2d.py) ------------------------------------------------

def make_pool(data, in_shape, ctx):
    rank = len(in_shape) - 1
    if rank not in (1, 2):
        return None
    kind = data.draw(st.sampled_from(("max", "avg")), label="pool kind")
    if ctx["train"] and kind == "max" and not ctx["first"]:
        return None  # argmax of computed values: a float32 near-tie would reroute the gradient
    names = {(2, "max"): "MaxPooling2D", (2, "avg"): "AveragePooling2D",
             (1, "max"): "MaxPooling1D", (1, "avg"): "AveragePooling1D"}
    cls = getattr(layers, names[(rank, kind)], None)
    if cls is None:
        return None
    pool = tuple(data.draw(st.sampled_from((1, 2, 3)), label="pool") for _ in range(rank))
    strides = None if data.draw(st.booleans(), label="default strides") else tuple(
        data.draw(st.sampled_from((1, 2)), label="stride") for _ in range(rank))
    layer = cls(pool if rank == 2 else pool[0],
                strides=strides if rank == 2 or strides is None else strides[0],
                padding=data.draw(st.sampled_from(("valid", "same")), label="padding"))
    return _fits(layer, in_shape)


def _pool_geometry(layer):
    pad = (1,) * (2 - layer.rank)
    return pad + layer.pool_size, pad + layer.strides, layer.padding


def pool_forward(layer, weights, x, err_x, training):
    x4 = _as4d(layer, x)
    pool, strides, padding = _pool_geometry(layer)
    ymax, arg, yavg = conv_reference.ref_pool(_fuzz.daz(x4), pool, strides, padding)
    e4 = np.nan_to_num(err_x.reshape(x4.shape))
    _, _, eavg = conv_reference.ref_pool(e4, pool, strides, padding)
    emax, _, _ = conv_reference.ref_pool(e4, pool, strides, padding)
    if layer.mode == "max":
        y, err = ymax, emax
    else:
        y = yavg
        err = eavg + 2 * pool[0] * pool[1] * EPS * conv_reference.ref_pool(
            np.abs(np.nan_to_num(x4)), pool, strides, padding)[2] + 1e-37
    shape = (len(x),) + y.shape[1 + (2 - layer.rank):]
    return Ref(y.reshape(shape), err.reshape(shape), {"x4": x4, "arg": arg,
                                                      "in_shape": x.shape})


def pool_backward(layer, weights, ref, grad, grad_is_logits):
    pool, strides, padding = _pool_geometry(layer)
    x4, arg = ref.cache["x4"], ref.cache["arg"]
    dy = grad.reshape(arg.shape)
    dmax, davg = conv_reference.ref_pool_grads(x4.shape, dy, arg, pool, strides, padding)
    return (dmax if layer.mode == "max" else davg).reshape(ref.cache["in_shape"]), []


def make_global_pool(data, in_shape, ctx):
    if len(in_shape) != 3:
        return None
    kind = data.draw(st.sampled_from(("GlobalMaxPooling2D", "GlobalAveragePooling2D")),
                     label="global pool")
    if ctx["train"] and kind == "GlobalMaxPooling2D" and not ctx["first"]:
        return None
    return getattr(layers, kind)(keepdims=data.draw(st.booleans(), label="keepdims"))


def global_pool_forward(layer, weights, x, err_x, training):
    n, h, w, c = x.shape
    flat = _fuzz.daz(x).reshape(n, h * w, c)
    if layer.mode == "max":
        nan = np.isnan(flat)
        arg = np.where(nan.any(axis=1), np.argmax(nan, axis=1), np.argmax(
            np.where(nan, -np.inf, flat), axis=1))
        y = np.take_along_axis(flat, arg[:, None], axis=1)[:, 0]
        err = np.nan_to_num(err_x).reshape(n, h * w, c).max(axis=1)
    else:
        arg = None
        y = flat.mean(axis=1)
        err = np.nan_to_num(err_x).reshape(n, h * w, c).mean(axis=1) + 2 * h * w * EPS * \
            np.abs(np.nan_to_num(flat)).mean(axis=1) + 1e-37
    if layer.keepdims:
        y, err = y[:, None, None], err[:, None, None]
    return Ref(y, err, {"arg": arg, "in_shape": x.shape})


def global_pool_backward(layer, weights, ref, grad, grad_is_logits):
    n, h, w, c = ref.cache["in_shape"]
    g = grad.reshape(n, c)
    dx = np.zeros((n, h * w, c))
    if layer.mode == "max":
        np.put_along_axis(dx, ref.cache["arg"][:, None], g[:, None], axis=1)
    else:
        dx += g[:, None] / (h * w)
    return dx.reshape(n, h, w, c), []


LAYERS = [
    LayerSpec("Dense", make_dense, dense_forward, dense_backward),
    LayerSpec("Activation", make_activation, activation_forward, activation_backward),
    LayerSpec("Dropout", make_dropout, dropout_forward, dropout_backward),
    LayerSpec("Flatten", make_flatten, flatten_forward, flatten_backward),
    LayerSpec("LSTM", make_recurrent, lstm_forward, lstm_backward, requires=("LSTM",)),
    LayerSpec("Embedding", make_embedding, embedding_forward, embedding_backward,
              requires=("Embedding",)),
    LayerSpec("Conv", make_conv, conv_forward, conv_backward, requires=("Conv2D",)),
    LayerSpec("Pooling", make_pool, pool_forward, pool_backward, requires=("MaxPooling2D",)),
    LayerSpec("GlobalPooling", make_global_pool, global_pool_forward, global_pool_backward,
              requires=("GlobalMaxPooling2D",)),
]
SPEC_OF = {s.name: s for s in LAYERS}
SPEC_OF.update({"ReLU": SPEC_OF["Activation"], "Softmax": SPEC_OF["Activation"]})
SPEC_OF["SimpleRNN"] = SPEC_OF["GRU"] = SPEC_OF["LSTM"]
SPEC_OF.update({name: SPEC_OF["Conv"] for name in ("Conv2D", "Conv1D")})
SPEC_OF.update({name: SPEC_OF["Pooling"] for name in (
    "MaxPooling2D", "AveragePooling2D", "MaxPooling1D", "AveragePooling1D")})
SPEC_OF.update({name: SPEC_OF["GlobalPooling"] for name in (
    "GlobalMaxPooling2D", "GlobalAveragePooling2D")})


# --- models ----------------------------------------------------------------------------------

IMAGE_DIMS = (1, 2, 3, 5, 7)  # (height, width, channels) of 3-D inputs: the pooling
# references loop in Python over windows, batch and channels


def draw_model(data, train=False):
    """(model, input shape, ids): a Sequential of 1-3 layers from LAYERS on a 1-D, 2-D or 3-D
    feature shape; ids is the vocabulary size when the first layer takes token ids, else 0.
    The initial weights come from a fixed seed, so they depend on the example alone (not on
    the examples drawn before it in the same test, which made a failure unreproducible)."""
    fastnn.utils.set_random_seed(0)
    rank = data.draw(st.sampled_from((1, 2, 3)), label="input rank")
    dims = IMAGE_DIMS if rank == 3 else FEATURES
    in_shape = tuple(data.draw(st.sampled_from(dims), label="dim") for _ in range(rank))
    specs = [s for s in LAYERS if s.available()]
    stack, shape = [], (None,) + in_shape
    for _ in range(data.draw(st.integers(1, 3), label="depth")):
        spec = data.draw(st.sampled_from(specs), label="layer")
        layer = spec.make(data, shape[1:], {"train": train, "first": not stack})
        if layer is None:
            continue
        stack.append(layer)
        shape = tuple(layer.compute_output_shape(shape))
    assume(stack)
    for layer in stack:
        event(f"has {type(layer).__name__}")
    ids = stack[0].input_dim if isinstance(stack[0], getattr(layers, "Embedding", ())) else 0
    return fastnn.Sequential([fastnn.Input(in_shape)] + stack), in_shape, ids


def layer_weights(model, weights=None):
    """[(layer, its weights)] from `weights` (a get_weights() list) or the live weights."""
    weights = model.get_weights() if weights is None else weights
    out, start = [], 0
    for layer in model.layers:
        count = len(layer.weights)
        out.append((layer, weights[start:start + count]))
        start += count
    return out


def reference_forward(stack, x64, training):
    """[(layer, weights64, Ref)] for each (layer, weights) of stack, from x64 (the input
    already converted to float32)."""
    out, err = x64, np.zeros_like(x64)
    trace = []
    for layer, weights in stack:
        weights = [w.astype(np.float64) for w in weights]
        ref = SPEC_OF[type(layer).__name__].forward(layer, weights, out, err, training)
        trace.append((layer, weights, ref))
        out, err = ref.y, ref.err
    return trace


def draw_ids(data, shape, vocabulary):
    """Token ids in [0, vocabulary) as an integer or integral float array in any layout; or,
    rarely, ids out of range or not integral (kind "bad ids")."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="ids seed"))
    ids = rng.integers(0, vocabulary, shape)
    kind = "ok"
    if ids.size and _fuzz.rare(data, 20, "bad ids"):
        kind = "bad ids"
        ids = ids.astype(np.float64)
        ids.flat[0] = data.draw(st.sampled_from((-1, vocabulary, 0.5, np.nan)), label="bad id")
    dtypes = (np.int64, np.int32, np.float32, np.float64) + ((np.uint8,) if vocabulary < 256
                                                             and kind == "ok" else ())
    dtype = data.draw(st.sampled_from(dtypes), label="ids dtype")
    if kind == "bad ids" and np.dtype(dtype).kind != "f":
        dtype = np.float64
    with np.errstate(invalid="ignore"):
        ids = ids.astype(dtype)
    return kind, _fuzz.lay_out(data, ids, data.draw(st.sampled_from(_fuzz.LAYOUTS),
                                                    label="ids layout"))


def draw_x(data, batch, in_shape, specials, ids=0):
    """The input batch: float32 mostly, other numeric dtypes sometimes (converted by fastnn),
    in any layout; or, rarely, a non-numeric dtype or a wrong shape. With ids, token ids."""
    kind = "ok"
    if _fuzz.rare(data, 40, "x non-numeric"):
        kind = "non-numeric"
    elif _fuzz.rare(data, 40, "x wrong shape"):
        kind = "wrong shape"
    shape = (batch,) + in_shape
    if kind == "wrong shape":
        shape = data.draw(st.sampled_from(((batch,), (batch,) + in_shape + (2,),
                                           (batch,) + tuple(d + 1 for d in in_shape))),
                          label="x shape")
    dtype = np.float32
    if _fuzz.rare(data, 5, "x other dtype"):
        dtype = data.draw(st.sampled_from((np.float64, np.float16, np.int32, np.int64, np.uint8,
                                           np.bool_)), label="x dtype")
    if kind == "non-numeric":
        dtype = data.draw(st.sampled_from((np.complex64, np.str_, object)), label="x dtype")
        return kind, np.zeros(shape, dtype)
    if ids and kind == "ok":
        return draw_ids(data, shape, ids)
    if specials and dtype in (np.float32, np.float64):
        x = _fuzz.values(data, shape, dtype)
        if x.size and _fuzz.rare(data, 4, "x specials"):
            for _ in range(data.draw(st.integers(1, 3), label="specials")):
                pos = data.draw(st.integers(0, x.size - 1))
                x.flat[pos] = data.draw(st.sampled_from(MODEL_SPECIALS), label="special")
        x = _fuzz.lay_out(data, x, data.draw(st.sampled_from(_fuzz.LAYOUTS), label="x layout"))
    else:
        x = _fuzz.array(data, shape, dtype, label="x")
    return kind, x


# --- predict ---------------------------------------------------------------------------------

def draw_predict(data) -> Case:
    model, in_shape, ids = draw_model(data)
    batch = data.draw(st.sampled_from(BATCHES), label="batch")
    kind, x = draw_x(data, batch, in_shape, specials=True, ids=ids)
    how = data.draw(st.sampled_from(("predict", "call", "predict_on_batch")), label="call")
    batch_size = data.draw(st.sampled_from((None, 1, 4, 32)), label="batch_size")
    op = {"predict": "predict", "call": "Sequential.__call__",
          "predict_on_batch": "predict_on_batch"}[how]

    def call():
        if how == "predict":
            return model.predict(x, batch_size=batch_size, verbose=0)
        if how == "call":
            return model(x)
        return model.predict_on_batch(x)

    case = Case(call=call, check=None, op=op, also=("Embedding layer",))
    if kind == "non-numeric":
        case.expect(TypeError, "x")
        return case
    if kind in ("wrong shape", "bad ids"):
        case.expect(ValueError, "x" if kind == "wrong shape" else "ids")
        if batch == 0 and kind == "bad ids":  # no rows: nothing to refuse
            case.errors.clear()
        else:
            return case
    x64 = np.asarray(x, dtype=F32).astype(np.float64)

    def check(result):
        ref = reference_forward(layer_weights(model), x64, training=False)[-1][2]
        _fuzz.assert_close(result, ref.y, ref.err, op)

    case.check = check
    return case


# --- train_on_batch --------------------------------------------------------------------------

def _loss_choice(data, model):
    """mse, or a cross-entropy when the output activation fuses with it."""
    last = model.layers[-1]
    act = last.output_activation
    two_d = len(model.output_shape) == 2
    choices = ["mean_squared_error"]
    if act == "softmax" and two_d and model.output_shape[-1] > 1:
        choices += ["categorical_crossentropy", "sparse_categorical_crossentropy"]
    if act == "sigmoid":
        choices += ["binary_crossentropy"]
    return data.draw(st.sampled_from(choices), label="loss")


def _labels(data, loss, out_shape):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="label seed"))
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, out_shape[-1], out_shape[:-1])
    if loss == "categorical_crossentropy":
        return np.eye(out_shape[-1], dtype=F32)[rng.integers(0, out_shape[-1], out_shape[:-1])]
    if loss == "binary_crossentropy":
        return (rng.random(out_shape) < 0.5).astype(F32)
    return rng.standard_normal(out_shape).astype(F32)


def _loss_and_grad(loss, y, z, labels):
    """(loss, grad, grad_is_logits): MSE from the output y; the cross-entropies fused with the
    output activation, from its pre-activation z (rows: every leading dim)."""
    if loss == "mean_squared_error":
        d = y - labels
        return float(np.mean(d * d)), 2.0 * d / d.size, False
    z2 = z.reshape(-1, z.shape[-1])
    if loss == "binary_crossentropy":
        t = labels.reshape(z2.shape).astype(np.float64)
        value = np.mean(np.maximum(z2, 0) - z2 * t + np.log1p(np.exp(-np.abs(z2))))
        return float(value), ((_fuzz.act64("sigmoid", z2) - t) / z2.size).reshape(z.shape), True
    if loss == "sparse_categorical_crossentropy":
        t = np.eye(z2.shape[1])[labels.reshape(-1)]
    else:
        t = labels.reshape(z2.shape).astype(np.float64)
    logp = z2 - z2.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    value = -np.mean((t * logp).sum(axis=1))
    grad = (np.exp(logp) * t.sum(axis=1, keepdims=True) - t) / len(z2)
    return float(value), grad.reshape(z.shape), True


def draw_train(data) -> Case:
    model, in_shape, ids = draw_model(data, train=True)
    lr = data.draw(st.sampled_from((0.01, 0.1, 0.5)), label="learning rate")
    loss = _loss_choice(data, model)
    model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=lr), loss=loss)
    batch = data.draw(st.sampled_from(BATCHES), label="batch")
    kind, x = draw_x(data, batch, in_shape, specials=False, ids=ids)
    labels = _labels(data, loss, (batch,) + model.output_shape[1:])
    y, label_defect = labels, None
    if _fuzz.rare(data, 30, "bad labels"):
        label_defect = data.draw(st.sampled_from(("count", "shape", "dtype")), label="defect")
        if label_defect == "count":
            y = np.concatenate([labels, labels[:1]]) if batch else labels[:0].repeat(2, 0)
        elif label_defect == "shape":
            y = labels[..., None].repeat(2, -1)
        else:
            y = labels.astype(np.complex64)
    elif loss != "sparse_categorical_crossentropy":
        y = _fuzz.lay_out(data, labels, data.draw(st.sampled_from(("C", "F", "reversed",
                                                                   "unaligned")),
                                                  label="y layout"))
    weights0 = model.get_weights()

    case = Case(call=lambda: model.train_on_batch(x, y), check=None, op="train_on_batch",
                also=(loss, "Embedding layer"))  # the loss validates the labels
    # every defect present may be the one reported (x is checked first, the ids last)
    if kind == "non-numeric":
        case.expect(TypeError, "x")
    if kind == "wrong shape" or batch == 0 or label_defect == "count":
        case.expect(ValueError, "x")
    if kind == "bad ids":
        case.expect(ValueError, "ids")
    if label_defect == "shape":
        case.expect(ValueError, "labels")
    if label_defect == "dtype":
        case.expect(TypeError, "labels")
    if case.errors:
        case.check = lambda result: None
        return case
    x64 = np.asarray(x, dtype=F32).astype(np.float64)

    def check(result):
        trace = reference_forward(layer_weights(model, weights0), x64, training=True)
        for layer, _, ref in trace:  # relu's derivative jumps at 0: skip near-ties
            act = getattr(layer, "activation", getattr(layer, "act", "linear"))
            z = ref.cache.get("z", ref.cache.get("x"))
            if act in KINKED and z is not None and z.size:
                assume(np.abs(z).min() > 1e-4 * (1.0 + np.abs(z).max()))
        _last_layer, _, last_ref = trace[-1]
        z_last = last_ref.cache.get("z", last_ref.cache.get("x"))
        want_loss, grad, is_logits = _loss_and_grad(loss, last_ref.y, z_last, labels)
        assert np.isclose(result, want_loss, rtol=1e-4, atol=1e-6), \
            f"train_on_batch: loss {result!r}, reference {want_loss!r}"
        def new_weights(kernel_way):
            _KERNEL_WAY["on"] = kernel_way
            try:
                out, g, logits = [], grad, is_logits
                for layer, weights, ref in reversed(trace):
                    spec = SPEC_OF[type(layer).__name__]
                    with np.errstate(all="ignore"):
                        g, dweights = spec.backward(layer, weights, ref, g, logits)
                    logits = False
                    out = [w - np.float32(lr) * dw for w, dw in zip(weights, dweights)] + out
                return out
            finally:
                _KERNEL_WAY["on"] = False

        got = model.get_weights()
        for w_got, w_old, w_new, w_kern in zip(got, weights0, new_weights(False),
                                                new_weights(True)):
            step_got = w_got.astype(np.float64) - w_old
            step_want = w_new - w_old
            # 4x the spread that float32 outputs alone cause in output-based derivatives
            with np.errstate(all="ignore"):
                spread = np.nan_to_num(4.0 * np.abs(w_kern - w_new))
            bound = (1e-3 * np.abs(step_want).max(initial=0.0) + 4 * EPS * np.abs(w_old)
                     + spread + 1e-30)
            _fuzz.assert_close(step_got.astype(F32), step_want, bound, "weight update")

    case.check = check
    return case


# --- fit ---------------------------------------------------------------------------------------

def draw_fit(data) -> Case:
    """fit(shuffle=False) equals train_on_batch over the same batches of a clone, bit for bit:
    the edge conversion, batching and buffer reuse of fit change nothing."""
    model, in_shape, ids = draw_model(data, train=True)
    loss = _loss_choice(data, model)
    optimizer = data.draw(st.sampled_from(("sgd", "adam", "rmsprop")), label="optimizer")
    clone = fastnn.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    model.compile(optimizer=optimizer, loss=loss)
    clone.compile(optimizer=optimizer, loss=loss)
    batch = data.draw(st.sampled_from(BATCHES), label="batch")
    kind, x = draw_x(data, batch, in_shape, specials=False, ids=ids)
    labels = _labels(data, loss, (batch,) + model.output_shape[1:])
    y = labels if loss == "sparse_categorical_crossentropy" else \
        _fuzz.lay_out(data, labels, data.draw(st.sampled_from(_fuzz.LAYOUTS), label="y layout"))
    batch_size = data.draw(st.sampled_from((1, 2, 7, 32)), label="batch_size")
    epochs = data.draw(st.sampled_from((1, 2)), label="epochs")

    def call():
        return model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)

    case = Case(call=call, check=None, op="fit", also=("Embedding layer",))
    if kind == "non-numeric":
        case.expect(TypeError, "x")
        return case
    if kind == "wrong shape" or batch == 0:
        case.expect(ValueError, "x")
        return case
    if kind == "bad ids":
        case.expect(ValueError, "ids")
        return case
    xc, yc = np.asarray(x, dtype=F32), np.array(y)

    def check(history):
        for _ in range(epochs):
            for lo in range(0, batch, batch_size):
                clone.train_on_batch(xc[lo:lo + batch_size], yc[lo:lo + batch_size])
        for got, want in zip(model.get_weights(), clone.get_weights()):
            np.testing.assert_array_equal(got, want)
        assert len(history.history["loss"]) == epochs

    case.check = check
    return case


@pytest.mark.parametrize("draw", [draw_predict, draw_train, draw_fit],
                         ids=["predict", "train_on_batch", "fit"])
@_fuzz.FUZZ
@given(data=st.data())
def test_fuzz_model(draw, data):
    with _fuzz.kernel_config(data):
        _fuzz.run_case(draw(data))
