"""Layers, as `keras.layers`. New layer families go in their own module here
(e.g. `convolutional.py`, `recurrent.py`) and derive from `fastnn.layers.Layer`."""

from fastnn.layers.base import Layer
from fastnn.layers.core import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    ReLU,
    Softmax,
)

__all__ = [
    "Activation",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "ReLU",
    "Softmax",
]
