"""SimpleRNN cases (issue 5): forward + backward through time, and inference, over whole
sequences, on the LSTM's shapes.

fastnn: fastnn.ops.simple_rnn_forward(training=True) + simple_rnn_backward (every gradient, dx
included); inference: simple_rnn_forward(training=False), all outputs. numpy: NumpySimpleRNN
below (time-major buffers allocated once, one GEMM for every step's input projection, per step
one matmul with out= and an in-place tanh; backward with preallocated buffers and the weight
gradients as three large GEMMs after the time loop). torch: nn.RNN (tanh, batch_first) as the
LSTM cases run nn.LSTM.
"""

from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn.bench._harness import Case
from fastnn.bench.cases_lstm import NumpyRecurrent, keras_to_torch, recurrent_cases


class NumpySimpleRNN(NumpyRecurrent):
    """h_t = tanh(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel) and its BPTT in NumPy on
    buffers allocated once; time-major inside (step t's h is the contiguous block h[t + 1])."""

    def __init__(self, x, kernel, rkernel, bias):
        super().__init__(x, kernel, rkernel, bias)
        batch, time, _, units = self.shape
        self.zr = np.empty((batch, units), np.float32)
        self.dz = np.empty((time, batch, units), np.float32)
        self.dh = np.empty((batch, units), np.float32)

    def forward(self):
        batch, time, features, units = self.shape
        np.copyto(self.xt, self.x.transpose(1, 0, 2))
        z = self.h[1:].reshape(time * batch, units)  # the projections, then h in place
        np.matmul(self.xt.reshape(time * batch, features), self.kernel, out=z)
        z += self.bias
        for t in range(time):
            h = self.h[t + 1]
            if t > 0:  # h0 = 0: nothing to add at t = 0
                np.matmul(self.h[t], self.rkernel, out=self.zr)
                h += self.zr
            np.tanh(h, out=h)
        np.copyto(self.y, self.h[1:].transpose(1, 0, 2))
        return self.y

    def backward(self, dy):
        """Gradients of sum(y * dy)."""
        batch, time, _, units = self.shape
        np.copyto(self.dz, dy.transpose(1, 0, 2))  # dy_t, then dz_t in place
        dh = self.dh
        for t in range(time - 1, -1, -1):
            dz, h = self.dz[t], self.h[t + 1]
            if t < time - 1:
                dz += dh
            np.multiply(h, h, out=dh)  # dz *= 1 - h^2, dh as scratch
            np.subtract(1.0, dh, out=dh)
            dz *= dh
            if t > 0:
                np.matmul(dz, self.rkernel.T, out=dh)
        return self._weight_grads(self.dz.reshape(time * batch, units))


def _flops(batch, time, features, units, train):
    """Forward: 2*B*T*u*(features + units); backward: twice that (dh, dW, dU, dx)."""
    fwd = 2.0 * batch * time * units * (features + units)
    return 3.0 * fwd if train else fwd


def _weights(rng, features, units):
    kernel = rng.standard_normal((features, units), dtype=np.float32)
    kernel *= np.float32(1.0 / np.sqrt(features))
    rkernel = np.linalg.qr(rng.standard_normal((units, units)))[0].astype(np.float32)
    return kernel, rkernel, np.zeros(units, np.float32)


def _torch_model(torch, features, units, weights):
    return torch.nn.RNN(features, units, batch_first=True), keras_to_torch(*weights)


def cases(quick: bool) -> list[Case]:
    fnn = (ops.simple_rnn_forward, ops.simple_rnn_backward)
    return recurrent_cases(quick, "simple_rnn", _weights, NumpySimpleRNN, fnn, _torch_model, _flops)
