"""Convolution and pooling functional forms (re-exported by fastnn.ops). Lenient at the edge:
they take any layout of a float32 array (copying once only what the kernel cannot take) and
refuse other dtypes.

Images are NHWC (batch, height, width, channels) and convolution kernels HWIO
(kernel_h, kernel_w, in_channels, filters), as in Keras. Integers or pairs are accepted for
strides, dilation_rate, pool_size and kernel_size; padding is 'valid' or 'same' (and
'causal' for convolutions).
"""

from __future__ import annotations

import numpy as np

from fastnn import _checks, _kernels, activations

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "global_max_pool2d",
    "global_max_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
]

_LAYOUT = {4: "(batch, height, width, channels)", 1: "(channels,)"}


def _f32(x, op: str, name: str, ndim: int | None = None) -> np.ndarray:
    """x as a C-contiguous float32 array (one copy at most); TypeError for other dtypes."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype != np.float32:
        raise TypeError(
            f"{op}: {name} must be float32, received {arr.dtype}; fastnn does not cast "
            f"silently, convert with {name}.astype(np.float32)"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(
            f"{op}: {name} must be {ndim}-D {_LAYOUT.get(ndim, '')}, received shape {arr.shape}"
        )
    return _checks.c_array(arr)


def _act_index(activation, op: str) -> tuple[int, float]:
    """(kernel code, alpha) of an activation name, with Keras's default alpha: elu 1.0,
    leaky_relu 0.2 (the kernels take alpha explicitly; 0 would make them relu)."""
    name = "linear" if activation is None else activation
    if not isinstance(name, str) or name not in _kernels.ACTIVATIONS[:7]:
        raise ValueError(
            f"{op}: activation must be None or one of {_kernels.ACTIVATIONS[:7]}, "
            f"received {activation!r}"
        )
    return _kernels.ACTIVATIONS.index(name), activations.resolve(name)[1]


def _shape4(shape, op: str) -> tuple:
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(
            f"{op}: input_shape must be (batch, height, width, channels), received {shape!r}"
        )
    return tuple(int(s) for s in shape)


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, activation=None):
    """2-D convolution (cross-correlation, as Keras) with fused bias and activation.

    Args:
        x: (batch, height, width, in_channels) float32.
        kernel: (kernel_h, kernel_w, in_channels, filters) float32.
        bias: None or (filters,) float32.
        strides, dilation_rate: int or pair; padding: 'valid', 'same' or 'causal'.
        activation: None or 'relu', 'sigmoid', 'tanh', 'gelu', 'elu', 'leaky_relu'.

    Returns:
        (batch, out_h, out_w, filters) float32.

    Raises:
        TypeError: an input is not float32.
        ValueError: shapes or arguments that cannot work (named in the message).
    """
    op = "conv2d"
    x = _f32(x, op, "x", 4)
    kernel = _f32(kernel, op, "kernel", 4)
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"{op}: kernel.shape[2] (in_channels) must equal x.shape[3]; received "
            f"x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    if bias is not None:
        bias = _f32(bias, op, "bias", 1)
        if bias.shape != (kernel.shape[3],):
            raise ValueError(
                f"{op}: bias must have shape ({kernel.shape[3]},), received {bias.shape}"
            )
    act, act_alpha = _act_index(activation, op)
    _kernels.conv2d_output_shape(
        x.shape,
        kernel.shape[:2],
        kernel.shape[3],
        strides=strides,
        padding=padding,
        dilation=dilation_rate,
    )
    return _kernels.conv2d_fwd(
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation=dilation_rate,
        act=act,
        act_alpha=act_alpha,
    )


def conv2d_backward_input(dy, kernel, input_shape, strides=1, padding="valid", dilation_rate=1):
    """Gradient of conv2d's pre-activation output with respect to x: (batch, h, w, in_ch).

    Args:
        dy: (batch, out_h, out_w, filters) float32, the gradient of the output.
        kernel: (kernel_h, kernel_w, in_channels, filters) float32.
        input_shape: the shape of x, (batch, height, width, in_channels).
    """
    op = "conv2d_backward_input"
    dy = _f32(dy, op, "dy", 4)
    kernel = _f32(kernel, op, "kernel", 4)
    input_shape = _shape4(input_shape, op)
    expected = _kernels.conv2d_output_shape(
        input_shape,
        kernel.shape[:2],
        kernel.shape[3],
        strides=strides,
        padding=padding,
        dilation=dilation_rate,
    )
    if input_shape[3] != kernel.shape[2] or dy.shape != expected:
        raise ValueError(
            f"{op}: dy must have shape {expected} and kernel.shape[2] must be input_shape[3]; "
            f"received dy.shape={dy.shape}, kernel.shape={kernel.shape}, "
            f"input_shape={input_shape}"
        )
    return _kernels.conv2d_bwd_data(
        dy, kernel, input_shape, strides=strides, padding=padding, dilation=dilation_rate
    )


def conv2d_backward_filter(
    x, dy, kernel_size, strides=1, padding="valid", dilation_rate=1, use_bias=True
):
    """Gradients of conv2d's pre-activation output with respect to the kernel and the bias.

    NaN and inf propagate; for 3x3 kernels at stride 1 (a Winograd transform) a non-finite
    value in input channel c or in dy's filter f makes every tap of dkernel[..., c, :] or
    dkernel[..., f] NaN, not only the taps that meet it.

    Returns:
        (dkernel (kernel_h, kernel_w, in_channels, filters), dbias (filters,) or None).
    """
    op = "conv2d_backward_filter"
    x = _f32(x, op, "x", 4)
    dy = _f32(dy, op, "dy", 4)
    expected = _kernels.conv2d_output_shape(
        x.shape,
        kernel_size,
        dy.shape[3],
        strides=strides,
        padding=padding,
        dilation=dilation_rate,
    )
    if dy.shape != expected:
        raise ValueError(
            f"{op}: dy must have shape {expected} for x.shape={x.shape} and "
            f"kernel_size={kernel_size!r}, received {dy.shape}"
        )
    return _kernels.conv2d_bwd_filter(
        x,
        dy,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation=dilation_rate,
        bias=use_bias,
    )


def _pool_args(x, op, pool_size, strides, padding):
    x = _f32(x, op, "x", 4)
    if padding not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be 'valid' or 'same', received {padding!r}")
    _kernels.pool2d_output_shape(x.shape, pool_size, strides, padding)
    return x


def max_pool2d(x, pool_size=2, strides=None, padding="valid", return_indices=False):
    """Max pooling over windows of x (batch, height, width, channels); strides default to
    pool_size. NaN propagates. With return_indices, also the int32 argmax (iy * width + ix of
    the input pixel, per output element) that max_pool2d_backward takes."""
    op = "max_pool2d"
    x = _pool_args(x, op, pool_size, strides, padding)
    y, idx = _kernels.max_pool2d_fwd(
        x, pool_size=pool_size, strides=strides, padding=padding, indices=return_indices
    )
    return (y, idx) if return_indices else y


def max_pool2d_backward(x, dy, pool_size=2, strides=None, padding="valid", indices=None):
    """Gradient of max_pool2d with respect to x: each dy goes to its window's maximum.
    indices (from max_pool2d(..., return_indices=True)) avoids recomputing the argmax."""
    op = "max_pool2d_backward"
    x = _pool_args(x, op, pool_size, strides, padding)
    dy = _f32(dy, op, "dy", 4)
    if indices is None:
        _, indices = _kernels.max_pool2d_fwd(
            x, pool_size=pool_size, strides=strides, padding=padding
        )
    elif not isinstance(indices, np.ndarray) or indices.dtype != np.int32:
        raise TypeError(f"{op}: indices must be the int32 array max_pool2d returned")
    else:
        indices = _checks.c_array(indices, np.int32)
    return _kernels.max_pool2d_bwd(
        dy, indices, x.shape, pool_size=pool_size, strides=strides, padding=padding
    )


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Average pooling; with 'same' padding, windows average the pixels inside the image."""
    x = _pool_args(x, "avg_pool2d", pool_size, strides, padding)
    return _kernels.avg_pool2d_fwd(x, pool_size=pool_size, strides=strides, padding=padding)


def avg_pool2d_backward(dy, input_shape, pool_size=2, strides=None, padding="valid"):
    """Gradient of avg_pool2d with respect to its input, of shape input_shape."""
    op = "avg_pool2d_backward"
    dy = _f32(dy, op, "dy", 4)
    input_shape = _shape4(input_shape, op)
    return _kernels.avg_pool2d_bwd(
        dy, input_shape, pool_size=pool_size, strides=strides, padding=padding
    )


def _global_window(shape, op):
    if shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"{op}: x must have height and width >= 1, received shape {shape}")
    return (shape[1], shape[2])


def global_avg_pool2d(x):
    """Mean over height and width: (batch, h, w, c) -> (batch, c)."""
    x = _f32(x, "global_avg_pool2d", "x", 4)
    y = _kernels.avg_pool2d_fwd(x, pool_size=_global_window(x.shape, "global_avg_pool2d"))
    return y.reshape(x.shape[0], x.shape[3])


def global_avg_pool2d_backward(dy, input_shape):
    """Gradient of global_avg_pool2d: dy (batch, c) spread evenly over input_shape."""
    op = "global_avg_pool2d_backward"
    input_shape = _shape4(input_shape, op)
    dy = _f32(dy, op, "dy", 2)
    if dy.shape != (input_shape[0], input_shape[3]):
        raise ValueError(
            f"{op}: dy must have shape {(input_shape[0], input_shape[3])}, received {dy.shape}"
        )
    return _kernels.avg_pool2d_bwd(
        dy.reshape(dy.shape[0], 1, 1, dy.shape[1]),
        input_shape,
        pool_size=_global_window(input_shape, op),
    )


def global_max_pool2d(x, return_indices=False):
    """Max over height and width: (batch, h, w, c) -> (batch, c) (and the argmax)."""
    x = _f32(x, "global_max_pool2d", "x", 4)
    y, idx = _kernels.max_pool2d_fwd(
        x, pool_size=_global_window(x.shape, "global_max_pool2d"), indices=return_indices
    )
    y = y.reshape(x.shape[0], x.shape[3])
    return (y, idx) if return_indices else y


def global_max_pool2d_backward(x, dy, indices=None):
    """Gradient of global_max_pool2d with respect to x (batch, h, w, c)."""
    op = "global_max_pool2d_backward"
    x = _f32(x, op, "x", 4)
    dy = _f32(dy, op, "dy", 2)
    if dy.shape != (x.shape[0], x.shape[3]):
        raise ValueError(
            f"{op}: dy must have shape {(x.shape[0], x.shape[3])}, received {dy.shape}"
        )
    window = _global_window(x.shape, op)
    return max_pool2d_backward(
        x, dy.reshape(dy.shape[0], 1, 1, dy.shape[1]), pool_size=window, indices=indices
    )
