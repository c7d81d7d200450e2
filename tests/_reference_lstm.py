"""Float64 NumPy reference of an LSTM over whole sequences (Keras layout, gates i, f, g, o),
written obviously: a Python loop over time steps, forward and backward through time. Used by
tests/test_lstm.py (kernels) and tests/test_layers_recurrent.py (layers)."""

import numpy as np


def _act(name, x):
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "relu":
        return np.maximum(x, 0.0)
    return x


def _dact(name, y):
    """Derivative of the activation from its output y."""
    if name == "tanh":
        return 1.0 - y * y
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "relu":
        return (y > 0).astype(np.float64)
    return np.ones_like(y)


def ref_lstm(
    x,
    kernel,
    rkernel,
    bias=None,
    h0=None,
    c0=None,
    act="tanh",
    ract="sigmoid",
    go_backwards=False,
    h_mask=None,
):
    """Forward in float64. Returns (y, h_last, c_last, steps) with per-step saved values.
    h_mask multiplies h_{t-1} where it meets the recurrent kernel (recurrent dropout)."""
    x, kernel, rkernel = (np.asarray(a, np.float64) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    b = np.zeros(4 * units) if bias is None else np.asarray(bias, np.float64)
    h = np.zeros((batch, units)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((batch, units)) if c0 is None else np.asarray(c0, np.float64)
    xs = x[:, ::-1] if go_backwards else x
    mask = np.ones((batch, units)) if h_mask is None else np.asarray(h_mask, np.float64)
    ys, steps = [], []
    for s in range(time):
        z = xs[:, s] @ kernel + b + (h * mask) @ rkernel
        zi, zf, zg, zo = np.split(z, 4, axis=1)
        i, f, g, o = _act(ract, zi), _act(ract, zf), _act(act, zg), _act(ract, zo)
        c_prev, h_prev = c, h
        c = f * c + i * g
        h = o * _act(act, c)
        steps.append((i, f, g, o, c_prev, c, h_prev * mask))
        ys.append(h)
    y = np.stack(ys, axis=1) if time else np.zeros((batch, 0, units))
    return y, h, c, steps


def ref_lstm_grads(
    x,
    kernel,
    rkernel,
    bias,
    h0,
    c0,
    dy,
    dh_last,
    dc_last,
    act="tanh",
    ract="sigmoid",
    go_backwards=False,
    h_mask=None,
):
    """Backward through time in float64: (dx, dkernel, drecurrent_kernel, dbias, dh0, dc0)."""
    _, _, _, steps = ref_lstm(x, kernel, rkernel, bias, h0, c0, act, ract, go_backwards, h_mask)
    x, kernel, rkernel = (np.asarray(a, np.float64) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    xs = x[:, ::-1] if go_backwards else x
    dkernel, drkernel = np.zeros_like(kernel), np.zeros_like(rkernel)
    dbias, dxs = np.zeros(4 * units), np.zeros_like(x)
    dh = np.zeros((batch, units)) if dh_last is None else np.asarray(dh_last, np.float64)
    dc = np.zeros((batch, units)) if dc_last is None else np.asarray(dc_last, np.float64)
    for s in reversed(range(time)):
        i, f, g, o, c_prev, c, h_prev = steps[s]
        if dy is not None:
            dh = dh + dy[:, s]
        tc = _act(act, c)
        dc = dc + dh * o * _dact(act, tc)
        dz = np.concatenate(
            [
                dc * g * _dact(ract, i),
                dc * c_prev * _dact(ract, f),
                dc * i * _dact(act, g),
                dh * tc * _dact(ract, o),
            ],
            axis=1,
        )
        dkernel += xs[:, s].T @ dz
        drkernel += h_prev.T @ dz
        dbias += dz.sum(axis=0)
        dxs[:, s] = dz @ kernel.T
        dh, dc = dz @ rkernel.T, dc * f
        if h_mask is not None:
            dh = dh * h_mask
    dx = dxs[:, ::-1] if go_backwards else dxs
    return dx, dkernel, drkernel, dbias, dh, dc
