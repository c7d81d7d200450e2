"""Weight regularizers L1, L2, L1L2, as `keras.regularizers`.

A regularizer's penalty is added to the training loss (and to the reported loss, as Keras does)
and its gradient to the weight's gradient before the optimizer step.
"""

from __future__ import annotations

import numpy as np

from fastnn import _backend, _checks


class Regularizer:
    """Base class: penalty(w) = l1 * sum|w| + l2 * sum w^2 (subclasses fix l1/l2)."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x) -> float:
        """The penalty of a weight array."""
        return _backend.l1l2_penalty(_checks.c_array(x, np.float32), self.l1, self.l2)

    def penalty_and_grad(self, param: np.ndarray, grad: np.ndarray) -> float:
        """Returns the penalty of `param` and adds its gradient into `grad` (same shape)."""
        return _backend.l1l2_penalty(param, self.l1, self.l2, grad_out=grad)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config")

    @classmethod
    def from_config(cls, config: dict) -> Regularizer:
        return cls(**config)


class L1L2(Regularizer):
    """l1 * sum|w| + l2 * sum w^2 (Keras defaults l1=0, l2=0)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _checks.real("L1L2", "l1", l1, low=0.0)
        self.l2 = _checks.real("L1L2", "l2", l2, low=0.0)

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """l1 * sum|w| (Keras default l1=0.01)."""

    def __init__(self, l1: float = 0.01):
        self.l1 = _checks.real("L1", "l1", l1, low=0.0)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    """l2 * sum w^2 (Keras default l2=0.01)."""

    def __init__(self, l2: float = 0.01):
        self.l2 = _checks.real("L2", "l2", l2, low=0.0)

    def get_config(self) -> dict:
        return {"l2": self.l2}


_NAMES = {"l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2}
_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2)}


def get(identifier) -> Regularizer | None:
    """A regularizer from None, a name ('l1', 'l2', 'l1l2'), a config dict or an instance.

    Raises:
        ValueError: unknown name or class.
        TypeError: any other type.
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown regularizer {identifier!r}; expected one of "
                             f"{sorted(_NAMES)}, a Regularizer instance or None")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown regularizer class {identifier.get('class_name')!r}; "
                             f"expected one of {sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    raise TypeError(f"regularizer must be a string, a dict, a Regularizer or None, "
                    f"received {type(identifier).__name__}")


def serialize(regularizer: Regularizer | None) -> dict | None:
    """The config dict stored for a regularizer (None stays None)."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
