"""Activation functions by name and by function, as `keras.activations`.

Each function applies one activation to an array (converted to float32) through the kernel
boundary `fastnn._backend`. Layers do not call these functions: they resolve an identifier to a
canonical name and a slope/alpha with `resolve()` and call the fused kernels directly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fastnn import _backend

# Keras 3 defaults: activations.leaky_relu(negative_slope=0.2), activations.elu(alpha=1.0).
_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}


def _apply(act: str, alpha: float, x) -> np.ndarray:
    x = np.array(x, dtype=np.float32, order="C")  # always a fresh array: computed in place
    _backend.act_forward(act, alpha, x, x)
    return x


def linear(x) -> np.ndarray:
    """Identity: returns x as float32."""
    return _apply("linear", 0.0, x)


def relu(x) -> np.ndarray:
    """max(x, 0)."""
    return _apply("relu", 0.0, x)


def sigmoid(x) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return _apply("sigmoid", 0.0, x)


def tanh(x) -> np.ndarray:
    """Hyperbolic tangent."""
    return _apply("tanh", 0.0, x)


def softmax(x, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) over the last axis (the only axis supported)."""
    if axis != -1:
        raise ValueError(f"softmax: only axis=-1 is supported, received axis={axis}")
    return _apply("softmax", 0.0, x)


def leaky_relu(x, negative_slope: float = 0.2) -> np.ndarray:
    """x for x > 0, negative_slope * x otherwise."""
    return _apply("leaky_relu", float(negative_slope), x)


def elu(x, alpha: float = 1.0) -> np.ndarray:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return _apply("elu", float(alpha), x)


def gelu(x, approximate: bool = False) -> np.ndarray:
    """x * Phi(x) with the exact Gaussian CDF (Keras's default, approximate=False)."""
    if approximate:
        raise ValueError("gelu: approximate=True (the tanh form) is not supported; "
                         "received approximate=True")
    return _apply("gelu", 0.0, x)


_FUNCTIONS: dict[Callable, str] = {
    linear: "linear", relu: "relu", sigmoid: "sigmoid", tanh: "tanh", softmax: "softmax",
    leaky_relu: "leaky_relu", elu: "elu", gelu: "gelu",
}


def resolve(identifier) -> tuple[str, float]:
    """Canonical kernel name and alpha of an activation given by name, function or None.

    Raises:
        ValueError: unknown name or a function that is not one of `fastnn.activations`.
        TypeError: neither None, a string nor a callable.
    """
    if identifier is None:
        return "linear", 0.0
    if isinstance(identifier, str):
        name = identifier.lower()
        if name not in _backend.ACTIVATIONS:
            raise ValueError(f"Unknown activation {identifier!r}; expected one of "
                             f"{list(_backend.ACTIVATIONS)} or None")
        return name, _DEFAULT_ALPHA.get(name, 0.0)
    if callable(identifier):
        name = _FUNCTIONS.get(identifier)
        if name is None:
            raise ValueError(f"Unsupported activation function {identifier!r}: only the "
                             f"functions of fastnn.activations or their names are supported")
        return name, _DEFAULT_ALPHA.get(name, 0.0)
    raise TypeError(f"activation must be a string, a fastnn.activations function or None, "
                    f"received {type(identifier).__name__}")


def get(identifier) -> Callable:
    """The activation function for a name or function (None gives `linear`)."""
    name, _ = resolve(identifier)
    return globals()[name]


def serialize(identifier) -> str:
    """The name under which an activation is stored in configs."""
    return resolve(identifier)[0]
