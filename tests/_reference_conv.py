"""Float64 NumPy references for conv2d and 2-D pooling (NHWC input, HWIO conv weights, Keras
padding), written obviously: one einsum per filter tap, one loop over output windows. Used by
tests/test_conv2d.py and tests/test_pool2d.py (kernels), tests/test_layers_conv.py (layers) and
tests/test_fuzz_ops.py and tests/test_fuzz_layers.py (fuzzing)."""

import itertools

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_geometry(n, k, s, d, padding):
    """(out, pad_before, pad_after) as Keras / TF: 'same' puts the odd pad after."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        out, before = (n - eff) // s + 1, 0
    elif padding == "causal":
        out, before = -(-n // s), eff - 1
    else:
        out = -(-n // s)
        before = max((out - 1) * s + eff - n, 0) // 2
    after = max((out - 1) * s + eff - n - before, 0)
    return out, before, after


def ref_conv2d(x, w, b=None, strides=1, padding="valid", dilation=1, dy=None):
    """Forward in float64; with dy also (dx, dw, db) of sum(y * dy)."""
    (sh, sw), (dh, dw_) = pair(strides), pair(dilation)
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    oh, pt, pb = conv_geometry(h, kh, sh, dh, padding)
    ow, pl, pr = conv_geometry(wd, kw, sw, dw_, padding)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    y = np.zeros((n, oh, ow, c_out))
    dxp, dwt = np.zeros_like(xp), np.zeros_like(w)
    g = None if dy is None else dy.astype(np.float64)
    for i, j in itertools.product(range(kh), range(kw)):
        if oh == 0 or ow == 0:
            break
        rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
        cols = slice(j * dw_, j * dw_ + (ow - 1) * sw + 1, sw)
        y += np.einsum("nhwc,co->nhwo", xp[:, rows, cols], w[i, j])
        if g is not None:
            dxp[:, rows, cols] += np.einsum("nhwo,co->nhwc", g, w[i, j])
            dwt[i, j] = np.einsum("nhwc,nhwo->co", xp[:, rows, cols], g)
    if b is not None:
        y += b.astype(np.float64)
    if g is None:
        return y
    return y, dxp[:, pt : pt + h, pl : pl + wd], dwt, g.sum(axis=(0, 1, 2))


def pool_windows(n, k, s, padding):
    """[(lo, hi)] of every output, clipped to [0, n)."""
    if padding == "valid":
        out, pad = (n - k) // s + 1, 0
    else:
        out = -(-n // s)
        pad = max((out - 1) * s + k - n, 0) // 2
    return [(max(o * s - pad, 0), min(o * s - pad + k, n)) for o in range(out)]


def ref_pool(x, pool, strides, padding):
    """(max, argmax as iy * w + ix (first maximum, NaN wins), average) in float64."""
    kh, kw = pair(pool)
    sh, sw = pair(pool if strides is None else strides)
    n, h, w, c = x.shape
    rows, cols = pool_windows(h, kh, sh, padding), pool_windows(w, kw, sw, padding)
    ymax = np.zeros((n, len(rows), len(cols), c))
    yavg = np.zeros_like(ymax)
    arg = np.zeros(ymax.shape, np.int64)
    for (i, (y0, y1)), (j, (x0, x1)) in itertools.product(enumerate(rows), enumerate(cols)):
        win = x[:, y0:y1, x0:x1].astype(np.float64).reshape(n, (y1 - y0) * (x1 - x0), c)
        yavg[:, i, j] = win.mean(axis=1)
        for b, ch in itertools.product(range(n), range(c)):
            v = win[b, :, ch]
            nan = np.flatnonzero(np.isnan(v))
            k = nan[-1] if nan.size else int(np.argmax(v))
            ymax[b, i, j, ch] = v[k]
            arg[b, i, j, ch] = (y0 + k // (x1 - x0)) * w + x0 + k % (x1 - x0)
    return ymax, arg, yavg


def ref_pool_grads(x_shape, dy, arg, pool, strides, padding):
    kh, kw = pair(pool)
    sh, sw = pair(pool if strides is None else strides)
    n, h, w, c = x_shape
    dmax = np.zeros((n, h * w, c))
    for b, ch in itertools.product(range(n), range(c)):
        np.add.at(dmax[b, :, ch], arg[b, ..., ch].ravel(), dy[b, ..., ch].ravel())
    davg = np.zeros(x_shape)
    rows, cols = pool_windows(h, kh, sh, padding), pool_windows(w, kw, sw, padding)
    for (i, (y0, y1)), (j, (x0, x1)) in itertools.product(enumerate(rows), enumerate(cols)):
        davg[:, y0:y1, x0:x1] += dy[:, i, j, None, None, :] / ((y1 - y0) * (x1 - x0))
    return dmax.reshape(x_shape), davg
