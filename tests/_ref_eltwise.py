"""Float64 NumPy references for the element-wise kernels, written obviously; never call fastnn.

Also the ulp comparison the element-wise tests share, and the Keras optimizer rules in
float32 NumPy (same operation order as Keras 3), which the C updates must match bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def erfc(x: np.ndarray) -> np.ndarray:
    return _erfc(np.asarray(x, np.float64))


def expit(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu", "softmax")


# --- activations ----------------------------------------------------------------------------


def act_forward(name: str, x: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """act(x) in float64; softmax over the last axis."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if name == "linear":
            return x.copy()
        if name == "relu":
            return np.where(x < 0, 0.0, x)
        if name == "sigmoid":
            return expit(x)
        if name == "tanh":
            return np.tanh(x)
        if name == "gelu":  # 0.5 x erfc(-x/sqrt2); -inf -> 0
            return np.where(x == -np.inf, 0.0, 0.5 * x * erfc(-x / np.sqrt(2.0)))
        if name == "elu":
            return np.where(x > 0, x, alpha * np.expm1(x))
        if name == "leaky_relu":
            return np.where(x < 0, alpha * x, x)
        if name == "softmax":
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(name)


def act_derivative(name: str, x: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """d act / dx element-wise, float64, from the input x (not softmax)."""
    x = np.asarray(x, dtype=np.float64)
    if name == "linear":
        return np.ones_like(x)
    if name == "relu":
        return (x > 0).astype(np.float64)
    if name == "sigmoid":
        s = expit(x)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(x) ** 2
    if name == "gelu":
        xc = np.clip(x, -40, 40)
        return 0.5 * erfc(-x / np.sqrt(2.0)) + xc * np.exp(-0.5 * xc * xc) / np.sqrt(2 * np.pi)
    if name == "elu":
        return np.where(x > 0, 1.0, alpha * np.exp(x))
    if name == "leaky_relu":
        return np.where(x > 0, 1.0, alpha)
    raise ValueError(name)


def act_backward_from_y(name: str, y, dy, alpha: float = 0.0, preact=None) -> np.ndarray:
    """dx from the output y (float64 arithmetic on the given float32 values), as the kernel
    defines it; gelu from preact."""
    y = np.asarray(y, np.float64)
    dy = np.asarray(dy, np.float64)
    if name == "linear":
        return dy.copy()
    if name == "relu":
        return np.where(y > 0, dy, 0.0)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "elu":
        return np.where(y > 0, dy, dy * (y + alpha))
    if name == "leaky_relu":
        return np.where(y > 0, dy, alpha * dy)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    if name == "gelu":
        return dy * act_derivative("gelu", preact)
    raise ValueError(name)


# --- losses ---------------------------------------------------------------------------------


def softmax_xent(logits, labels):
    """(mean loss, dL/dlogits) in float64; labels int (sparse) or float targets (dense)."""
    z = np.asarray(logits, np.float64)
    batch = z.shape[0]
    if labels.dtype.kind in "iu":
        t = np.zeros_like(z)
        t[np.arange(batch), labels] = 1.0
    else:
        t = np.asarray(labels, np.float64)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    log_s = np.log(e.sum(axis=1))
    # sum_j t_j (lse - z_j) with lse - z_j = log_s + (m - z_j): no absorption by a huge max
    loss = np.sum(log_s * t.sum(axis=1) + (t * (m - z)).sum(axis=1)) / max(batch, 1)
    p = e / e.sum(axis=1, keepdims=True)
    grad = (p * t.sum(axis=1, keepdims=True) - t) / max(batch, 1)
    return loss, grad


def sigmoid_bce(logits, labels):
    z = np.asarray(logits, np.float64)
    t = np.asarray(labels, np.float64)
    n = max(z.size, 1)
    loss = np.sum(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))) / n
    return loss, (expit(z) - t) / n


# --- optimizers, float32 in Keras 3's operation order ----------------------------------------

f32 = np.float32


def sgd_step(w, g, v, lr, momentum, nesterov):
    """Keras 3 SGD on float32 arrays, in place."""
    lr, mom = f32(lr), f32(momentum)
    if momentum == 0:
        w[...] = w - g * lr
        return
    v[...] = v * mom - g * lr
    if nesterov:
        w[...] = w + (v * mom - g * lr)
    else:
        w[...] = w + v


def adam_step(w, g, m, v, lr, beta_1, beta_2, epsilon, step):
    """Keras 3 Adam on float32 arrays, in place; step counts from 1."""
    t = f32(step)
    b1p, b2p = f32(beta_1) ** t, f32(beta_2) ** t
    alpha = f32(lr) * np.sqrt(f32(1) - b2p) / (f32(1) - b1p)
    m[...] = m + (g - m) * f32(1 - beta_1)
    v[...] = v + (g * g - v) * f32(1 - beta_2)
    w[...] = w - (m * alpha) / (np.sqrt(v) + f32(epsilon))


def rmsprop_step(w, g, ms, mom, lr, rho, momentum, epsilon):
    """Keras 3 RMSprop (centered=False) on float32 arrays, in place."""
    ms[...] = f32(rho) * ms + f32(1 - rho) * (g * g)
    inc = (f32(lr) * g) / np.sqrt(ms + f32(epsilon))
    if momentum > 0:
        mom[...] = f32(momentum) * mom + inc
        w[...] = w - mom
    else:
        w[...] = w - inc


# --- comparisons ----------------------------------------------------------------------------


def ulp_error(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in float32 ulps of the reference (ulps of FLT_MIN below it: subnormal
    results are judged on an absolute scale). Non-finite references must match exactly."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    scale = np.spacing(np.maximum(np.abs(ref), np.finfo(np.float32).tiny).astype(np.float32))
    with np.errstate(invalid="ignore"):
        err = np.abs(got - ref) / scale.astype(np.float64)
    finite = np.isfinite(ref)
    same = (np.isnan(ref) & np.isnan(got)) | (ref == got)
    return np.where(finite, err, np.where(same, 0.0, np.inf))


def assert_ulp(got, ref, max_ulp: float, what: str = "") -> None:
    err = ulp_error(got, ref)
    if err.size and not np.all(err <= max_ulp):
        i = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        raise AssertionError(
            f"{what}: {np.count_nonzero(~(err <= max_ulp))} elements beyond {max_ulp} ulp; "
            f"worst at {i}: got {np.asarray(got)[i]!r}, expected {np.asarray(ref)[i]!r} "
            f"({err[i]:.2f} ulp)"
        )
