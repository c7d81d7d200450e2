"""Functional forms of fastnn's kernels, for tests, benchmarks and users who want the ops
without layers. Lenient at the edge: they take any layout of a float32 array (copying once only
what the kernel cannot take) and refuse other dtypes with a TypeError.

Images are NHWC (batch, height, width, channels) and convolution kernels HWIO, as in Keras;
LSTM and SimpleRNN weights use Keras's layout (LSTM gate order i, f, c, o).
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
    "lstm_backward",
    "lstm_forward",
    "matmul",
    "max_pool2d",
    "max_pool2d_backward",
    "simple_rnn_backward",
    "simple_rnn_forward",
]
