"""Functional forms of fastnn's kernels, for tests, benchmarks and users who want the ops
without layers. Lenient at the edge: they take any layout of a float32 array (copying once only
what the kernel cannot take) and refuse other dtypes with a TypeError.

Images are NHWC (batch, height, width, channels) and convolution kernels HWIO, as in Keras;
LSTM, GRU and SimpleRNN weights use Keras's layout (gate order i, f, c, o and z, r, h).
"""

from fastnn._kernels import matmul
from fastnn._ops_conv import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward_filter,
    conv2d_backward_input,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    global_max_pool2d,
    global_max_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from fastnn._ops_gru import GRUCache, GRUGrads, gru_backward, gru_forward
from fastnn._ops_lstm import (
    LSTMCache,
    LSTMGrads,
    SimpleRNNCache,
    SimpleRNNGrads,
    lstm_backward,
    lstm_forward,
    simple_rnn_backward,
    simple_rnn_forward,
)

__all__ = [
    "GRUCache",
    "GRUGrads",
    "LSTMCache",
    "LSTMGrads",
    "SimpleRNNCache",
    "SimpleRNNGrads",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "global_max_pool2d",
    "global_max_pool2d_backward",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "matmul",
    "max_pool2d",
    "max_pool2d_backward",
    "simple_rnn_backward",
    "simple_rnn_forward",
]
