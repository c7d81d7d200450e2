"""Optimizers by name and class with Keras 3's update rules: SGD, Adam, RMSprop.

`build(params)` creates per-parameter slots; `apply(params, grads)` updates every parameter in
place through one fused `fastnn._backend` call each (sgd_update, adam_update, rmsprop_update).
`fused_update(i, param, a, b)` updates parameter i with the gradient op(a) @ op(b) inside the
GEMM that computes it (the gradient is never stored); a training step calls it from a layer's
backward for some parameters and then `apply(params, grads, skip=those)` for the rest, so
`iterations` counts the step once.
`learning_rate` may be reassigned between steps (ReduceLROnPlateau does so).
"""

from __future__ import annotations

import numpy as np

from fastnn import _backend, _checks


def _owner(cls: type, name: str) -> type:
    """The class in cls's MRO that defines attribute `name`."""
    return next(klass for klass in cls.__mro__ if name in vars(klass))


class Optimizer:
    """Base class: slots, iteration count, learning rate, config."""

    def __init__(self, learning_rate: float, name: str):
        self.name = name
        self.learning_rate = learning_rate
        self.iterations = 0
        self.built = False
        self._slots: list[tuple] = []

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = _checks.real(type(self).__name__, "learning_rate", value,
                                           low=0.0)

    def _make_slots(self, param: np.ndarray) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} does not implement _make_slots")

    def _update(self, param: np.ndarray, grad: np.ndarray, slots: tuple) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    def _gemm_update(self, param: np.ndarray, a: np.ndarray, b: np.ndarray, trans_a: bool,
                     trans_b: bool, slots: tuple) -> None:
        """`_update` with grad = op(a) @ op(b); optional (see `supports_fused_update`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _gemm_update")

    @property
    def supports_fused_update(self) -> bool:
        """Whether `fused_update` applies this optimizer's own rule: its class defines
        `_gemm_update` no higher in the hierarchy than `_update`, and keeps the base `apply`
        (a subclass that changes `_update` or `apply` alone gets `apply` for everything)."""
        gemm_owner = _owner(type(self), "_gemm_update")
        return (gemm_owner is not Optimizer
                and issubclass(gemm_owner, _owner(type(self), "_update"))
                and _owner(type(self), "apply") is Optimizer)

    def build(self, params: list[np.ndarray]) -> None:
        """Create zero-initialised slots for each parameter (once)."""
        self._slots = [self._make_slots(p) for p in params]
        self._shapes = [p.shape for p in params]
        self.built = True

    def apply(self, params: list[np.ndarray], grads: list[np.ndarray | None],
              skip=()) -> None:
        """One update step of every parameter, in place; the indices in `skip` were already
        updated by `fused_update` in this step (their grads entries are ignored)."""
        if not self.built:
            self.build(params)
        shapes = [p.shape for p in params]
        if shapes != self._shapes or len(grads) != len(params):
            raise ValueError(f"{type(self).__name__}: built for parameters of shapes "
                             f"{self._shapes}, received {shapes} with {len(grads)} gradients")
        for i, (param, grad, slots) in enumerate(zip(params, grads, self._slots)):
            if i not in skip:
                self._update(param, grad, slots)
        self.iterations += 1

    def fused_update(self, index: int, param: np.ndarray, a: np.ndarray, b: np.ndarray,
                     trans_a: bool = False, trans_b: bool = False) -> None:
        """This step's update of parameter `index` (of the built list) with the gradient
        op(a) @ op(b), computed and applied tile by tile; `apply(..., skip=...)` must follow
        in the same step (it counts the step)."""
        if not self.built or not 0 <= index < len(self._shapes) \
                or param.shape != self._shapes[index]:
            raise ValueError(f"{type(self).__name__}: fused_update of parameter {index} with "
                             f"shape {param.shape}; built for shapes "
                             f"{getattr(self, '_shapes', None)}")
        self._gemm_update(param, a, b, trans_a, trans_b, self._slots[index])

    def apply_gradients(self, grads_and_vars) -> None:
        """Keras-style `apply_gradients([(grad, param), ...])`."""
        pairs = list(grads_and_vars)
        self.apply([p for _, p in pairs], [g for g, _ in pairs])

    def get_state(self) -> list[np.ndarray]:
        """Copies of all slot arrays, in parameter order (for saving)."""
        return [s.copy() for slots in self._slots for s in slots if s is not None]

    def set_state(self, arrays: list[np.ndarray], iterations: int) -> None:
        """Restore `get_state` arrays into the built slots, in place."""
        targets = [s for slots in self._slots for s in slots if s is not None]
        if [t.shape for t in targets] != [np.shape(a) for a in arrays]:
            raise ValueError(f"{type(self).__name__}: optimizer state holds "
                             f"{[np.shape(a) for a in arrays]}, expected "
                             f"{[t.shape for t in targets]}")
        for target, value in zip(targets, arrays):
            np.copyto(target, value)
        self.iterations = int(iterations)

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        return cls(**config)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum; Keras 3's rule:

    momentum == 0: w -= lr * g.  Else v = momentum * v - lr * g and w += v,
    or with nesterov w += momentum * v - lr * g.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str = "SGD"):
        super().__init__(learning_rate, name)
        self.momentum = _checks.real("SGD", "momentum", momentum, low=0.0, high=1.0)
        self.nesterov = bool(nesterov)

    def _make_slots(self, param):
        return (np.zeros_like(param) if self.momentum != 0.0 else None,)

    def _update(self, param, grad, slots):
        _backend.sgd_update(param, grad, slots[0], self.learning_rate, self.momentum,
                            self.nesterov)

    def _gemm_update(self, param, a, b, trans_a, trans_b, slots):
        _backend.sgd_gemm_update(a, b, trans_a, trans_b, param, slots[0], self.learning_rate,
                                 self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam; Keras 3's rule, with step t counted from 1:

    alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t); m += (g - m)(1 - beta_1);
    v += (g^2 - v)(1 - beta_2); w -= alpha m / (sqrt(v) + epsilon).
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "adam"):
        super().__init__(learning_rate, name)
        self.beta_1 = _checks.real("Adam", "beta_1", beta_1, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _checks.real("Adam", "beta_2", beta_2, low=0.0, high=1.0, high_open=True)
        self.epsilon = _checks.real("Adam", "epsilon", epsilon, low=0.0)
        if amsgrad:
            raise NotImplementedError("Adam: amsgrad=True is not supported yet, "
                                      "received amsgrad=True")
        self.amsgrad = False

    def _make_slots(self, param):
        return np.zeros_like(param), np.zeros_like(param)

    def _update(self, param, grad, slots):
        _backend.adam_update(param, grad, slots[0], slots[1], self.learning_rate, self.beta_1,
                             self.beta_2, self.epsilon, self.iterations + 1)

    def _gemm_update(self, param, a, b, trans_a, trans_b, slots):
        _backend.adam_gemm_update(a, b, trans_a, trans_b, param, slots[0], slots[1],
                                  self.learning_rate, self.beta_1, self.beta_2, self.epsilon,
                                  self.iterations + 1)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """RMSprop (uncentered); Keras 3's rule:

    ms = rho ms + (1 - rho) g^2; inc = lr g / sqrt(ms + epsilon);
    momentum > 0: mom = momentum mom + inc, w -= mom; else w -= inc.
    """

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "rmsprop"):
        super().__init__(learning_rate, name)
        self.rho = _checks.real("RMSprop", "rho", rho, low=0.0, high=1.0)
        self.momentum = _checks.real("RMSprop", "momentum", momentum, low=0.0, high=1.0)
        self.epsilon = _checks.real("RMSprop", "epsilon", epsilon, low=0.0)
        if centered:
            raise NotImplementedError("RMSprop: centered=True is not supported yet, "
                                      "received centered=True")
        self.centered = False

    def _make_slots(self, param):
        return np.zeros_like(param), (np.zeros_like(param) if self.momentum > 0.0 else None)

    def _update(self, param, grad, slots):
        _backend.rmsprop_update(param, grad, slots[0], slots[1], self.learning_rate, self.rho,
                                self.momentum, self.epsilon)

    def _gemm_update(self, param, a, b, trans_a, trans_b, slots):
        _backend.rmsprop_gemm_update(a, b, trans_a, trans_b, param, slots[0], slots[1],
                                     self.learning_rate, self.rho, self.momentum, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier) -> Optimizer:
    """An optimizer from a name ('sgd', 'adam', 'rmsprop'; Keras defaults), a config dict or
    an instance.

    Raises:
        ValueError: unknown name or class.
        TypeError: any other type.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)} or a fastnn.optimizers.Optimizer instance")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown optimizer class {identifier.get('class_name')!r}; "
                             f"expected one of {sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    raise TypeError(f"optimizer must be a string, a dict or an Optimizer, "
                    f"received {type(identifier).__name__}")


def serialize(optimizer: Optimizer) -> dict:
    """The config dict stored for an optimizer."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
