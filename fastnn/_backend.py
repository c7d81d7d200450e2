"""The kernel boundary: every per-batch numeric operation of layers, losses and optimizers.

This module is the ONLY place where the Python API touches numbers batch by batch. The dense
network's functions call the fused C kernels of `fastnn._kernels` (GEMM with its epilogue,
activations, bias gradient, cross-entropies, optimizer updates, dropout); the NumPy bodies they
replaced live on in tests/_backend_numpy.py as references. The probability-space losses, mse,
mae and the regularizer penalty are still NumPy.

Contract shared by every function:
- Arrays are float32 and C-contiguous unless stated otherwise (labels: int64; dropout masks:
  uint8). Callers convert once at the edge (`Sequential.fit`, `Layer.__call__`); nothing here
  casts or copies its inputs.
- Results go into caller-provided `out`-style buffers, which are overwritten (never accumulated
  into) unless a docstring says "accumulates". Layers allocate those buffers once per batch
  shape and reuse them, so the steady state of training allocates no large arrays.
  The C kernels are single fused passes; the NumPy bodies below still create temporaries.
- An `out` buffer never overlaps an input, except where a docstring allows it.
- Reductions use a fixed summation order, so the same inputs give the same bits (for every
  thread count, too).
- Shapes use named dimensions: `batch` rows, `in_dim`/`units` features, `classes` outputs.

Beyond the dense-network kernels listed in issue 3 (dense_forward, needs_preact, act_forward,
act_backward, matmul, bias_grad, softmax_xent, sigmoid_bce, sgd/adam/rmsprop_update and their
sgd/adam/rmsprop_gemm_update forms fused with dW, dropout_forward/backward), the losses that do
not fuse with an output activation and the regularizers need: xent_probs, bce_probs, mse, mae
and l1l2_penalty.
"""

from __future__ import annotations

import numpy as np

from fastnn import _kernels

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu")
_EPSILON = 1e-7  # Keras's backend.epsilon(): clipping bound of probability-space losses.
# The kernels' activation index (fnn_act) of each canonical name.
_ACT_ID = {name: _kernels.ACTIVATIONS.index(name) for name in ACTIVATIONS}


def _check_act(act: str) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"_backend: unknown activation {act!r}, expected one of {ACTIVATIONS}")


def _act_id(act: str) -> int:
    _check_act(act)
    return _ACT_ID[act]


def needs_preact(act: str) -> bool:
    """Whether `act_backward` needs the pre-activation (True only for gelu).

    Every other activation's derivative is computed from its output y alone.
    """
    _check_act(act)
    return act == "gelu"


def act_forward(act: str, act_alpha: float, x: np.ndarray, out: np.ndarray) -> None:
    """out = act(x), elementwise; softmax normalises over the last axis.

    Args:
        act: canonical name, one of `ACTIVATIONS`.
        act_alpha: negative slope of leaky_relu, alpha of elu; ignored by the others.
        x: any shape.
        out: same shape as x; may be x itself (in place).
    """
    _kernels.act_fwd(x, out, act=_act_id(act), act_alpha=act_alpha)


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
    act_id = _act_id(act)
    _kernels.act_bwd(y, dy, out, act=act_id, act_alpha=act_alpha,
                     preact=preact if act == "gelu" else None)


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
    act_id = _act_id(act)
    if act != "softmax" and preact_out is None:  # act(x @ kernel + bias) in the GEMM epilogue
        _kernels.gemm(x, kernel, out, bias=bias, act=act_id, act_alpha=act_alpha)
        return
    z = out if preact_out is None else preact_out
    _kernels.gemm(x, kernel, z, bias=bias)
    _kernels.act_fwd(z, out, act=act_id, act_alpha=act_alpha)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, trans_a: bool = False,
           trans_b: bool = False) -> None:
    """out = op(a) @ op(b), op = transpose when trans_* is set. Overwrites out.

    Dense backward uses it as dW = matmul(x, dz, trans_a=True), (in_dim, units), and
    dX = matmul(dz, kernel, trans_b=True), (batch, in_dim). out must not overlap a or b.
    """
    _kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)


def bias_grad(dy: np.ndarray, out: np.ndarray) -> None:
    """out = dy.sum(axis=0): (batch, units) -> (units,), in a fixed summation order."""
    _kernels.bias_grad(dy, out)


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
    want = np.int64 if sparse else np.float32
    if labels.dtype != want:  # (batch,) or (batch, classes): a cheap, rare conversion
        labels = np.ascontiguousarray(labels, dtype=want)
    return _kernels.softmax_xent(logits, labels, grad_out)


def sigmoid_bce(logits: np.ndarray, labels: np.ndarray, grad_out: np.ndarray) -> float:
    """Fused sigmoid + binary cross-entropy on logits; returns the mean over all elements.

    loss = mean(max(z, 0) - z*y + log1p(exp(-|z|))); grad_out = (sigmoid(z) - y) / z.size.
    logits, labels and grad_out share one shape (batch, units); grad_out overlaps neither.
    """
    return _kernels.sigmoid_bce(logits, labels, grad_out)


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
    momentum = momentum if velocity is not None else 0.0  # no slot: Keras's plain rule
    _kernels.sgd_update(param, grad, velocity, lr=lr, momentum=momentum, nesterov=nesterov)


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
                beta_1: float, beta_2: float, epsilon: float, step: int) -> None:
    """Keras 3 Adam, in place; step counts from 1.

    alpha = lr * sqrt(1 - beta_2^step) / (1 - beta_1^step); m += (g - m)(1 - beta_1);
    v += (g^2 - v)(1 - beta_2); w -= alpha * m / (sqrt(v) + epsilon). Scalars in float32.
    """
    _kernels.adam_update(param, grad, m, v, lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         step=int(step))


def rmsprop_update(param: np.ndarray, grad: np.ndarray, ms: np.ndarray, mom: np.ndarray | None,
                   lr: float, rho: float, momentum: float, epsilon: float) -> None:
    """Keras 3 RMSprop (centered=False), in place; mom is None when momentum == 0.

    ms = rho*ms + (1 - rho)*g^2; inc = lr*g / sqrt(ms + epsilon) (epsilon inside the root);
    momentum > 0: mom = momentum*mom + inc, w -= mom; else w -= inc.
    """
    _kernels.rmsprop_update(param, grad, ms, mom, lr=lr, rho=rho,
                            momentum=momentum if mom is not None else 0.0, epsilon=epsilon)


def sgd_gemm_update(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool,
                    param: np.ndarray, velocity: np.ndarray | None, lr: float, momentum: float,
                    nesterov: bool) -> None:
    """`sgd_update` with grad = op(a) @ op(b), never stored: each finished tile of the GEMM
    updates its part of param at once (a dense layer's dW = x^T dz, trans_a=True)."""
    momentum = momentum if velocity is not None else 0.0
    _kernels.gemm_sgd_update(a, b, param, velocity, trans_a=trans_a, trans_b=trans_b, lr=lr,
                             momentum=momentum, nesterov=nesterov)


def adam_gemm_update(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool,
                     param: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, beta_1: float,
                     beta_2: float, epsilon: float, step: int) -> None:
    """`adam_update` with grad = op(a) @ op(b), never stored (see sgd_gemm_update)."""
    _kernels.gemm_adam_update(a, b, param, m, v, trans_a=trans_a, trans_b=trans_b, lr=lr,
                              beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, step=int(step))


def rmsprop_gemm_update(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool,
                        param: np.ndarray, ms: np.ndarray, mom: np.ndarray | None, lr: float,
                        rho: float, momentum: float, epsilon: float) -> None:
    """`rmsprop_update` with grad = op(a) @ op(b), never stored (see sgd_gemm_update)."""
    _kernels.gemm_rmsprop_update(a, b, param, ms, mom, trans_a=trans_a, trans_b=trans_b, lr=lr,
                                 rho=rho, momentum=momentum if mom is not None else 0.0,
                                 epsilon=epsilon)


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
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    _kernels.dropout_fwd(x, mask_out, out, rate=rate, seed=seed)

def dropout_backward(dy: np.ndarray, mask: np.ndarray, rate: float, out: np.ndarray) -> None:
    """out = dy * mask / (1 - rate), the gradient of `dropout_forward`. out must not overlap dy."""
    _kernels.dropout_bwd(dy, mask, out, rate=rate)


# ---- convolution and pooling (NHWC activations, HWIO kernels; fastnn/layers/convolutional.py)
# `geom` is a dict of the strict kernels' keyword arguments: strides, padding, dilation (conv)
# or pool_size, strides, padding (pooling).


def conv2d_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, act: str,
                   act_alpha: float, out: np.ndarray, geom: dict,
                   preact_out: np.ndarray | None = None) -> None:
    """out = act(conv2d(x, kernel) + bias): x (batch, h, w, in_ch), kernel (kh, kw, in_ch,
    filters), out (batch, out_h, out_w, filters). preact_out, when given, also receives the
    pre-activation (gelu's backward, softmax). Bias and activation are fused in the kernel."""
    act_id = _act_id(act)
    if act != "softmax" and preact_out is None:
        _kernels.conv2d_fwd(x, kernel, bias, out, act=act_id, act_alpha=act_alpha, **geom)
        return
    z = out if preact_out is None else preact_out
    _kernels.conv2d_fwd(x, kernel, bias, z, **geom)
    _kernels.act_fwd(z, out, act=act_id, act_alpha=act_alpha)


def conv2d_backward(x: np.ndarray, kernel: np.ndarray, dz: np.ndarray, dkernel: np.ndarray,
                    dbias: np.ndarray | None, dx: np.ndarray | None, geom: dict) -> None:
    """Gradients of conv2d's pre-activation output z, given dz = dL/dz: overwrites dkernel,
    dbias (None: no bias) and dx (None: not needed, e.g. the first layer)."""
    _kernels.conv2d_bwd_filter(x, dz, kernel.shape[:2], dkernel, dbias, bias=dbias is not None,
                               **geom)
    if dx is not None:
        _kernels.conv2d_bwd_data(dz, kernel, x.shape, dx, **geom)


def max_pool2d_forward(x: np.ndarray, out: np.ndarray, argmax_out: np.ndarray,
                       geom: dict) -> None:
    """out = window maxima of x (NaN propagates); argmax_out (int32, shaped as out) receives
    each maximum's input pixel iy * w + ix for max_pool2d_backward."""
    _kernels.max_pool2d_fwd(x, out, argmax_out, **geom)


def max_pool2d_backward(dy: np.ndarray, argmax: np.ndarray, dx: np.ndarray, geom: dict) -> None:
    """dx = dy routed to each window's maximum (overwrites dx)."""
    _kernels.max_pool2d_bwd(dy, argmax, dx.shape, dx, **geom)


def avg_pool2d_forward(x: np.ndarray, out: np.ndarray, geom: dict) -> None:
    """out = window means of x (windows clipped to the image, as Keras 'same')."""
    _kernels.avg_pool2d_fwd(x, out, **geom)


def avg_pool2d_backward(dy: np.ndarray, dx: np.ndarray, geom: dict) -> None:
    """dx = dy spread evenly over each window (overwrites dx)."""
    _kernels.avg_pool2d_bwd(dy, dx.shape, dx, **geom)
