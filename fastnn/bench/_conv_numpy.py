"""The best NumPy convolution and max pooling we can write: the baselines of the conv
benchmarks (NHWC activations, HWIO weights, stride 1, 'same' or 'valid').

What makes them fast, each choice measured on the project machine (1 thread):
- every buffer (padded input, im2col matrix, outputs, gradients) is allocated once;
- im2col: with many channels, one np.copyto from a sliding_window_view of the padded input,
  transposed to (n, h, w, kh, kw, c) (0.66 ms at N64 14x14x32, against 2.3 ms for kh*kw slice
  copies); with few channels the kh*kw slice copies (0.39 ms at N64 28x28x1, view 0.82 ms);
- forward and weight gradient are single matmuls on the im2col matrix, which the forward
  keeps for the backward (as a layer caches it); the bias gradient is a ones-vector matmul;
- backward to the input: dY @ W^T into a column matrix, then col2im by kh*kw strided adds
  (7.2 ms at N64 14x14 32->64, against 13.6 ms for the transposed convolution as im2col of
  the padded dY and one matmul);
- max pooling 2x2 by np.maximum over the four strided corner views with out=; its backward
  routes dy through the masks x == max (ties share the gradient, as a NumPy user writes it).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEW_CHANNELS = 8  # below: im2col by slice copies, else one copy from a window view


class NumpyConv2D:
    """conv2d forward and backward (input, weights, bias) for a fixed input shape."""

    def __init__(self, input_shape, kernel: np.ndarray, bias: np.ndarray, padding="same"):
        n, h, w, c = input_shape
        self.kh, self.kw, _, self.c_out = kernel.shape
        self.kernel, self.bias = kernel, bias
        if padding == "same":
            self.pt, self.pl = (self.kh - 1) // 2, (self.kw - 1) // 2
            self.oh, self.ow = h, w
        else:
            self.pt = self.pl = 0
            self.oh, self.ow = h - self.kh + 1, w - self.kw + 1
        hp, wp = self.oh + self.kh - 1, self.ow + self.kw - 1
        self.shape = (n, h, w, c)
        self.m = n * self.oh * self.ow
        self.k = self.kh * self.kw * c
        self.xp = np.zeros((n, hp, wp, c), np.float32)
        self.col = np.empty((n, self.oh, self.ow, self.kh, self.kw, c), np.float32)
        self.y = np.empty((n, self.oh, self.ow, self.c_out), np.float32)
        self.dcol = np.empty_like(self.col)
        self.dxp = np.zeros_like(self.xp)
        self.dkernel = np.empty_like(kernel)
        self.dbias = np.empty_like(bias)
        self.ones = np.ones(self.m, np.float32)

    def _im2col(self) -> None:
        if self.shape[3] < FEW_CHANNELS:
            for i in range(self.kh):
                for j in range(self.kw):
                    self.col[:, :, :, i, j, :] = self.xp[:, i : i + self.oh, j : j + self.ow, :]
        else:
            view = sliding_window_view(self.xp, (self.kh, self.kw), axis=(1, 2))
            np.copyto(self.col, view.transpose(0, 1, 2, 4, 5, 3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        _, h, w, _ = self.shape
        self.xp[:, self.pt : self.pt + h, self.pl : self.pl + w] = x
        self._im2col()
        y2 = self.y.reshape(self.m, self.c_out)
        np.matmul(self.col.reshape(self.m, self.k), self.kernel.reshape(self.k, self.c_out), out=y2)
        y2 += self.bias
        return self.y

    def backward(self, dy: np.ndarray, need_input_grad: bool = True):
        """(dx or None, dkernel, dbias) for the last forward's input."""
        d2 = dy.reshape(self.m, self.c_out)
        np.matmul(
            self.col.reshape(self.m, self.k).T, d2, out=self.dkernel.reshape(self.k, self.c_out)
        )
        np.matmul(self.ones, d2, out=self.dbias)
        if not need_input_grad:
            return None, self.dkernel, self.dbias
        np.matmul(
            d2, self.kernel.reshape(self.k, self.c_out).T, out=self.dcol.reshape(self.m, self.k)
        )
        self.dxp.fill(0.0)
        for i in range(self.kh):
            for j in range(self.kw):
                self.dxp[:, i : i + self.oh, j : j + self.ow, :] += self.dcol[:, :, :, i, j, :]
        _, h, w, _ = self.shape
        return self.dxp[:, self.pt : self.pt + h, self.pl : self.pl + w], self.dkernel, self.dbias


class NumpyMaxPool2x2:
    """2x2 max pooling, stride 2, 'valid' (an odd last row / column is dropped), forward and
    backward, on the four strided corner views of each window: three np.maximum with out=
    forward, four equality masks backward: fwd + bwd 3.0 ms at N64 28x28x32 (1.4 ms at
    N64 14x14x64), against 5.2 ms (1.6 ms) for np.max over the two window axes of a
    (n, h/2, 2, w/2, 2, c) reshape with its mask backward; it also takes odd sizes."""

    def __init__(self, input_shape):
        n, h, w, c = input_shape
        self.ho, self.wo = h // 2, w // 2
        self.y = np.empty((n, self.ho, self.wo, c), np.float32)
        self.mask = np.empty(self.y.shape, bool)
        self.dx = np.zeros(input_shape, np.float32)  # a dropped odd row / column stays 0

    def _corners(self, a):
        h2, w2 = 2 * self.ho, 2 * self.wo
        return [a[:, i:h2:2, j:w2:2] for i in (0, 1) for j in (0, 1)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        c = self._corners(x)
        np.maximum(c[0], c[1], out=self.y)
        np.maximum(self.y, c[2], out=self.y)
        np.maximum(self.y, c[3], out=self.y)
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for xc, dc in zip(self._corners(self.x), self._corners(self.dx)):
            np.equal(xc, self.y, out=self.mask)
            np.multiply(self.mask, dy, out=dc)
        return self.dx


class NumpyCNN:
    """Trains conv 3x3 (32) relu, maxpool 2, conv 3x3 (64) relu, maxpool 2, dense 128 relu,
    dense 10 with softmax cross-entropy and Adam (Keras rule and defaults), 'valid' padding,
    on (28, 28, 1) images: the issue's CNN epoch benchmark, from the parts above. The first
    convolution computes no input gradient; the weights live in one flat vector updated by
    chunked Adam, as _mlp_numpy.NumpyMLP."""

    def __init__(self, rng: np.random.Generator, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        shapes = [
            (3, 3, 1, 32),
            (32,),
            (3, 3, 32, 64),
            (64,),
            (1600, 128),
            (128,),
            (128, 10),
            (10,),
        ]
        total = sum(int(np.prod(s)) for s in shapes)
        self.params, self.grads = np.empty(total, np.float32), np.zeros(total, np.float32)
        self.m, self.v = np.zeros(total, np.float32), np.zeros(total, np.float32)
        self.tmp = np.empty(total, np.float32)
        self.p, self.g, off = [], [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            self.p.append(self.params[off : off + size].reshape(shape))
            self.g.append(self.grads[off : off + size].reshape(shape))
            off += size
        for w in self.p[0::2]:  # Glorot uniform kernels, zero biases
            fan_in, fan_out = int(np.prod(w.shape[:-1])), int(np.prod(w.shape[:-2])) * w.shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            w[...] = rng.uniform(-limit, limit, w.shape)
        for b in self.p[1::2]:
            b[...] = 0.0
        self.t = 0
        self._states = {}

    def _state(self, n):
        """Buffers and parts for a batch of n (one set per batch size: full and last)."""
        if n not in self._states:
            c1 = NumpyConv2D((n, 28, 28, 1), self.p[0], self.p[1], "valid")
            c2 = NumpyConv2D((n, 13, 13, 32), self.p[2], self.p[3], "valid")
            c1.dkernel, c1.dbias, c2.dkernel, c2.dbias = self.g[0], self.g[1], self.g[2], self.g[3]
            self._states[n] = {
                "c1": c1,
                "p1": NumpyMaxPool2x2((n, 26, 26, 32)),
                "c2": c2,
                "p2": NumpyMaxPool2x2((n, 11, 11, 64)),
                "m1": np.empty((n, 26, 26, 32), bool),
                "m2": np.empty((n, 11, 11, 64), bool),
                "h3": np.empty((n, 128), np.float32),
                "m3": np.empty((n, 128), bool),
                "z": np.empty((n, 10), np.float32),
                "row": np.empty((n, 1), np.float32),
                "dh3": np.empty((n, 128), np.float32),
                "dflat": np.empty((n, 1600), np.float32),
                "ar": np.arange(n),
            }
        return self._states[n]

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        n = x.shape[0]
        s = self._state(n)
        a1 = s["c1"].forward(x)
        np.maximum(a1, 0.0, out=a1)
        a2 = s["c2"].forward(s["p1"].forward(a1))
        np.maximum(a2, 0.0, out=a2)
        flat = s["p2"].forward(a2).reshape(n, 1600)
        h3, z, row, ar = s["h3"], s["z"], s["row"], s["ar"]
        np.matmul(flat, self.p[4], out=h3)
        h3 += self.p[5]
        np.maximum(h3, 0.0, out=h3)
        np.matmul(h3, self.p[6], out=z)
        z += self.p[7]
        np.max(z, axis=1, keepdims=True, out=row)
        z -= row
        z_true = float(z[ar, y].sum())
        np.exp(z, out=z)
        np.sum(z, axis=1, keepdims=True, out=row)
        loss = (float(np.log(row).sum()) - z_true) / n
        z /= row
        z[ar, y] -= 1.0
        z *= 1.0 / n
        np.matmul(h3.T, z, out=self.g[6])
        np.sum(z, axis=0, out=self.g[7])
        np.matmul(z, self.p[6].T, out=s["dh3"])
        np.greater(h3, 0.0, out=s["m3"])
        np.multiply(s["dh3"], s["m3"], out=s["dh3"])
        np.matmul(flat.T, s["dh3"], out=self.g[4])
        np.sum(s["dh3"], axis=0, out=self.g[5])
        np.matmul(s["dh3"], self.p[4].T, out=s["dflat"])
        d2 = s["p2"].backward(s["dflat"].reshape(n, 5, 5, 64))
        np.greater(a2, 0.0, out=s["m2"])
        np.multiply(d2, s["m2"], out=d2)
        d1, _, _ = s["c2"].backward(d2)
        d1 = s["p1"].backward(d1)
        np.greater(a1, 0.0, out=s["m1"])
        np.multiply(d1, s["m1"], out=d1)
        s["c1"].backward(d1, need_input_grad=False)
        self._adam()
        return loss

    def _adam(self):
        self.t += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta_2**self.t) / (1.0 - self.beta_1**self.t)
        g, m, v, tmp = self.grads, self.m, self.v, self.tmp
        np.subtract(g, m, out=tmp)
        tmp *= 1.0 - self.beta_1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.beta_2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        self.params -= tmp

    def fit_epoch(self, x, y, batch_size, rng) -> float:
        """One epoch in shuffled batches (the last one partial); returns the mean loss."""
        xb = np.empty((batch_size,) + x.shape[1:], np.float32)
        yb = np.empty(batch_size, y.dtype)
        order, total = rng.permutation(x.shape[0]), 0.0
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]
            n = idx.shape[0]
            np.take(x, idx, axis=0, out=xb[:n])
            np.take(y, idx, out=yb[:n])
            total += self.step(xb[:n], yb[:n]) * n
        return total / x.shape[0]
