"""The NumPy bodies fastnn._backend had before its kernels were wired to C: references for
tests/test_backend_parity.py (the C-backed _backend must agree with them). Same signatures and
contract as fastnn._backend; kept verbatim apart from this docstring and gelu, which now takes
Phi(x) = 0.5 erfc(-x/sqrt2) from math.erfc instead of 0.5 (1 + erf) with an A&S erf.
"""

from __future__ import annotations

import math

import numpy as np

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu")
_EPSILON = 1e-7  # Keras's backend.epsilon(): clipping bound of probability-space losses.
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _check_act(act: str) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"_backend: unknown activation {act!r}, expected one of {ACTIVATIONS}")


def needs_preact(act: str) -> bool:
    """Whether `act_backward` needs the pre-activation (True only for gelu).

    Every other activation's derivative is computed from its output y alone.
    """
    _check_act(act)
    return act == "gelu"


# erfc, not 1 + erf: for negative x, 1 + erf(x) cancels to 0 long before Phi(x) does
# (gelu(-9) = -1.0e-18, not -0). math.erfc: scipy is not a test dependency.
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def act_forward(act: str, act_alpha: float, x: np.ndarray, out: np.ndarray) -> None:
    """out = act(x), elementwise; softmax normalises over the last axis.

    Args:
        act: canonical name, one of `ACTIVATIONS`.
        act_alpha: negative slope of leaky_relu, alpha of elu; ignored by the others.
        x: any shape.
        out: same shape as x; may be x itself (in place).
    """
    _check_act(act)
    if act == "linear":
        if out is not x:
            np.copyto(out, x)
    elif act == "relu":
        np.maximum(x, 0.0, out=out)
    elif act == "sigmoid":
        # 1 / (1 + exp(-x)): exp overflows to inf for x < -88, giving the correct limit 0.
        with np.errstate(over="ignore"):
            np.negative(x, out=out)
            np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
    elif act == "tanh":
        np.tanh(x, out=out)
    elif act == "softmax":
        row_max = x.max(axis=-1, keepdims=True)
        np.subtract(x, row_max, out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)
    elif act == "leaky_relu":
        scaled = x * np.float32(act_alpha)
        (np.maximum if act_alpha <= 1.0 else np.minimum)(x, scaled, out=out)
    elif act == "elu":
        neg = np.minimum(x, 0.0)
        np.expm1(neg, out=neg)
        neg *= np.float32(act_alpha)
        np.maximum(x, 0.0, out=out)
        out += neg
    else:  # gelu, exact erf form (Keras's default approximate=False): 0.5 x erfc(-x/sqrt2)
        cdf = _erfc(x * -_SQRT_HALF)
        cdf *= x
        np.multiply(cdf, 0.5, out=out, casting="same_kind")


def act_backward(act: str, act_alpha: float, preact: np.ndarray | None, y: np.ndarray,
                 dy: np.ndarray, out: np.ndarray) -> None:
    """out = dL/dpreact, given y = act(preact) and dy = dL/dy. Overwrites out.

    Args:
        act: canonical name, one of `ACTIVATIONS`.
        act_alpha: as in `act_forward`.
        preact: the activation's input; read only when `needs_preact(act)`, else may be None.
        y: the activation's output, same shape as dy.
        dy: gradient of the loss with respect to y.
        out: same shape as dy; must not overlap preact, y or dy.
    """
    _check_act(act)
    if act == "linear":
        np.copyto(out, dy)
    elif act == "relu":
        np.sign(y, out=out)  # y >= 0, so sign(y) is the 0/1 mask of preact > 0.
        out *= dy
    elif act == "sigmoid":
        np.subtract(1.0, y, out=out)
        out *= y
        out *= dy
    elif act == "tanh":
        np.multiply(y, y, out=out)
        np.subtract(1.0, out, out=out)
        out *= dy
    elif act == "softmax":
        np.multiply(dy, y, out=out)
        dot = out.sum(axis=-1, keepdims=True)
        np.subtract(dy, dot, out=out)
        out *= y
    elif act == "leaky_relu":
        # y > 0 exactly where preact > 0 (alpha >= 0); slope alpha elsewhere, as TF at 0.
        np.multiply(dy, np.float32(act_alpha), out=out)
        np.copyto(out, dy, where=y > 0)
    elif act == "elu":
        # d/dx alpha*(exp(x) - 1) = y + alpha for x <= 0; 1 for x > 0.
        np.add(y, np.float32(act_alpha), out=out)
        out *= dy
        np.copyto(out, dy, where=y > 0)
    else:  # gelu: d/dx x*Phi(x) = Phi(x) + x*phi(x)
        x64 = preact.astype(np.float64)
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x64 * x64)
        deriv = 0.5 * _erfc(x64 * -_SQRT_HALF) + x64 * pdf
        np.multiply(deriv, dy, out=out, casting="same_kind")


def dense_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, act: str,
                  act_alpha: float, out: np.ndarray, preact_out: np.ndarray | None = None) -> None:
    """out = act(x @ kernel + bias): one dense layer's forward pass.

    Args:
        x: (batch, in_dim).
        kernel: (in_dim, units), the Keras layout.
        bias: (units,) or None for no bias.
        act, act_alpha: as in `act_forward`.
        out: (batch, units); must not overlap x, kernel, bias or preact_out.
        preact_out: (batch, units) or None; when given, also receives x @ kernel + bias
            (needed by gelu's backward and by fused softmax/sigmoid + cross-entropy).
    """
    _check_act(act)
    z = out if preact_out is None else preact_out
    np.matmul(x, kernel, out=z)
    if bias is not None:
        z += bias
    act_forward(act, act_alpha, z, out)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, trans_a: bool = False,
           trans_b: bool = False) -> None:
    """out = op(a) @ op(b), op = transpose when trans_* is set. Overwrites out.

    Dense backward uses it as dW = matmul(x, dz, trans_a=True), (in_dim, units), and
    dX = matmul(dz, kernel, trans_b=True), (batch, in_dim). out must not overlap a or b.
    """
    np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)


def bias_grad(dy: np.ndarray, out: np.ndarray) -> None:
    """out = dy.sum(axis=0): (batch, units) -> (units,), in a fixed summation order."""
    np.sum(dy, axis=0, out=out)


def softmax_xent(logits: np.ndarray, labels: np.ndarray, sparse: bool,
                 grad_out: np.ndarray) -> float:
    """Fused softmax + categorical cross-entropy on logits; returns the batch-mean loss.

    loss = mean_i(logsumexp(z_i) - sum_j y_ij z_ij), computed with the row max subtracted.
    grad_out = (softmax(z) * sum_j y_ij - y) / batch, i.e. (softmax(z) - onehot) / batch.

    Args:
        logits: (batch, classes).
        labels: sparse: int64 (batch,) with values in [0, classes); else float32
            (batch, classes) target distributions (one-hot or soft).
        sparse: which label form is given.
        grad_out: (batch, classes), dL/dlogits; must not overlap logits or labels.
    """
    batch = logits.shape[0]
    row_max = logits.max(axis=1, keepdims=True)
    np.subtract(logits, row_max, out=grad_out)
    np.exp(grad_out, out=grad_out)
    sum_exp = grad_out.sum(axis=1, keepdims=True)
    log_norm = np.log(sum_exp[:, 0], dtype=np.float64) + row_max[:, 0]  # logsumexp per row
    grad_out /= sum_exp
    if sparse:
        rows = np.arange(batch)
        loss = np.sum(log_norm - logits[rows, labels]) / batch
        grad_out[rows, labels] -= 1.0
    else:
        label_sum = labels.sum(axis=1, dtype=np.float64)
        picked = np.einsum("ij,ij->i", labels, logits, dtype=np.float64)
        loss = np.sum(log_norm * label_sum - picked) / batch
        grad_out *= label_sum[:, None].astype(np.float32)
        grad_out -= labels
    grad_out /= np.float32(batch)
    return float(loss)


def sigmoid_bce(logits: np.ndarray, labels: np.ndarray, grad_out: np.ndarray) -> float:
    """Fused sigmoid + binary cross-entropy on logits; returns the mean over all elements.

    loss = mean(max(z, 0) - z*y + log1p(exp(-|z|))); grad_out = (sigmoid(z) - y) / z.size.
    logits, labels and grad_out share one shape (batch, units); grad_out overlaps neither.
    """
    count = logits.size
    np.abs(logits, out=grad_out)
    sum_abs = grad_out.sum(dtype=np.float64)
    np.negative(grad_out, out=grad_out)
    np.exp(grad_out, out=grad_out)
    np.log1p(grad_out, out=grad_out)
    sum_relu = 0.5 * (sum_abs + logits.sum(dtype=np.float64))
    loss = (sum_relu - np.vdot(logits, labels) + grad_out.sum(dtype=np.float64)) / count
    act_forward("sigmoid", 0.0, logits, grad_out)
    grad_out -= labels
    grad_out /= np.float32(count)
    return float(loss)


def xent_probs(probs: np.ndarray, labels: np.ndarray, sparse: bool,
               grad_out: np.ndarray) -> float:
    """Categorical cross-entropy on probabilities, as Keras: renormalise rows, clip to
    [1e-7, 1 - 1e-7], loss = mean_i(-sum_j y_ij log p_ij). grad_out = dL/dprobs.

    Shapes as in `softmax_xent`. Used only when the output is not a fusable softmax.
    """
    batch = probs.shape[0]
    row_sum = probs.sum(axis=1, keepdims=True)
    q = probs / row_sum
    clipped = np.clip(q, _EPSILON, 1.0 - _EPSILON)
    inside = (q > _EPSILON) & (q < 1.0 - _EPSILON)
    if sparse:
        rows = np.arange(batch)
        target = np.zeros_like(probs)
        target[rows, labels] = 1.0
    else:
        target = labels
    loss = -np.sum(target * np.log(clipped), dtype=np.float64) / batch
    dq = np.where(inside, -target / clipped, 0.0).astype(np.float32)  # dL/dq per row
    # q = p / sum(p): dL/dp_k = (dq_k - sum_j dq_j q_j) / sum(p)
    np.subtract(dq, np.sum(dq * q, axis=1, keepdims=True), out=grad_out)
    grad_out /= row_sum
    grad_out /= np.float32(batch)
    return float(loss)


def bce_probs(probs: np.ndarray, labels: np.ndarray, grad_out: np.ndarray) -> float:
    """Binary cross-entropy on probabilities clipped to [1e-7, 1 - 1e-7] (Keras's rule);
    returns the mean over all elements, grad_out = dL/dprobs. All three share one shape."""
    p = np.clip(probs, _EPSILON, 1.0 - _EPSILON)
    loss = -np.mean(labels * np.log(p) + (1.0 - labels) * np.log1p(-p), dtype=np.float64)
    inside = (probs > _EPSILON) & (probs < 1.0 - _EPSILON)
    np.copyto(grad_out, np.where(inside, (p - labels) / (p * (1.0 - p)), 0.0), casting="same_kind")
    grad_out /= np.float32(probs.size)
    return float(loss)


def mse(pred: np.ndarray, target: np.ndarray, grad_out: np.ndarray) -> float:
    """Mean squared error over all elements; grad_out = 2 (pred - target) / pred.size."""
    np.subtract(pred, target, out=grad_out)
    loss = np.vdot(grad_out, grad_out).astype(np.float64) / pred.size
    grad_out *= np.float32(2.0 / pred.size)
    return float(loss)


def mae(pred: np.ndarray, target: np.ndarray, grad_out: np.ndarray) -> float:
    """Mean absolute error over all elements; grad_out = sign(pred - target) / pred.size."""
    np.subtract(pred, target, out=grad_out)
    loss = np.abs(grad_out).sum(dtype=np.float64) / pred.size
    np.sign(grad_out, out=grad_out)
    grad_out /= np.float32(pred.size)
    return float(loss)


def l1l2_penalty(param: np.ndarray, l1: float, l2: float,
                 grad_out: np.ndarray | None = None) -> float:
    """Returns l1 * sum|w| + l2 * sum w^2 (Keras's L1L2 regularizer).

    If grad_out is given, ACCUMULATES the penalty's gradient l1*sign(w) + 2*l2*w into it
    (it holds the loss gradient of the same parameter).
    """
    penalty = 0.0
    if l1:
        penalty += l1 * float(np.abs(param).sum(dtype=np.float64))
        if grad_out is not None:
            grad_out += np.float32(l1) * np.sign(param)
    if l2:
        penalty += l2 * float(np.vdot(param, param))
        if grad_out is not None:
            grad_out += np.float32(2.0 * l2) * param
    return penalty


def sgd_update(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray | None, lr: float,
               momentum: float, nesterov: bool) -> None:
    """Keras 3 SGD, in place. velocity is None when momentum == 0.

    momentum == 0: w -= lr*g. Else v = momentum*v - lr*g, then w += v, or with nesterov
    w += momentum*v - lr*g.
    """
    lr32 = np.float32(lr)
    if velocity is None:
        param -= lr32 * grad
        return
    velocity *= np.float32(momentum)
    velocity -= lr32 * grad
    if nesterov:
        param += np.float32(momentum) * velocity - lr32 * grad
    else:
        param += velocity


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
                beta_1: float, beta_2: float, epsilon: float, step: int) -> None:
    """Keras 3 Adam, in place; step counts from 1.

    alpha = lr * sqrt(1 - beta_2^step) / (1 - beta_1^step); m += (g - m)(1 - beta_1);
    v += (g^2 - v)(1 - beta_2); w -= alpha * m / (sqrt(v) + epsilon). Scalars in float32.
    """
    f32 = np.float32
    t = f32(step)
    alpha = f32(lr) * np.sqrt(f32(1) - f32(beta_2) ** t) / (f32(1) - f32(beta_1) ** t)
    m += (grad - m) * f32(1.0 - beta_1)
    v += (grad * grad - v) * f32(1.0 - beta_2)
    param -= (m * alpha) / (np.sqrt(v) + f32(epsilon))


def rmsprop_update(param: np.ndarray, grad: np.ndarray, ms: np.ndarray, mom: np.ndarray | None,
                   lr: float, rho: float, momentum: float, epsilon: float) -> None:
    """Keras 3 RMSprop (centered=False), in place; mom is None when momentum == 0.

    ms = rho*ms + (1 - rho)*g^2; inc = lr*g / sqrt(ms + epsilon) (epsilon inside the root);
    momentum > 0: mom = momentum*mom + inc, w -= mom; else w -= inc.
    """
    f32 = np.float32
    ms *= f32(rho)
    ms += f32(1.0 - rho) * grad * grad
    increment = f32(lr) * grad / np.sqrt(ms + f32(epsilon))
    if mom is None:
        param -= increment
    else:
        mom *= f32(momentum)
        mom += increment
        param -= mom


def dropout_forward(x: np.ndarray, rate: float, rng: np.random.Generator, mask_out: np.ndarray,
                    out: np.ndarray) -> None:
    """Inverted dropout: keep each element with probability 1 - rate, scaled by 1/(1 - rate).

    Args:
        x: any shape.
        rate: in [0, 1).
        rng: the layer's Generator; the kernel draws its randomness from it.
        mask_out: uint8, x's shape; receives 1 where kept, 0 where dropped.
        out: x's shape; must not overlap x.
    """
    rng.random(dtype=np.float32, out=out)
    np.greater_equal(out, np.float32(rate), out=mask_out)
    np.multiply(x, mask_out, out=out)
    out /= np.float32(1.0 - rate)


def dropout_backward(dy: np.ndarray, mask: np.ndarray, rate: float, out: np.ndarray) -> None:
    """out = dy * mask / (1 - rate), the gradient of `dropout_forward`. out must not overlap dy."""
    np.multiply(dy, mask, out=out)
    out /= np.float32(1.0 - rate)
