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
- max pooling 2x2 by reshaping into windows and reducing both window axes with out=; its
  backward routes dy through the mask x == max (ties share the gradient, as a NumPy user
  writes it).
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
        n, h, w, _ = self.shape
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
        n, h, w, _ = self.shape
        return self.dxp[:, self.pt : self.pt + h, self.pl : self.pl + w], self.dkernel, self.dbias


class NumpyMaxPool2x2:
    """2x2 max pooling (stride 2, 'valid', even sizes) forward and backward."""

    def __init__(self, input_shape):
        n, h, w, c = input_shape
        self.win = (n, h // 2, 2, w // 2, 2, c)
        self.y = np.empty((n, h // 2, w // 2, c), np.float32)
        self.mask = np.empty(self.win, bool)
        self.dx = np.empty(input_shape, np.float32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x.reshape(self.win)
        np.max(self.x, axis=(2, 4), out=self.y)
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, ho, _, wo, _, c = self.win
        np.equal(self.x, self.y.reshape(n, ho, 1, wo, 1, c), out=self.mask)
        np.multiply(self.mask, dy.reshape(n, ho, 1, wo, 1, c), out=self.dx.reshape(self.win))
        return self.dx
