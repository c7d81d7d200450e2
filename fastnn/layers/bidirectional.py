"""Bidirectional: a recurrent layer run over the sequence both ways, Keras 3's wrapper.

The wrapper holds two recurrent layers, `forward_layer` and `backward_layer`, whose go_backwards
differ; each runs as one kernel call forward and one backward through time. The backward
layer's output sequence comes out in the order it ran (last input step first), so with
return_sequences it is reversed in time before the merge: step t of both halves then refers to
input step t. Without return_sequences the two last outputs are merged.

Weights are the forward layer's, then the backward layer's: the same arrays (`weights` lists
them, `set_weights` and optimizers update them in place), with the inner layers' gradient
buffers. Backward routes the merged gradient to both layers (the backward layer's part reversed
in time again) and sums their input gradients.
"""

from __future__ import annotations

import copy

import numpy as np

from fastnn import _checks
from fastnn.layers.base import Layer, get_layer_class
from fastnn.layers.recurrent import _Recurrent

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _renamed_copy(layer: _Recurrent, prefix: str, **changes) -> _Recurrent:
    """A fresh layer from `layer`'s config (no weights, no state) named prefix + its name."""
    name = prefix + layer.name.removeprefix(prefix)
    return type(layer).from_config({**layer.get_config(), "name": name, **changes})


def _serialize(layer: Layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


class Bidirectional(Layer):
    """Bidirectional wrapper for the recurrent layers (LSTM, GRU, SimpleRNN), as Keras 3's.

    (batch, time, features) -> the forward and backward outputs merged by merge_mode:
    'concat' (last axis: (batch, [time,] units_f + units_b)), 'sum', 'mul', 'ave' (elementwise,
    both layers' units equal) or None ([forward output, backward output]). With return_state,
    calling the wrapper directly returns [output(s), *forward states, *backward states] and
    takes initial_state as [*forward states, *backward states]; in a Sequential only the
    merged output flows on.

    Args:
        layer: the recurrent layer to wrap. As in Keras, the wrapper runs a fresh copy of it
            from its config, named forward_<name>; `layer`'s own weights are not used.
        merge_mode: one of 'concat', 'sum', 'mul', 'ave', None.
        weights: optional initial weights, the forward layer's then the backward layer's
            (halves of the list), set when the wrapper is built.
        backward_layer: the layer to run backwards, used as it is; it must have the opposite
            go_backwards and the same return_sequences and return_state as `layer`. Default:
            a copy of `layer` named backward_<name> with go_backwards flipped (Keras 3 sets
            it to True, which only differs for a `layer` with go_backwards=True, where Keras
            raises).

    Raises:
        ValueError: layer or backward_layer is not a fastnn recurrent layer, an unknown
            merge_mode, mismatched layers, or differing units under an elementwise merge.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        # ValueError for a wrong layer type, as Keras raises.
        for arg, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and not isinstance(value, _Recurrent):
                raise ValueError(f"Bidirectional: {arg} must be a recurrent layer (LSTM, GRU "
                                 f"or SimpleRNN), received {arg}={value!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {list(_MERGE_MODES)}, "
                             f"received merge_mode={merge_mode!r}")
        forward = _renamed_copy(layer, "forward_")
        if backward_layer is None:
            backward_layer = _renamed_copy(layer, "backward_", go_backwards=not layer.go_backwards)
        _check_pair(forward, backward_layer, merge_mode)
        self.forward_layer, self.backward_layer = forward, backward_layer
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs.setdefault("input_shape", layer._declared_input_shape)
        super().__init__(**kwargs)  # sets trainable, which reaches both layers
        self.merge_mode = merge_mode
        self.return_sequences = forward.return_sequences
        self.return_state = forward.return_state
        self._initial_weights = list(weights) if weights is not None and len(weights) else None
        self._saved = None

    @property
    def sublayers(self) -> list[Layer]:
        return [self.forward_layer, self.backward_layer]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        for layer in self.sublayers:
            layer.trainable = self._trainable

    @property
    def states(self) -> list | None:
        """The final states of the last call: the forward layer's, then the backward's."""
        if self.forward_layer.states is None or self.backward_layer.states is None:
            return None
        return self.forward_layer.states + self.backward_layer.states

    def build(self, input_shape):
        for layer in self.sublayers:
            layer.build_for(input_shape)
        if self._initial_weights is not None:
            half = len(self._initial_weights) // 2
            self.forward_layer.set_weights(self._initial_weights[:half])
            self.backward_layer.set_weights(self._initial_weights[half:])
            self._initial_weights = None
        # The inner layers' arrays, shared (never copies): see the module docstring.
        self._params = [w for layer in self.sublayers for w in layer._params]
        self._param_names = [f"{layer.name}/{name}" for layer in self.sublayers
                             for name in layer._param_names]
        self._regularizers = [r for layer in self.sublayers for r in layer._regularizers]
        self._grads = [None] * len(self._params)
        self.fused_updates = [None] * len(self._params)

    def _owner(self, i: int) -> tuple[Layer, int]:
        forward_count = len(self.forward_layer.weights)
        if i < forward_count:
            return self.forward_layer, i
        return self.backward_layer, i - forward_count

    def grad_buffer(self, i: int) -> np.ndarray:
        """Weight i's gradient buffer: the inner layer's own, which its backward fills."""
        layer, j = self._owner(i)
        return layer.grad_buffer(j)

    def compute_output_shape(self, input_shape):
        forward = tuple(self.forward_layer.compute_output_shape(input_shape))
        backward = tuple(self.backward_layer.compute_output_shape(input_shape))
        if self.merge_mode is None:
            return [forward, backward]
        if self.merge_mode == "concat":
            return forward[:-1] + (forward[-1] + backward[-1],)
        return forward

    # ---- forward and backward ----------------------------------------------------------------

    def _run(self, x, training, forward_states, backward_states):
        """Both layers on x, then the merge; keeps what backward needs when training."""
        y = self.forward_layer._forward(x, training, forward_states)
        y_rev = self.backward_layer._forward(x, training, backward_states)
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        self._saved = (y, y_rev) if training else None
        if self.merge_mode is None:
            return [y, np.ascontiguousarray(y_rev)]
        units = y.shape[-1]
        shape = y.shape if self.merge_mode != "concat" else y.shape[:-1] + (
            units + y_rev.shape[-1],)
        out = self._buffer("out", shape)
        if self.merge_mode == "concat":
            out[..., :units] = y
            out[..., units:] = y_rev
        elif self.merge_mode == "mul":
            np.multiply(y, y_rev, out=out)
        else:
            np.add(y, y_rev, out=out)
            if self.merge_mode == "ave":
                out *= np.float32(0.5)
        return out

    def call(self, x, training=False):
        return self._run(x, training, self.forward_layer._initial_states(x, None),
                         self.backward_layer._initial_states(x, None))

    def backward(self, grad_out, *state_grads):
        """dL/d(output) (for merge_mode None, [dL/d(forward output), dL/d(backward output)];
        optionally followed by the gradients of the returned states, forward's then
        backward's) -> dL/d(input); fills the inner layers' gradients."""
        if self._saved is None:
            raise RuntimeError(f"Bidirectional layer {self.name!r}: backward needs a training "
                               f"forward first (call(x, training=True)); its buffers serve one "
                               f"backward")
        (y, y_rev), self._saved = self._saved, None
        if self.merge_mode is None:
            grad_forward, grad_backward = grad_out
        elif self.merge_mode == "concat":
            grad_forward, grad_backward = grad_out[..., :y.shape[-1]], grad_out[..., y.shape[-1]:]
        elif self.merge_mode == "mul":
            grad_forward, grad_backward = grad_out * y_rev, grad_out * y
        elif self.merge_mode == "sum":
            grad_forward = grad_backward = grad_out
        else:
            grad_forward = grad_backward = grad_out * np.float32(0.5)
        if self.return_sequences:
            grad_backward = grad_backward[:, ::-1]
        split = len(self.forward_layer.state_names)
        dx = None
        for layer, grad, states in ((self.forward_layer, grad_forward, state_grads[:split]),
                                    (self.backward_layer, grad_backward, state_grads[split:])):
            layer.input_grad_needed = self.input_grad_needed
            part = layer.backward(grad, *states)
            dx = part if dx is None else np.add(dx, part, out=dx)
        return dx

    def __call__(self, x, training: bool = False, initial_state=None):
        """Apply the wrapper to a batch; initial_state: [*forward states, *backward states].
        Returns a copy of the output ([forward, backward] with merge_mode None), followed by
        copies of the final states with return_state."""
        x = _checks.c_array(np.asarray(x, dtype=np.float32))
        if self.built:
            self.check_input_shape(x.shape)
        else:
            self.build_for((None,) + x.shape[1:])
        forward_states = backward_states = None
        if initial_state is not None:
            initial_state = list(initial_state)
            split = len(self.forward_layer.state_names)
            expected = split + len(self.backward_layer.state_names)
            if len(initial_state) != expected:
                raise ValueError(f"Bidirectional layer {self.name!r}: initial_state must hold "
                                 f"{expected} arrays (the forward layer's states, then the "
                                 f"backward layer's), received {len(initial_state)}")
            forward_states, backward_states = initial_state[:split], initial_state[split:]
        out = self._run(x, training,
                        self.forward_layer._initial_states(x, forward_states),
                        self.backward_layer._initial_states(x, backward_states))
        out = [np.array(o) for o in out] if self.merge_mode is None else [np.array(out)]
        if self.return_state:
            out += [s.copy() for s in self.states]
        return out[0] if len(out) == 1 else out

    # ---- config ------------------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        if self._declared_input_shape == self.forward_layer._declared_input_shape:
            config.pop("input_shape", None)  # the inner layer's config carries it
        return {**config, "layer": _serialize(self.forward_layer), "merge_mode": self.merge_mode,
                "backward_layer": _serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Bidirectional:
        config = copy.deepcopy(config)
        for key in ("layer", "backward_layer"):
            entry = config.get(key)
            if entry is not None:
                layer_cls = get_layer_class(entry["class_name"], custom_objects)
                config[key] = layer_cls.from_config(entry["config"])
        return cls(**config)


def _check_pair(forward: _Recurrent, backward: _Recurrent, merge_mode) -> None:
    """Keras 3's checks on the two layers, plus equal units for an elementwise merge."""
    if forward.go_backwards == backward.go_backwards:
        raise ValueError(f"Bidirectional: the forward and backward layers must have different "
                         f"go_backwards, received forward_layer.go_backwards="
                         f"{forward.go_backwards} and backward_layer.go_backwards="
                         f"{backward.go_backwards}")
    for attr in ("return_sequences", "return_state"):
        if getattr(forward, attr) != getattr(backward, attr):
            raise ValueError(f"Bidirectional: the forward and backward layers must have the "
                             f"same {attr}, received {getattr(forward, attr)} for the forward "
                             f"layer and {getattr(backward, attr)} for the backward layer")
    if merge_mode not in ("concat", None) and forward.units != backward.units:
        raise ValueError(f"Bidirectional: merge_mode={merge_mode!r} merges elementwise, so the "
                         f"forward and backward layers need the same units, received "
                         f"{forward.units} and {backward.units}")
