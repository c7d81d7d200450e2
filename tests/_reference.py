"""Float64 NumPy references, written plainly; they never call fastnn."""

import math

import numpy as np

# erfc, not 1 + erf: for negative x, 1 + erf(x) cancels to 0 long before Phi(x) does
# (gelu(-9) = -1.0e-18, not -0). math.erfc: scipy is not a test dependency.
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def activation(name, x, alpha=0.0):
    x = np.asarray(x, dtype=np.float64)
    if name == "linear":
        return x.copy()
    if name == "relu":
        return np.where(x > 0, x, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if name == "elu":
        return np.where(x > 0, x, alpha * (np.exp(x) - 1.0))
    if name == "gelu":
        return 0.5 * x * _erfc(-x / math.sqrt(2.0))
    raise ValueError(name)


def dense(x, kernel, bias, act, alpha=0.0):
    z = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    if bias is not None:
        z = z + bias
    return activation(act, z, alpha)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def categorical_xent(labels_onehot, logits=None, probs=None):
    """Mean loss; Keras's probability path renormalises and clips to [1e-7, 1 - 1e-7]."""
    y = np.asarray(labels_onehot, np.float64)
    if logits is not None:
        return float(np.mean(-(y * log_softmax(logits)).sum(axis=-1)))
    p = np.asarray(probs, np.float64)
    p = np.clip(p / p.sum(axis=-1, keepdims=True), 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(p)).sum(axis=-1)))


def binary_xent(labels, logits=None, probs=None):
    y = np.asarray(labels, np.float64)
    if logits is not None:
        z = np.asarray(logits, np.float64)
        return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
    p = np.clip(np.asarray(probs, np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def onehot(labels, classes):
    out = np.zeros((len(labels), classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def numerical_grad(f, x, eps=1e-6):
    """Central finite differences of a scalar function f at float64 x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(x)
        x[idx] = old - eps
        minus = f(x)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


class KerasSGD:
    def __init__(self, lr, momentum=0.0, nesterov=False):
        self.lr, self.momentum, self.nesterov, self.v = lr, momentum, nesterov, None

    def step(self, w, g):
        if self.momentum == 0:
            return w - self.lr * g
        self.v = np.zeros_like(w) if self.v is None else self.v
        self.v = self.momentum * self.v - self.lr * g
        if self.nesterov:
            return w + self.momentum * self.v - self.lr * g
        return w + self.v


class KerasAdam:
    def __init__(self, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, epsilon
        self.m = self.v = None
        self.t = 0

    def step(self, w, g):
        self.m = np.zeros_like(w) if self.m is None else self.m
        self.v = np.zeros_like(w) if self.v is None else self.v
        self.t += 1
        alpha = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        self.m = self.m + (g - self.m) * (1 - self.b1)
        self.v = self.v + (g * g - self.v) * (1 - self.b2)
        return w - alpha * self.m / (np.sqrt(self.v) + self.eps)


class KerasRMSprop:
    def __init__(self, lr, rho=0.9, momentum=0.0, epsilon=1e-7):
        self.lr, self.rho, self.momentum, self.eps = lr, rho, momentum, epsilon
        self.ms = self.mom = None

    def step(self, w, g):
        self.ms = np.zeros_like(w) if self.ms is None else self.ms
        self.ms = self.rho * self.ms + (1 - self.rho) * g * g
        inc = self.lr * g / np.sqrt(self.ms + self.eps)
        if self.momentum > 0:
            self.mom = np.zeros_like(w) if self.mom is None else self.mom
            self.mom = self.momentum * self.mom + inc
            return w - self.mom
        return w - inc
