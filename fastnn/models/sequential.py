"""Sequential: a stack of layers, its shapes, weights, summary, config and saving.

Training (compile/fit/evaluate/predict) lives in `fastnn.models.trainer.Trainer`.
"""

from __future__ import annotations

import contextlib
import operator

import numpy as np

from fastnn.layers.base import (
    BufferCache,
    Layer,
    get_layer_class,
    normalize_shape,
    unique_name,
)
from fastnn.layers.core import InputLayer
from fastnn.models.trainer import Trainer


def _format_size(num_bytes: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            break
        num_bytes /= 1024.0
    return f"{num_bytes:.2f} {unit}"


def _as_shape(shape) -> tuple:
    try:
        return tuple(operator.index(d) for d in shape)
    except TypeError:
        return tuple(shape)


@contextlib.contextmanager
def expect_weight_shapes(layers: list[Layer], shapes: list[tuple] | None):
    """While active, each of `layers` checks every weight it creates with `add_weight` against
    `shapes` (the shapes of all the model's weights, in `get_weights` order) BEFORE allocating
    it. load_model and load_weights pass the shapes of the arrays a file holds, so a crafted
    config (Dense(units=3 * 10**8)) cannot make them allocate more than the file holds.
    `shapes=None` checks nothing. A wrapper's `sublayers` (Bidirectional's forward and backward
    layers) are checked in its place, since they create the weights it holds.

    Raises:
        ValueError: a layer would create a weight of another shape than the one at its
            position, or one more weight than `shapes` lists; the message names the layer.
    """
    if shapes is None:
        yield
        return
    shapes = [_as_shape(s) for s in shapes]
    layers = [leaf for layer in layers for leaf in (layer.sublayers or [layer])]

    def checked(position: int, layer: Layer):
        create = layer.add_weight

        def add_weight(shape, *args, **kwargs):
            # Counted from the weights that exist, so a layer making some weights by other
            # means still lines up with get_weights order.
            index = sum(len(prev.weights) for prev in layers[:position]) + len(layer.weights)
            requested = _as_shape(shape)
            what = (f"layer {layer.name!r} ({type(layer).__name__}) would create its weight "
                    f"{kwargs.get('name') or index!r} of shape {requested}")
            if index >= len(shapes):
                raise ValueError(f"{what}, but the weights to load hold only {len(shapes)} "
                                 f"arrays")
            if requested != shapes[index]:
                raise ValueError(f"{what}, but the weights to load have shape "
                                 f"{shapes[index]} there (weight {index} of {len(shapes)})")
            return create(shape, *args, **kwargs)

        return add_weight

    for position, layer in enumerate(layers):
        layer.add_weight = checked(position, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.add_weight


class Sequential(Trainer):
    """A linear stack of layers: `Sequential([Input((64,)), Dense(10)])` or `.add(...)`.

    With an input shape (an `Input`/`InputLayer` first, or `input_shape=` on the first layer)
    the model builds its weights as layers are added; otherwise on its first batch.
    """

    def __init__(self, layers=None, trainable: bool = True, name: str | None = None):
        super().__init__()
        self.name = name or unique_name("sequential")
        self._layers: list[Layer] = []
        self._input_shape: tuple | None = None  # without the batch dimension
        self._output_shape: tuple | None = None  # with the batch dimension (None)
        self.built = False
        self._buffers = BufferCache()
        self._trainable = bool(trainable)
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)
        if not trainable:
            self.trainable = False

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, layers={len(self._layers)}, built={self.built}>"

    # ---- structure -------------------------------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        """The model's layers (InputLayer excluded, as in Keras)."""
        return list(self._layers)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = self._trainable
        self._plan = None

    def add(self, layer: Layer) -> None:
        """Append a layer (or declare the input with an `Input`/`InputLayer` first)."""
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError(f"Sequential.add: an InputLayer must be the first and only "
                                 f"input declaration, received {layer.name!r} after "
                                 f"{len(self._layers)} layer(s)")
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a fastnn.layers.Layer, received "
                            f"{type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"Sequential.add: all layers need unique names; the model already "
                             f"has a layer named {layer.name!r}")
        if not self._layers and self._input_shape is None:
            self._input_shape = layer._declared_input_shape
        self._layers.append(layer)
        self._plan = None
        if self._input_shape is not None:
            try:
                self.build((None,) + self._input_shape)
            except Exception:
                self._layers.pop()
                raise

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise IndexError("Sequential.pop: the model has no layers")
        layer = self._layers.pop()
        self._plan = None
        if self.built:
            self.build((None,) + self._input_shape)
        return layer

    def build(self, input_shape=None) -> None:
        """Build every layer for `input_shape` (batch dimension included, e.g. (None, 64))."""
        if input_shape is None:
            if self._input_shape is None:
                raise ValueError("Sequential.build: the input shape is unknown; pass "
                                 "input_shape=(None, features), use Input(shape=...) or fit "
                                 "on data")
            input_shape = (None,) + self._input_shape
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
            raise ValueError(f"Sequential.build: input_shape must be a tuple with a batch "
                             f"dimension, e.g. (None, 64), received {input_shape!r}")
        shape = (None,) + normalize_shape("Sequential.build", "input_shape",
                                          tuple(input_shape)[1:])
        self._input_shape = shape[1:]
        for layer in self._layers:
            layer.build_for(shape)
            shape = tuple(layer.compute_output_shape(shape))
        self._output_shape = shape
        self.built = bool(self._layers)
        self._plan = None

    @property
    def input_shape(self) -> tuple:
        if self._input_shape is None:
            raise AttributeError("Sequential: the input shape is not known yet")
        return (None,) + self._input_shape

    @property
    def output_shape(self) -> tuple:
        if not self.built:
            raise AttributeError("Sequential: the model is not built yet")
        return self._output_shape

    def _ensure_built(self, x_shape: tuple, where: str) -> None:
        if not self._layers:
            raise ValueError(f"{where}: the model has no layers")
        if not self.built:
            self.build((None,) + tuple(x_shape[1:]))

    def _check_x(self, x: np.ndarray, where: str) -> None:
        expected = (None,) + self._input_shape
        ok = x.ndim == len(expected) and all(
            e is None or e == s for e, s in zip(expected[1:], x.shape[1:]))
        if not ok:
            raise ValueError(f"{where}: expected x of shape {expected} (the model's input "
                             f"shape), received x of shape {x.shape}")

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        for layer in self._layers:
            x = layer.call(x, training=training)
        return x

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """Forward pass on one batch (a copy of the output), as `model(x)` in Keras."""
        x = self._as_x(x, "Sequential.__call__")
        self._ensure_built(x.shape, "Sequential.__call__")
        self._check_x(x, "Sequential.__call__")
        self._prepare_plan()
        return np.array(self._forward(x, training=training))

    # ---- weights ---------------------------------------------------------------------------

    @property
    def weights(self) -> list[np.ndarray]:
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return [w for layer in self._layers for w in layer.trainable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weights, layer by layer in Keras order."""
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Set all weights from a list in `get_weights` order and shapes (copied in place)."""
        weights = list(weights)
        expected = [w.shape for w in self.weights]
        received = [np.shape(w) for w in weights]
        if expected != received:
            raise ValueError(f"Sequential.set_weights: expected {len(expected)} arrays of "
                             f"shapes {expected}, received {len(received)} arrays of shapes "
                             f"{received}")
        start = 0
        for layer in self._layers:
            count = len(layer.weights)
            layer.set_weights(weights[start:start + count])
            start += count

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self._layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index."""
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"Sequential.get_layer: no layer named {name!r}; layers: "
                         f"{[layer.name for layer in self._layers]}")

    # ---- summary and config ----------------------------------------------------------------

    def summary(self, line_length: int | None = None, print_fn=None) -> None:
        """Print each layer's name, type, output shape and parameter count, and totals."""
        if not self.built:
            raise ValueError("Sequential.summary: the model has not been built yet; build it "
                             "with build(), an Input(shape=...) or by calling it on data")
        width = max(65, line_length or 0)
        cols = (int(width * 0.45), int(width * 0.8))
        print_fn = print_fn or print

        def row(a, b, c):
            # at least one space between columns, however long a layer's name
            return (f" {a}".ljust(cols[0] - 1) + " " + str(b).ljust(cols[1] - cols[0] - 1)
                    + " " + str(c))

        lines = [f'Model: "{self.name}"', "_" * width,
                 row("Layer (type)", "Output Shape", "Param #"), "=" * width]
        shape = (None,) + self._input_shape
        for i, layer in enumerate(self._layers):
            shape = tuple(layer.compute_output_shape(shape))
            lines.append(row(f"{layer.name} ({type(layer).__name__})", shape,
                             f"{layer.count_params():,}"))
            lines.append("=" * width if i == len(self._layers) - 1 else "_" * width)
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        for label, count in (("Total", total), ("Trainable", trainable),
                             ("Non-trainable", total - trainable)):
            lines.append(f" {label} params: {count:,} ({_format_size(4 * count)})")
        lines.append("_" * width)
        for line in lines:
            print_fn(line)

    def get_config(self) -> dict:
        """{'name', 'trainable', 'layers': [{'class_name', 'config'}...], 'build_input_shape'}."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self._layers],
            "build_input_shape": (None if self._input_shape is None
                                  else [None, *self._input_shape]),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None, *,
                    weight_shapes: list[tuple] | None = None) -> Sequential:
        """Rebuild an (untrained) model from `get_config()`; weights are freshly initialised.

        Args:
            weight_shapes: if given, the shapes the weights must have (`get_weights` order),
                checked before each weight is allocated; see `expect_weight_shapes`.
        """
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        layers = [get_layer_class(entry["class_name"], custom_objects).from_config(
            entry["config"]) for entry in config["layers"]]
        with expect_weight_shapes(layers, weight_shapes):
            for layer in layers:
                model.add(layer)
            shape = config.get("build_input_shape")
            if shape is not None and not model.built and model._layers:
                model.build(tuple(shape))
        return model

    # ---- saving ----------------------------------------------------------------------------

    def save(self, filepath, overwrite: bool = True) -> None:
        """Save architecture, weights, compile arguments and optimizer state to one file."""
        from fastnn import saving
        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite: bool = True) -> None:
        """Save only the weights to one file."""
        from fastnn import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath) -> None:
        """Load weights saved by `save_weights` (or `save`) into this model."""
        from fastnn import saving
        saving.load_weights(self, filepath)
