"""Float64 NumPy reference of an LSTM over whole sequences (Keras layout, gates i, f, g, o),
written obviously: a Python loop over time steps, forward and backward through time. Used by
tests/test_lstm.py (kernels) and tests/test_layers_recurrent.py (layers).

dtype=np.float32 runs the same algorithm in float32: its distance from the float64 result
measures how sensitive a problem is to float32 rounding (the fuzz bounds use it: gradients
through many linear or relu steps can lose most of float32's digits in any implementation)."""

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
        return (y > 0).astype(y.dtype)
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
    dtype=np.float64,
):
    """Forward in float64 (or dtype). Returns (y, h_last, c_last, steps) with per-step saved values.
    h_mask multiplies h_{t-1} where it meets the recurrent kernel (recurrent dropout)."""
    x, kernel, rkernel = (np.asarray(a, dtype) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    b = np.zeros(4 * units, dtype) if bias is None else np.asarray(bias, dtype)
    h = np.zeros((batch, units), dtype) if h0 is None else np.asarray(h0, dtype)
    c = np.zeros((batch, units), dtype) if c0 is None else np.asarray(c0, dtype)
    xs = x[:, ::-1] if go_backwards else x
    mask = np.ones((batch, units), dtype) if h_mask is None else np.asarray(h_mask, dtype)
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
    y = np.stack(ys, axis=1) if time else np.zeros((batch, 0, units), dtype)
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
    dtype=np.float64,
):
    """Backward through time in float64 (or dtype): (dx, dkernel, drecurrent_kernel, dbias,
    dh0, dc0)."""
    _, _, _, steps = ref_lstm(x, kernel, rkernel, bias, h0, c0, act, ract, go_backwards, h_mask,
                              dtype)
    x, kernel, rkernel = (np.asarray(a, dtype) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    xs = x[:, ::-1] if go_backwards else x
    dkernel, drkernel = np.zeros_like(kernel), np.zeros_like(rkernel)
    dbias, dxs = np.zeros(4 * units, dtype), np.zeros_like(x)
    dy = None if dy is None else np.asarray(dy, dtype)
    dh = np.zeros((batch, units), dtype) if dh_last is None else np.asarray(dh_last, dtype)
    dc = np.zeros((batch, units), dtype) if dc_last is None else np.asarray(dc_last, dtype)
    h_mask = None if h_mask is None else np.asarray(h_mask, dtype)
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


def ref_simple_rnn(
    x,
    kernel,
    rkernel,
    bias=None,
    h0=None,
    act="tanh",
    go_backwards=False,
    h_mask=None,
    dtype=np.float64,
):
    """SimpleRNN forward in float64 (or dtype): h_t = act(x_t @ kernel + bias + (h_{t-1} *
    h_mask) @ rkernel). Returns (y, h_last)."""
    x, kernel, rkernel = (np.asarray(a, dtype) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    b = np.zeros(units, dtype) if bias is None else np.asarray(bias, dtype)
    h = np.zeros((batch, units), dtype) if h0 is None else np.asarray(h0, dtype)
    mask = np.ones((batch, units), dtype) if h_mask is None else np.asarray(h_mask, dtype)
    xs = x[:, ::-1] if go_backwards else x
    ys = []
    for s in range(time):
        h = _act(act, xs[:, s] @ kernel + b + (h * mask) @ rkernel)
        ys.append(h)
    y = np.stack(ys, axis=1) if time else np.zeros((batch, 0, units), dtype)
    return y, h


def ref_simple_rnn_grads(
    x,
    kernel,
    rkernel,
    bias,
    h0,
    dy,
    dh_last,
    act="tanh",
    go_backwards=False,
    h_mask=None,
    dtype=np.float64,
):
    """SimpleRNN backward through time in float64: (dx, dkernel, drecurrent_kernel, dbias, dh0)."""
    y, _ = ref_simple_rnn(x, kernel, rkernel, bias, h0, act, go_backwards, h_mask, dtype)
    x, kernel, rkernel = (np.asarray(a, dtype) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    h0 = np.zeros((batch, units), dtype) if h0 is None else np.asarray(h0, dtype)
    mask = np.ones((batch, units), dtype) if h_mask is None else np.asarray(h_mask, dtype)
    xs = x[:, ::-1] if go_backwards else x
    dkernel, drkernel = np.zeros_like(kernel), np.zeros_like(rkernel)
    dbias, dxs = np.zeros(units, dtype), np.zeros_like(x)
    dh = np.zeros((batch, units), dtype) if dh_last is None else np.asarray(dh_last, dtype)
    for s in reversed(range(time)):
        if dy is not None:
            dh = dh + np.asarray(dy, dtype)[:, s]
        dz = dh * _dact(act, y[:, s])
        h_prev = (y[:, s - 1] if s > 0 else h0) * mask
        dkernel += xs[:, s].T @ dz
        drkernel += h_prev.T @ dz
        dbias += dz.sum(axis=0)
        dxs[:, s] = dz @ kernel.T
        dh = (dz @ rkernel.T) * mask
    dx = dxs[:, ::-1] if go_backwards else dxs
    return dx, dkernel, drkernel, dbias, dh


def ref_gru(
    x, kernel, rkernel, bias=None, h0=None, act="tanh", ract="sigmoid", go_backwards=False,
    h_mask=None, dtype=np.float64,
):
    """GRU forward (Keras, reset_after=True, gates z, r, h) in float64 (or dtype). bias is
    (2, 3*units): input bias, recurrent bias. Returns (y, h_last, steps)."""
    x, kernel, rkernel = (np.asarray(a, dtype) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    b = np.zeros((2, 3 * units), dtype) if bias is None else np.asarray(bias, dtype)
    h = np.zeros((batch, units), dtype) if h0 is None else np.asarray(h0, dtype)
    mask = np.ones((batch, units), dtype) if h_mask is None else np.asarray(h_mask, dtype)
    xs = x[:, ::-1] if go_backwards else x
    ys, steps = [], []
    for s in range(time):
        xz, xr, xh = np.split(xs[:, s] @ kernel + b[0], 3, axis=1)
        hz, hr, hn = np.split((h * mask) @ rkernel + b[1], 3, axis=1)
        z, r = _act(ract, xz + hz), _act(ract, xr + hr)
        hh = _act(act, xh + r * hn)
        steps.append((z, r, hh, hn, h, h * mask))
        h = z * h + (1 - z) * hh
        ys.append(h)
    y = np.stack(ys, axis=1) if time else np.zeros((batch, 0, units), dtype)
    return y, h, steps


def ref_gru_grads(
    x, kernel, rkernel, bias, h0, dy, dh_last, act="tanh", ract="sigmoid", go_backwards=False,
    h_mask=None, dtype=np.float64,
):
    """GRU backward through time in float64: (dx, dkernel, drecurrent_kernel, dbias (2,
    3*units), dh0)."""
    _, _, steps = ref_gru(x, kernel, rkernel, bias, h0, act, ract, go_backwards, h_mask, dtype)
    x, kernel, rkernel = (np.asarray(a, dtype) for a in (x, kernel, rkernel))
    batch, time, _ = x.shape
    units = rkernel.shape[0]
    mask = np.ones((batch, units), dtype) if h_mask is None else np.asarray(h_mask, dtype)
    xs = x[:, ::-1] if go_backwards else x
    dkernel, drkernel = np.zeros_like(kernel), np.zeros_like(rkernel)
    dbias, dxs = np.zeros((2, 3 * units), dtype), np.zeros_like(x)
    dh = np.zeros((batch, units), dtype) if dh_last is None else np.asarray(dh_last, dtype)
    for s in reversed(range(time)):
        z, r, hh, hn, h_prev, h_prev_masked = steps[s]
        if dy is not None:
            dh = dh + np.asarray(dy, dtype)[:, s]
        dhh = dh * (1 - z) * _dact(act, hh)
        dz = dh * (h_prev - hh) * _dact(ract, z)
        dr = dhh * hn * _dact(ract, r)
        dzx = np.concatenate([dz, dr, dhh], axis=1)
        dzh = np.concatenate([dz, dr, dhh * r], axis=1)
        dkernel += xs[:, s].T @ dzx
        drkernel += h_prev_masked.T @ dzh
        dbias += np.stack([dzx.sum(axis=0), dzh.sum(axis=0)])
        dxs[:, s] = dzx @ kernel.T
        dh = (dzh @ rkernel.T) * mask + dh * z
    dx = dxs[:, ::-1] if go_backwards else dxs
    return dx, dkernel, drkernel, dbias, dh
