"""The Layer base class every fastnn layer derives from.

Lifecycle (after `keras-team/keras: keras/src/layers/core/dense.py`):
- `__init__(...)` validates and stores hyperparameters only.
- `build(input_shape)` creates weights with `add_weight`; `input_shape` includes the batch
  dimension as None, e.g. (None, 64) or (None, 28, 28, 1). The model calls it once.
- `call(x, training=False)` runs the forward pass on a float32 C-contiguous batch and caches
  what backward needs. It may return one of the layer's own buffers (or a view of x): the
  result stays valid until the layer's next call, and the caller must not write to it.
- `backward(grad_out)` takes dL/d(output) (shape of the last output), overwrites `self.grads`
  (aligned with `self.weights`) and returns dL/d(input), or None when `input_grad_needed` is
  False (the model clears it on its first layer, which skips computing dX).
- Fused updates (optional): a layer may take a callable in `self.fused_updates[i]` (set by the
  model for weight i, None otherwise); backward then hands weight i's gradient to it as GEMM
  operands instead of writing `self.grads[i]`, which never needs to exist (Dense: dW = x^T dz
  goes straight into the optimizer step, see `Optimizer.fused_update`). It must call it after
  everything that reads weight i's old value.
- `compute_output_shape(input_shape)` infers shapes without data.
- `get_config()` returns exactly the constructor arguments; `from_config(cfg)` is `cls(**cfg)`.

Loss fusion protocol (optional): a layer whose last operation is an activation sets
`output_activation` to its canonical name. When the model fuses that activation with the loss
(softmax + categorical cross-entropy, sigmoid + binary cross-entropy), it sets `keep_logits`;
`call` must then keep the pre-activation in `self.logits` (2-D, (rows, units)), and the model
calls `backward_logits(dL/dlogits)` instead of `backward`.

Buffers: `self._buffer(key, shape)` returns an array reused across batches of one shape, so
training allocates nothing large per batch. Weights and their gradients are float32 arrays that
are updated in place and never rebound, so optimizer slots keyed by position stay valid. A
gradient buffer is allocated on first use (`grad_buffer(i)`, or `grads`, which allocates all).
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np

from fastnn import _checks, initializers, regularizers

_REGISTRY: dict[str, type] = {}  # class name -> Layer subclass defined inside fastnn
_NAME_COUNTS: dict[str, int] = {}
_MAX_BUFFER_SHAPES = 4  # per key: full batch, last partial batch, validation, predict


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """'dense', then 'dense_1', 'dense_2', ... as Keras names layers."""
    count = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def normalize_shape(owner: str, name: str, shape) -> tuple:
    """A shape (without batch) as a tuple of positive ints or None."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{owner}: {name} must be a tuple of ints, received {name}={shape!r}")
    for dim in shape:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))
                                or dim < 1):
            raise ValueError(f"{owner}: {name} must hold positive ints or None, "
                             f"received {name}={tuple(shape)!r}")
    return tuple(None if dim is None else int(dim) for dim in shape)


class BufferCache:
    """Arrays reused across calls with the same shape; keeps a few shapes per key.

    Each thread gets its own arrays: Python threads may run forward passes of one shared model
    at once (the kernels release the GIL), and a buffer shared between them would hand one
    thread's activations to another. A copied or pickled cache starts empty.
    """

    def __init__(self):
        self._local = threading.local()

    def __reduce__(self):
        return (BufferCache, ())

    def get(self, key: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        """An uninitialised array of `shape`/`dtype` owned by this cache under `key`, for
        the calling thread."""
        shape = tuple(shape)
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
        entries = cache.setdefault(key, {})
        buf = entries.get(shape)
        if buf is None or buf.dtype != dtype:
            if len(entries) >= _MAX_BUFFER_SHAPES:
                entries.pop(next(iter(entries)))
            buf = entries[shape] = np.empty(shape, dtype=dtype)
        return buf


def get_layer_class(class_name: str, custom_objects: dict | None = None) -> type:
    """The Layer subclass registered under `class_name` (or found in custom_objects)."""
    if custom_objects and class_name in custom_objects:
        return custom_objects[class_name]
    if class_name not in _REGISTRY:
        raise ValueError(f"Unknown layer class {class_name!r}; known: {sorted(_REGISTRY)} "
                         f"(pass custom_objects={{'{class_name}': cls}} for your own layers)")
    return _REGISTRY[class_name]


class Layer:
    """Base class of all layers; see the module docstring for the contract."""

    output_activation: str | None = None
    fusable_weights: tuple = ()  # indices of weights whose backward honours fused_updates

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("fastnn.") and not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None,
                 input_shape=None, input_dim: int | None = None, batch_input_shape=None,
                 **kwargs):
        owner = type(self).__name__
        if kwargs:
            raise TypeError(f"{owner}: unexpected keyword argument(s) {sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{owner}: only float32 is supported, received dtype={dtype!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{owner}: name must be a string, received {name!r}")
        self.name = name or unique_name(_snake_case(owner))
        self.trainable = bool(trainable)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        elif input_dim is not None:
            input_shape = (_checks.integer(owner, "input_dim", input_dim, low=1),)
        self._declared_input_shape = (None if input_shape is None
                                      else normalize_shape(owner, "input_shape", input_shape))
        self.built = False
        self._build_shape: tuple | None = None
        self._params: list[np.ndarray] = []
        self._param_names: list[str] = []
        self._regularizers: list = []
        self._grads: list[np.ndarray | None] = []
        self.fused_updates: list = []
        self.input_grad_needed = True
        self.keep_logits = False
        self.logits: np.ndarray | None = None
        self._buffers = BufferCache()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"

    # ---- lifecycle -------------------------------------------------------------------------

    def build(self, input_shape: tuple) -> None:
        """Create the layer's weights for `input_shape` (batch dim None). Default: none."""

    def build_for(self, input_shape: tuple) -> None:
        """Build once for `input_shape`; afterwards only check that shapes agree."""
        input_shape = tuple(input_shape)
        if self.built:
            self.check_input_shape(input_shape)
            return
        self.build(input_shape)
        self._build_shape = (None,) + input_shape[1:]
        self.built = True

    def call(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Forward pass on a float32 C-contiguous batch (see the module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement call()")

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        """Fill `self.grads` and return dL/d(input), or None if `input_grad_needed` is False."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def backward_logits(self, grad_logits: np.ndarray) -> np.ndarray | None:
        """Like backward, starting from dL/d(pre-activation); see the fusion protocol."""
        raise NotImplementedError(f"{type(self).__name__} cannot fuse its output activation")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Output shape for an input shape (batch dim included). Default: unchanged."""
        return tuple(input_shape)

    def check_input_shape(self, shape: tuple) -> None:
        """Raise ValueError if a batch of `shape` does not fit the built layer.

        Default: same rank and the same non-batch dims as at build time (None matches any).
        """
        expected = self._build_shape
        if expected is None:
            return
        ok = len(shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected[1:], shape[1:]))
        if not ok:
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: expected input shape "
                             f"{expected}, received shape {tuple(shape)}")

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """Apply the layer to an array (float32 conversion at this edge); returns a copy."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim < 1:
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: expected a batch "
                             f"with a leading batch dimension, received shape {x.shape}")
        x = _checks.c_array(x)
        if self.built:
            self.check_input_shape(x.shape)
        else:
            self.build_for((None,) + x.shape[1:])
        return np.array(self.call(x, training=training))

    @property
    def sublayers(self) -> list[Layer]:
        """The layers this layer wraps, whose weights make up its own in this order
        (Bidirectional: the forward, then the backward layer); empty for a plain layer."""
        return []

    # ---- weights ---------------------------------------------------------------------------

    def add_weight(self, shape: tuple, initializer="glorot_uniform", regularizer=None,
                   name: str | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Create a float32 weight and its gradient buffer; returns the weight array.

        Args:
            shape: weight shape, e.g. (in_dim, units).
            initializer: name, dict or `fastnn.initializers.Initializer`.
            regularizer: None, name or `fastnn.regularizers.Regularizer`.
            name: for summaries and error messages.
            rng: Generator to draw from; default, a new child of the seed root.
        """
        value = initializers.get(initializer)(shape, rng=rng)
        self._params.append(value)
        self._param_names.append(name or f"weight_{len(self._params) - 1}")
        self._regularizers.append(regularizers.get(regularizer))
        self._grads.append(None)
        self.fused_updates.append(None)
        return value

    def grad_buffer(self, i: int) -> np.ndarray:
        """Weight i's gradient buffer (zeros when first created, then whatever backward wrote)."""
        grad = self._grads[i]
        if grad is None:
            grad = self._grads[i] = np.zeros_like(self._params[i])
        return grad

    @property
    def grads(self) -> list[np.ndarray]:
        """Every weight's gradient buffer, in weight order (allocating those not yet used)."""
        return [self.grad_buffer(i) for i in range(len(self._params))]

    @grads.setter
    def grads(self, value) -> None:
        """A layer of one's own may also assign its gradient arrays, one per weight."""
        value = list(value)
        if [np.shape(g) for g in value] != [p.shape for p in self._params]:
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: grads must be one "
                             f"array per weight, of shapes {[p.shape for p in self._params]}, "
                             f"received shapes {[np.shape(g) for g in value]}")
        self._grads = value

    @property
    def weights(self) -> list[np.ndarray]:
        """The layer's weight arrays (live, not copies), in Keras order."""
        return list(self._params)

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return list(self._params) if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        return [] if self.trainable else list(self._params)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights, in Keras order (Dense: kernel (in, units), bias (units,))."""
        return [w.copy() for w in self._params]

    def set_weights(self, weights) -> None:
        """Copy `weights` (a list in `get_weights` order and shapes) into the layer, in place."""
        weights = list(weights)
        expected = [w.shape for w in self._params]
        received = [np.shape(w) for w in weights]
        if expected != received:
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: set_weights expected "
                             f"{len(expected)} arrays of shapes {expected}, received "
                             f"{len(received)} arrays of shapes {received}")
        for param, value in zip(self._params, weights):
            np.copyto(param, np.asarray(value, dtype=np.float32))

    def count_params(self) -> int:
        return int(sum(w.size for w in self._params))

    def regularization_penalty(self, with_grads: bool = False) -> float:
        """Sum of the weights' regularizer penalties; with_grads adds their gradients into
        `self.grads` (call it after `backward`)."""
        total = 0.0
        for i, (param, reg) in enumerate(zip(self._params, self._regularizers)):
            if reg is not None:
                total += (reg.penalty_and_grad(param, self.grad_buffer(i)) if with_grads
                          else reg(param))
        return total

    # ---- buffers and config ----------------------------------------------------------------

    def _buffer(self, key: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        """A scratch/output array of `shape`, reused by later calls with the same shape."""
        return self._buffers.get(key, shape, dtype)

    def get_config(self) -> dict:
        """Constructor arguments; subclasses extend it with their own."""
        config = {"name": self.name, "trainable": self.trainable}
        if self._declared_input_shape is not None:
            config["input_shape"] = list(self._declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)


def flat_size(shape: tuple) -> int | None:
    """Product of the dims of `shape`, or None if any is unknown."""
    return None if any(d is None for d in shape) else math.prod(shape)
