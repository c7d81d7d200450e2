"""Convolution and pooling cases (issue 4): fastnn vs the best NumPy we could write
(fastnn/bench/_conv_numpy.py) vs PyTorch, NHWC, float32.

- conv2d: the issue's layers, 3x3 'same': (a) N64 28x28 1->32, (b) N64 14x14 32->64,
  (c) N32 32x32 64->128. One iteration = forward (with bias) + backward to the input, the
  weights and the bias. fastnn: the strict kernels writing into preallocated outputs. torch:
  torch.conv2d + aten.convolution_backward (no autograd bookkeeping) on NCHW tensors made
  once, outside the timed region ("torch"), and on channels_last tensors, the layout fastnn
  and NumPy use ("torch_cl"; whichever is faster is torch's best).
- pool2d: max pooling 2x2 forward + backward on the outputs of layers (a) and (b).
- cnn: one training epoch of the issue's CNN (conv 3x3 32 relu, maxpool 2, conv 3x3 64 relu,
  maxpool 2, dense 128 relu, dense 10 softmax; 'valid' padding, Adam, batch 64) on 10,000
  synthetic 28x28x1 images whose labels a random linear teacher assigns (learnable).
  fastnn: Sequential.fit as a Keras user writes it; numpy: _conv_numpy.NumpyCNN; torch:
  nn.Sequential + Adam on the same shuffled index batches (NCHW tensors made once).
flops count the three GEMM-shaped passes: 3 * 2 * pixels * kh*kw*c_in * c_out.
"""

from __future__ import annotations

import numpy as np

from fastnn import _kernels as K
from fastnn.bench._conv_numpy import NumpyCNN, NumpyConv2D, NumpyMaxPool2x2
from fastnn.bench._harness import Case, _maybe_torch

CONV = (("a", 64, 28, 28, 1, 32), ("b", 64, 14, 14, 32, 64), ("c", 32, 32, 32, 64, 128))
CONV_QUICK = (("a", 8, 14, 14, 1, 8), ("b", 8, 8, 8, 16, 32))
POOL = ((64, 28, 28, 32), (64, 14, 14, 64))
POOL_QUICK = ((8, 8, 8, 16),)
CNN_SAMPLES, CNN_SAMPLES_QUICK, CNN_BATCH = 10000, 256, 64


def _torch_conv(torch, x, w, b, dy, channels_last: bool):
    """One fwd + bwd of torch on tensors converted once (NCHW, or channels_last)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).contiguous(memory_format=fmt)
    bt = torch.from_numpy(b.copy())
    dyt = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    pad = [(w.shape[0] - 1) // 2, (w.shape[1] - 1) // 2]
    one, zero = [1, 1], [0, 0]

    def run():
        with torch.no_grad():
            torch.conv2d(xt, wt, bt, 1, pad)
            return torch.ops.aten.convolution_backward(
                dyt, xt, wt, [bt.shape[0]], one, pad, one, False, zero, 1, [True, True, True]
            )

    return run


def conv_case(label, n, h, w, c_in, c_out, rng) -> Case:
    x = rng.standard_normal((n, h, w, c_in), dtype=np.float32)
    wt = (rng.standard_normal((3, 3, c_in, c_out), dtype=np.float32) / np.sqrt(9 * c_in)).astype(
        np.float32
    )
    b = rng.standard_normal(c_out, dtype=np.float32)
    dy = rng.standard_normal((n, h, w, c_out), dtype=np.float32)
    y, dx = np.empty((n, h, w, c_out), np.float32), np.empty_like(x)
    dw, db = np.empty_like(wt), np.empty_like(b)

    def fastnn_iter():
        K.conv2d_fwd(x, wt, b, y, padding="same")
        K.conv2d_bwd_data(dy, wt, x.shape, dx, padding="same")
        K.conv2d_bwd_filter(x, dy, (3, 3), dw, db, padding="same")

    ref = NumpyConv2D(x.shape, wt, b, padding="same")

    def numpy_iter():
        ref.forward(x)
        ref.backward(dy)

    impls = {"fastnn": fastnn_iter, "numpy": numpy_iter}
    torch = _maybe_torch()
    if torch is not None:
        impls["torch"] = _torch_conv(torch, x, wt, b, dy, channels_last=False)
        impls["torch_cl"] = _torch_conv(torch, x, wt, b, dy, channels_last=True)
    flops = 3 * 2.0 * n * h * w * 9 * c_in * c_out
    name = f"conv2d ({label}) fwd+bwd N{n} {h}x{w} {c_in}->{c_out} 3x3 same"
    return Case("conv/conv2d", name, flops, impls, min_repeats=5)


def pool_case(n, h, w, c, rng) -> Case:
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    dy = rng.standard_normal((n, h // 2, w // 2, c), dtype=np.float32)
    y, idx = np.empty(dy.shape, np.float32), np.empty(dy.shape, np.int32)
    dx = np.empty_like(x)

    def fastnn_iter():
        K.max_pool2d_fwd(x, y, idx, pool_size=2)
        K.max_pool2d_bwd(dy, idx, x.shape, dx, pool_size=2)

    ref = NumpyMaxPool2x2(x.shape)

    def numpy_iter():
        ref.forward(x)
        ref.backward(dy)

    impls = {"fastnn": fastnn_iter, "numpy": numpy_iter}
    torch = _maybe_torch()
    if torch is not None:
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        dyt = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy())

        def torch_iter():
            with torch.no_grad():
                _, ind = torch.ops.aten.max_pool2d_with_indices(xt, [2, 2], [2, 2])
                return torch.ops.aten.max_pool2d_with_indices_backward(
                    dyt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, ind
                )

        impls["torch"] = torch_iter
    name = f"maxpool 2x2 fwd+bwd N{n} {h}x{w}x{c}"
    return Case("conv/pool2d", name, 0.0, impls, display="time", min_repeats=5)


def cnn_dataset(samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, 28, 28, 1), dtype=np.float32)
    teacher = rng.standard_normal((784, 10), dtype=np.float32)
    return x, np.argmax(x.reshape(samples, 784) @ teacher, axis=1).astype(np.int64)


def _fastnn_cnn(x, y):
    import fastnn as keras

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return lambda: model.fit(x, y, epochs=1, batch_size=CNN_BATCH, verbose=0)


def _torch_cnn(torch, x, y):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)  # Keras' epsilon
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    yt = torch.from_numpy(y)
    rng = np.random.default_rng(1)

    def epoch():
        order = torch.from_numpy(rng.permutation(x.shape[0]))
        for s in range(0, x.shape[0], CNN_BATCH):
            idx = order[s : s + CNN_BATCH]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt.index_select(0, idx)), yt.index_select(0, idx)).backward()
            opt.step()

    return epoch


def cnn_case(samples: int) -> Case:
    x, y = cnn_dataset(samples)
    cnn, rng = NumpyCNN(np.random.default_rng(1)), np.random.default_rng(1)
    impls = {
        "fastnn": _fastnn_cnn(x, y),
        "numpy": lambda: cnn.fit_epoch(x, y, CNN_BATCH, rng),
    }
    torch = _maybe_torch()
    if torch is not None:
        impls["torch"] = _torch_cnn(torch, x, y)
    name = f"cnn epoch {samples} x 28x28x1, batch {CNN_BATCH}"
    return Case("conv/cnn", name, 0.0, impls, display="time", min_repeats=2)


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(0)
    out = [conv_case(*shape, rng) for shape in (CONV_QUICK if quick else CONV)]
    out += [pool_case(*shape, rng) for shape in (POOL_QUICK if quick else POOL)]
    out.append(cnn_case(CNN_SAMPLES_QUICK if quick else CNN_SAMPLES))
    return out
