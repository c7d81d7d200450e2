"""Layers, as `keras.layers`. New layer families go in their own module here
(e.g. `convolutional.py`, `recurrent.py`) and derive from `fastnn.layers.Layer`."""

from fastnn.layers.base import Layer
from fastnn.layers.bidirectional import Bidirectional
from fastnn.layers.convolutional import Conv1D, Conv2D
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
from fastnn.layers.pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from fastnn.layers.recurrent import GRU, LSTM, SimpleRNN

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "Bidirectional",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "Layer",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "ReLU",
    "SimpleRNN",
    "Softmax",
]
