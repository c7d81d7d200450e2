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
from fastnn.layers.embedding import Embedding
from fastnn.layers.recurrent import LSTM

__all__ = [
    "LSTM",
    "Activation",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "ReLU",
    "Softmax",
]
