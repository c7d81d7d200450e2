"""GRU cases (issue 5): forward + backward through time, and inference, over whole sequences,
on the LSTM's shapes (Keras's GRU, reset_after=True).

fastnn: fastnn.ops.gru_forward(training=True) + gru_backward (every gradient, dx included);
inference: gru_forward(training=False), all outputs. numpy: NumpyGRU below (time-major
buffers allocated once, one GEMM for every step's input projection, per step one matmul with
out= and in-place gate arithmetic; backward with preallocated buffers and the weight
gradients as large GEMMs after the time loop). torch: nn.GRU (batch_first), whose gates
r, z, n are Keras's r, z, h reset-after candidate, as the LSTM cases run nn.LSTM.
"""

from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn.bench._harness import Case
from fastnn.bench.cases_lstm import NumpyRecurrent, recurrent_cases


class NumpyGRU(NumpyRecurrent):
    """GRU forward and BPTT in NumPy on buffers allocated once (Keras layout, gates z r h,
    bias (2, 3*units)). g[t] holds x_t @ kernel + bias[0], then the activated z, r, hh, then
    in backward dz for the input projection; hn[t] holds h_{t-1} @ U_h + rb_h."""

    def __init__(self, x, kernel, rkernel, bias):
        super().__init__(x, kernel, rkernel, bias)
        batch, time, _, units = self.shape
        f32 = np.float32
        self.g = np.empty((time, batch, 3 * units), f32)
        self.hn = np.empty((time, batch, units), f32)
        self.zr = np.empty((batch, 3 * units), f32)
        self.tmp = np.empty((batch, units), f32)
        self.dzh = np.empty((time, batch, 3 * units), f32)
        self.dh = np.empty((batch, units), f32)

    def forward(self):
        batch, time, features, u = self.shape
        np.copyto(self.xt, self.x.transpose(1, 0, 2))
        g2 = self.g.reshape(time * batch, 3 * u)
        np.matmul(self.xt.reshape(time * batch, features), self.kernel, out=g2)
        g2 += self.bias[0]
        for t in range(time):
            g, hr = self.g[t], self.zr
            if t > 0:
                np.matmul(self.h[t], self.rkernel, out=hr)
                hr += self.bias[1]
            else:  # h0 = 0: the recurrent part is the bias
                np.copyto(hr, np.broadcast_to(self.bias[1], hr.shape))
            g[:, : 2 * u] += hr[:, : 2 * u]
            self._sigmoid_(g[:, : 2 * u])
            z, r, hh = g[:, :u], g[:, u : 2 * u], g[:, 2 * u :]
            np.copyto(self.hn[t], hr[:, 2 * u :])
            np.multiply(r, self.hn[t], out=self.tmp)
            hh += self.tmp
            np.tanh(hh, out=hh)
            h = self.h[t + 1]  # h = hh + z * (h_prev - hh)
            np.subtract(self.h[t], hh, out=h)
            h *= z
            h += hh
        np.copyto(self.y, self.h[1:].transpose(1, 0, 2))
        return self.y

    def backward(self, dy):
        """Gradients of sum(y * dy): dz for the input projection overwrites g[t]."""
        batch, time, _, u = self.shape
        dh, tmp = self.dh, self.tmp
        dh.fill(0.0)
        for t in range(time - 1, -1, -1):
            g, dzh = self.g[t], self.dzh[t]
            z, r, hh = g[:, :u], g[:, u : 2 * u], g[:, 2 * u :]
            dh += dy[:, t]
            # dz = dh * (h_prev - hh) * z * (1 - z), into dzh's z block
            np.subtract(self.h[t], hh, out=dzh[:, :u])
            dzh[:, :u] *= dh
            np.subtract(1.0, z, out=tmp)
            tmp *= z
            dzh[:, :u] *= tmp
            # dhh = dh * (1 - z) * (1 - hh^2), in place of hh; dh becomes dh * z
            np.multiply(hh, hh, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            np.subtract(1.0, z, out=hh)
            hh *= tmp
            hh *= dh
            dh *= z
            # dr = dhh * hn * r * (1 - r) into dzh's r block; dzh's h block = dhh * r
            np.multiply(hh, self.hn[t], out=dzh[:, u : 2 * u])
            np.subtract(1.0, r, out=tmp)
            tmp *= r
            dzh[:, u : 2 * u] *= tmp
            np.multiply(hh, r, out=dzh[:, 2 * u :])
            np.copyto(g[:, : 2 * u], dzh[:, : 2 * u])
            if t > 0:
                np.matmul(dzh, self.rkernel.T, out=tmp)
                dh += tmp
        rows = time * batch
        return self._weight_grads(self.g.reshape(rows, 3 * u), self.dzh.reshape(rows, 3 * u))


def _flops(batch, time, features, units, train):
    """Forward: 2*B*T*3u*(features + units); backward: twice that (dh, dW, dU, dx)."""
    fwd = 2.0 * batch * time * 3 * units * (features + units)
    return 3.0 * fwd if train else fwd


def _weights(rng, features, units):
    kernel = rng.standard_normal((features, 3 * units), dtype=np.float32)
    kernel *= np.float32(1.0 / np.sqrt(features))
    rkernel = rng.standard_normal((units, 3 * units), dtype=np.float32)
    rkernel *= np.float32(1.0 / np.sqrt(units))
    return kernel, rkernel, np.zeros((2, 3 * units), np.float32)


def _torch_order(a):
    """Keras's gate blocks z | r | h as torch's r | z | n."""
    z, r, h = np.split(a, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _torch_model(torch, features, units, weights):
    kernel, rkernel, bias = weights
    params = {
        "weight_ih_l0": _torch_order(kernel).T,
        "weight_hh_l0": _torch_order(rkernel).T,
        "bias_ih_l0": _torch_order(bias[0]),
        "bias_hh_l0": _torch_order(bias[1]),
    }
    return torch.nn.GRU(features, units, batch_first=True), params


def cases(quick: bool) -> list[Case]:
    fnn = (ops.gru_forward, ops.gru_backward)
    return recurrent_cases(quick, "gru", _weights, NumpyGRU, fnn, _torch_model, _flops)
