"""LSTM cases (issue 5): forward + backward through time, and inference, over whole sequences.

fastnn: fastnn.ops.lstm_forward(training=True) + lstm_backward (every gradient, dx included);
inference: lstm_forward(training=False), all outputs. numpy: NumpyLSTM below, the best NumPy LSTM
we could write (time-major buffers allocated once, one GEMM for every step's input projection,
per step one matmul with out= and in-place gate arithmetic, backward with preallocated buffers
and the weight gradients as three large GEMMs after the time loop). torch: nn.LSTM
(batch_first), y.backward(dy) with x.requires_grad (so dx is computed too), and inference under
torch.no_grad(). Every impl returns all outputs (return_sequences) from the same weights.
"""

from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn.bench._harness import Case, _maybe_torch

# (batch, time, input_size, units)
SHAPES = ((64, 50, 128, 256), (32, 100, 64, 128))
SHAPES_QUICK = ((8, 10, 16, 32),)


class NumpyRecurrent:
    """The buffers every NumPy recurrent model here allocates once: time-major x (xt), h
    (h[0] = h0 = 0, h[t + 1] = h_t), the output y, and the gradients of the weights and x,
    which _weight_grads computes as large GEMMs after the time loop."""

    def __init__(self, x, kernel, rkernel, bias):
        batch, time, features = x.shape
        units = rkernel.shape[0]
        self.x, self.kernel, self.rkernel, self.bias = x, kernel, rkernel, bias
        self.shape = (batch, time, features, units)
        self.xt = np.empty((time, batch, features), np.float32)
        self.h = np.zeros((time + 1, batch, units), np.float32)
        self.y = np.empty((batch, time, units), np.float32)
        self.dkernel, self.drkernel = np.empty_like(kernel), np.empty_like(rkernel)
        self.dbias = np.empty_like(bias)
        self.dxt = np.empty_like(self.xt)
        self.dx = np.empty_like(x)

    @staticmethod
    def _sigmoid_(a):
        """sigmoid(a) in place, as 0.5 * tanh(0.5 * a) + 0.5 (one transcendental pass)."""
        np.multiply(a, 0.5, out=a)
        np.tanh(a, out=a)
        np.multiply(a, 0.5, out=a)
        np.add(a, 0.5, out=a)

    def _weight_grads(self, dz, dzh=None):
        """(dx, dkernel, drecurrent_kernel, dbias) from dz (time*batch, gates*units), the
        gradient of the pre-activations; dzh: that of the recurrent part where it differs
        (the GRU's), which then also gives the second row of a (2, gates*units) bias."""
        batch, time, features, units = self.shape
        dzh = dz if dzh is None else dzh
        np.matmul(self.xt.reshape(time * batch, features).T, dz, out=self.dkernel)
        np.matmul(self.h[:time].reshape(time * batch, units).T, dzh, out=self.drkernel)
        for row, d in zip(self.dbias.reshape(-1, dz.shape[1]), (dz, dzh)):
            np.sum(d, axis=0, out=row)
        np.matmul(dz, self.kernel.T, out=self.dxt.reshape(time * batch, features))
        np.copyto(self.dx, self.dxt.transpose(1, 0, 2))
        return self.dx, self.dkernel, self.drkernel, self.dbias


class NumpyLSTM(NumpyRecurrent):
    """LSTM forward and BPTT in NumPy on buffers allocated once (Keras layout, gates i f g o).

    Time-major internally: step t's gates are the contiguous block z[t] (batch, 4*units).
    sigmoid(x) is computed as 0.5 * tanh(0.5 * x) + 0.5 in place (one transcendental pass).
    """

    def __init__(self, x, kernel, rkernel, bias):
        super().__init__(x, kernel, rkernel, bias)
        batch, time, _, units = self.shape
        f32 = np.float32
        self.z = np.empty((time, batch, 4 * units), f32)  # gates (activated)
        self.c = np.zeros((time + 1, batch, units), f32)
        self.tc = np.empty((time, batch, units), f32)  # tanh(c_t)
        self.tmp = np.empty((batch, units), f32)
        self.zr = np.empty((batch, 4 * units), f32)
        # backward buffers
        self.dyt = np.empty((time, batch, units), f32)
        self.dh = np.empty((batch, units), f32)
        self.dc = np.empty((batch, units), f32)
        self.t1 = np.empty((batch, units), f32)

    def forward(self):
        batch, time, features, units = self.shape
        u = units
        np.copyto(self.xt, self.x.transpose(1, 0, 2))
        z2 = self.z.reshape(time * batch, 4 * u)
        np.matmul(self.xt.reshape(time * batch, features), self.kernel, out=z2)
        z2 += self.bias
        for t in range(time):
            z = self.z[t]
            if t > 0:  # h0 = 0: nothing to add at t = 0
                np.matmul(self.h[t], self.rkernel, out=self.zr)
                z += self.zr
            self._sigmoid_(z[:, : 2 * u])
            np.tanh(z[:, 2 * u : 3 * u], out=z[:, 2 * u : 3 * u])
            self._sigmoid_(z[:, 3 * u :])
            i, f, g, o = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
            c = self.c[t + 1]
            np.multiply(f, self.c[t], out=c)
            np.multiply(i, g, out=self.tmp)
            c += self.tmp
            np.tanh(c, out=self.tc[t])
            np.multiply(o, self.tc[t], out=self.h[t + 1])
        np.copyto(self.y, self.h[1:].transpose(1, 0, 2))
        return self.y

    def backward(self, dy):
        """Gradients of sum(y * dy): every dz_t overwrites the saved gates z[t]."""
        batch, time, _, units = self.shape
        u = units
        np.copyto(self.dyt, dy.transpose(1, 0, 2))
        dh, dc, t1 = self.dh, self.dc, self.t1
        dh.fill(0.0)
        dc.fill(0.0)
        for t in range(time - 1, -1, -1):
            z = self.z[t]
            i, f, g, o = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
            tc = self.tc[t]
            dh += self.dyt[t]
            # dc += dh * o * (1 - tc^2)
            np.multiply(tc, tc, out=t1)
            np.subtract(1.0, t1, out=t1)
            t1 *= o
            t1 *= dh
            dc += t1
            # dz_o = dh * tc * o * (1 - o); dh is scratch from here on
            np.multiply(dh, tc, out=t1)
            np.subtract(1.0, o, out=dh)
            dh *= o
            np.multiply(t1, dh, out=o)
            # dz_g = dc * i * (1 - g^2), keeping dc * g for dz_i
            np.multiply(dc, g, out=dh)
            np.multiply(g, g, out=t1)
            np.subtract(1.0, t1, out=t1)
            t1 *= i
            np.multiply(t1, dc, out=g)
            # dz_i = dc * g * i * (1 - i)
            np.subtract(1.0, i, out=t1)
            t1 *= i
            np.multiply(dh, t1, out=i)
            # dz_f = dc * c_prev * f * (1 - f), then dc = dc * f (before f is overwritten)
            np.subtract(1.0, f, out=t1)
            t1 *= self.c[t]
            t1 *= dc
            dc *= f
            np.multiply(t1, f, out=f)
            if t > 0:
                np.matmul(z, self.rkernel.T, out=dh)
            else:
                dh.fill(0.0)
        return self._weight_grads(self.z.reshape(time * batch, 4 * u))


def _flops(batch, time, features, units, train):
    """Forward: 2*B*T*4u*(features + units); backward: twice that (dh, dW, dU, dx)."""
    fwd = 2.0 * batch * time * 4 * units * (features + units)
    return 3.0 * fwd if train else fwd


def keras_to_torch(kernel, rkernel, bias) -> dict:
    """torch.nn.LSTM / RNN parameters from Keras's weights: transposed, bias_hh zero."""
    return {
        "weight_ih_l0": kernel.T,
        "weight_hh_l0": rkernel.T,
        "bias_ih_l0": bias,
        "bias_hh_l0": np.zeros_like(bias),
    }


def torch_impls(torch, module, params, x, dy, train, infer):
    """Adds "torch" to the train and infer impls: a batch_first torch RNN module with `params`
    (name -> array) loaded, training with y.backward(dy) and x.requires_grad (dx computed
    too), inference under no_grad."""
    with torch.no_grad():
        for name, value in params.items():
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    xt = torch.from_numpy(x).requires_grad_()
    dyt = torch.from_numpy(dy)

    def torch_train():
        xt.grad = None
        module.zero_grad(set_to_none=True)
        y, _ = module(xt)
        y.backward(dyt)

    def torch_infer():
        with torch.no_grad():
            return module(xt)

    train["torch"] = torch_train
    infer["torch"] = torch_infer


def recurrent_cases(quick, group, make_weights, numpy_model, fnn, torch_model, flops):
    """The fwd+bwd and inference Cases of one recurrent op on every (batch, time, input_size,
    units) shape. make_weights(rng, features, units): Keras's weights; numpy_model(x, *weights):
    an object with forward() and backward(dy); fnn: (forward, backward), the fastnn ops
    (forward(x, *weights, training=...) returns its cache last; backward(cache, dy)); torch_model(torch, features, units): the module
    and the parameters (name -> array) to load into it; flops(*shape, train)."""
    forward, backward = fnn
    rng = np.random.default_rng(0)
    torch = _maybe_torch()
    out = []
    for shape in SHAPES_QUICK if quick else SHAPES:
        batch, time, features, units = shape
        x = rng.standard_normal((batch, time, features), dtype=np.float32)
        weights = make_weights(rng, features, units)
        dy = rng.standard_normal((batch, time, units), dtype=np.float32)
        model = numpy_model(x, *weights)

        def fnn_train(x=x, weights=weights, dy=dy):
            return backward(forward(x, *weights, training=True)[-1], dy)

        def np_train(model=model, dy=dy):
            model.forward()
            return model.backward(dy)

        train = {"fastnn": fnn_train, "numpy": np_train}
        infer = {"fastnn": lambda x=x, w=weights: forward(x, *w), "numpy": model.forward}
        if torch is not None:
            module, params = torch_model(torch, features, units, weights)
            torch_impls(torch, module, params, x, dy, train, infer)
        dims = f"batch {batch}, {time} steps, {features} in, {units} units"
        params = {"batch": batch, "time": time, "input_size": features, "units": units}
        out.append(Case(group, f"fwd+bwd {dims}", flops(*shape, True), train, params=params))
        out.append(Case(group, f"inference {dims}", flops(*shape, False), infer, params=params))
    return out


def _weights(rng, features, units):
    kernel = rng.standard_normal((features, 4 * units), dtype=np.float32)
    kernel *= np.float32(1.0 / np.sqrt(features))
    rkernel = rng.standard_normal((units, 4 * units), dtype=np.float32)
    rkernel *= np.float32(1.0 / np.sqrt(units))
    bias = np.zeros(4 * units, np.float32)
    bias[units : 2 * units] = 1.0  # Keras's unit_forget_bias
    return kernel, rkernel, bias


def _torch_model(torch, features, units, weights):
    return torch.nn.LSTM(features, units, batch_first=True), keras_to_torch(*weights)


def cases(quick: bool) -> list[Case]:
    fnn = (ops.lstm_forward, ops.lstm_backward)
    return recurrent_cases(quick, "lstm", _weights, NumpyLSTM, fnn, _torch_model, _flops)
