"""Weight initializers, as `keras.initializers`, drawing from an explicit np.random.Generator.

`init(shape, rng=generator)` returns a float32 array. With `seed=` set, every call draws from a
fresh `Generator(PCG64(seed))` (so it repeats, as Keras's integer seeds do); otherwise from the
`rng` given by the layer, or from a new child of the seed root (`fastnn.utils.set_random_seed`).
"""

from __future__ import annotations

import math

import numpy as np

from fastnn import _checks, _random

# Std of a standard normal truncated to [-2, 2]; Keras divides by it so the truncated draw
# keeps the requested variance.
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape: Dense (in, out); conv kernels (..., in, out)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    receptive = math.prod(shape[:-2])
    return int(shape[-2] * receptive), int(shape[-1] * receptive)


class Initializer:
    """Base class. Subclasses implement `_draw(shape, rng)` and `get_config()`."""

    seed = None

    def __call__(self, shape, dtype=None, rng: np.random.Generator | None = None) -> np.ndarray:
        """A new float32 array of `shape` (dtype may only be None or float32)."""
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: only float32 is supported, "
                             f"received dtype={dtype!r}")
        shape = tuple(int(d) for d in shape)
        if self.seed is not None or rng is None:
            rng = _random.generator_from_seed(self.seed)
        return np.ascontiguousarray(self._draw(shape, rng), dtype=np.float32)

    def _draw(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement _draw")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        return cls(**config)


def _check_seed(owner: str, seed) -> int | None:
    return None if seed is None else _checks.integer(owner, "seed", seed, low=0)


class Zeros(Initializer):
    """All zeros."""

    def _draw(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    def _draw(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    """All elements equal to `value`."""

    def __init__(self, value: float = 0.0):
        self.value = _checks.real("Constant", "value", value)

    def _draw(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


def _truncated_normal(shape, mean, stddev, rng):
    """Normal draws with values beyond two standard deviations re-drawn, as Keras."""
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return mean + stddev * values


class RandomNormal(Initializer):
    """Normal(mean, stddev); Keras defaults mean=0, stddev=0.05."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean = _checks.real("RandomNormal", "mean", mean)
        self.stddev = _checks.real("RandomNormal", "stddev", stddev, low=0.0)
        self.seed = _check_seed("RandomNormal", seed)

    def _draw(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Normal(mean, stddev) with draws beyond 2 stddev re-drawn."""

    def _draw(self, shape, rng):
        return _truncated_normal(shape, self.mean, self.stddev, rng)


class RandomUniform(Initializer):
    """Uniform(minval, maxval); Keras defaults -0.05, 0.05."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval = _checks.real("RandomUniform", "minval", minval)
        self.maxval = _checks.real("RandomUniform", "maxval", maxval, low=self.minval)
        self.seed = _check_seed("RandomUniform", seed)

    def _draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Variance scale / n with n = fan_in, fan_out or their mean (mode).

    truncated_normal: stddev sqrt(scale/n) / 0.8796 truncated at 2 stddev; untruncated_normal:
    stddev sqrt(scale/n); uniform: U(-limit, limit) with limit = sqrt(3 scale / n).
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        owner = type(self).__name__
        self.scale = _checks.real(owner, "scale", scale, low=0.0, low_open=True)
        self.mode = _checks.one_of(owner, "mode", mode, ("fan_in", "fan_out", "fan_avg"))
        distribution = "truncated_normal" if distribution == "normal" else distribution
        self.distribution = _checks.one_of(owner, "distribution", distribution,
                                           ("truncated_normal", "untruncated_normal", "uniform"))
        self.seed = _check_seed(owner, seed)

    def _draw(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        scale = self.scale / max(1.0, fan[self.mode])
        if self.distribution == "truncated_normal":
            return _truncated_normal(shape, 0.0, math.sqrt(scale) / _TRUNCATED_STD, rng)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed arguments; its config is only the seed."""

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(_Preset):
    """Truncated normal, stddev sqrt(2 / (fan_in + fan_out))."""

    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(_Preset):
    """U(-limit, limit), limit = sqrt(6 / fan_in)."""

    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(_Preset):
    """Truncated normal, stddev sqrt(2 / fan_in)."""

    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class LecunUniform(_Preset):
    """U(-limit, limit), limit = sqrt(3 / fan_in)."""

    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_in", "uniform", seed)


class LecunNormal(_Preset):
    """Truncated normal, stddev sqrt(1 / fan_in)."""

    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


class Orthogonal(Initializer):
    """gain * Q from the QR decomposition of a normal matrix (rows = prod(shape[:-1])),
    with Q's columns sign-fixed by diag(R); transposed when rows < cols."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain = _checks.real("Orthogonal", "gain", gain)
        self.seed = _check_seed("Orthogonal", seed)

    def _draw(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape to initialize must have rank >= 2, "
                             f"received shape={shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


_NAMES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "random_uniform": RandomUniform,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
}
_CLASSES = {cls.__name__: cls for cls in _NAMES.values()}


def get(identifier) -> Initializer:
    """An initializer from a name ('glorot_uniform', ...), a config dict or an instance.

    Raises:
        ValueError: unknown name or class.
        TypeError: any other type.
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown initializer {identifier!r}; expected one of "
                             f"{sorted(_NAMES)} or an Initializer instance")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown initializer class {identifier.get('class_name')!r}; "
                             f"expected one of {sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    raise TypeError(f"initializer must be a string, a dict or an Initializer, "
                    f"received {type(identifier).__name__}")


def serialize(initializer: Initializer) -> dict:
    """The config dict stored for an initializer."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
