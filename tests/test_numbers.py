"""IEEE numbers through fastnn: NaN and inf propagate (relu(NaN) is NaN, 0 * inf is NaN inside a
matmul, as NumPy computes it), TerminateOnNaN stops a diverging fit, and denormals are flushed
to zero inside the kernels by default (fastnn.set_flush_denormals), with IEEE gradual underflow
on request; normal numbers give the same bits in both modes. How fast denormals run is
measured in bench/bench_denormals.py, not asserted here."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn as keras
from fastnn import _kernels, ops

GEMM_PATHS = ("packed", "sup", "narrow")


@pytest.fixture(params=GEMM_PATHS)
def gemm_path(request):
    _kernels.gemm_set_path(request.param)
    yield request.param
    _kernels.gemm_set_path("auto")


def _numpy_matmul(a, b):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return np.matmul(a, b)


@pytest.mark.parametrize("m,n,k", [(1, 1, 2), (5, 7, 3), (13, 33, 40), (40, 9, 300)])
def test_matmul_propagates_nan_and_inf_like_numpy(isa, gemm_path, n_threads, rng, m, n, k):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    a[0, 0], b[0, 0] = 0.0, np.inf               # 0 * inf = NaN in C[0, 0]
    a[-1, -1] = np.nan                           # a NaN row
    b[-1, -1] = -np.inf                          # an inf column (inf - inf where it meets +inf)
    if k > 2:
        a[m // 2, 1], b[1, n // 2] = np.inf, 2.0  # +inf times a positive number
    got, want = ops.matmul(a, b), _numpy_matmul(a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    inf = np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf])
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer,elementwise", [
    (lambda: keras.layers.Dense(6, activation="relu"), False),  # the GEMM epilogue
    (lambda: keras.layers.Dense(6, activation="leaky_relu"), False),
    (lambda: keras.layers.ReLU(), True),                        # the activation kernel
    (lambda: keras.layers.Activation("relu"), True),
], ids=["dense-relu", "dense-leaky_relu", "ReLU", "Activation-relu"])
def test_relu_of_nan_is_nan_through_the_forward_pass(isa, layer, elementwise, rng):
    model = keras.Sequential([keras.Input((6,)), layer()])
    x = rng.standard_normal((5, 6)).astype(np.float32)
    x[2, 3] = np.nan
    x[4] = -np.abs(x[4])                         # relu(negative) is 0, not NaN
    out = model.predict(x, verbose=0)
    nan = np.zeros(out.shape, bool)
    if elementwise:
        nan[2, 3] = True
    else:
        nan[2] = True                            # NaN * w reaches every output of the row
    np.testing.assert_array_equal(np.isnan(out), nan)


def test_softmax_output_of_a_nan_row_is_nan_and_other_rows_sum_to_one(isa, rng):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[1, 0] = np.nan
    out = model.predict(x, verbose=0)
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(out[[0, 2]].sum(axis=1), 1.0, rtol=1e-6)


def test_terminate_on_nan_stops_a_diverging_fit(rng):
    """A learning rate of 1e30 overflows the weights within a few steps; TerminateOnNaN stops
    at the first non-finite loss, and the model is still there to inspect."""
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = rng.standard_normal((256, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=1e30), "mse")
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(x, y, batch_size=8, epochs=50, verbose=0,
                            callbacks=[record, keras.callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1          # stopped within the first epoch
    assert not np.isfinite(losses[-1]) and np.isfinite(losses[:-1]).all()
    assert len(losses) < 256 // 8


@pytest.fixture
def ieee_denormals():
    before = keras.get_flush_denormals()
    keras.set_flush_denormals(False)
    yield
    keras.set_flush_denormals(before)


@pytest.mark.parametrize("scale", [1e-39, 1e-42])
def test_ieee_mode_keeps_denormals(isa, rng, scale, ieee_denormals):
    """set_flush_denormals(False): denormal inputs and products keep their IEEE values."""
    a = (rng.standard_normal((20, 33)) * scale).astype(np.float32)
    b = rng.standard_normal((33, 17)).astype(np.float32)
    assert (np.abs(a[a != 0]) < np.finfo(np.float32).tiny).all()  # all denormal
    got = ops.matmul(a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.count_nonzero(got) == np.count_nonzero(want)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=33 * 2 * 1.4e-45)
    y = _kernels.act_fwd(a, act=_kernels.ACTIVATIONS.index("relu"))
    np.testing.assert_array_equal(y, np.maximum(a, 0))
    tiny = np.full(4, np.finfo(np.float32).tiny, np.float32)
    half = ops.matmul(tiny[None, :], np.full((4, 1), 0.125, np.float32))  # 4 * tiny / 8
    assert half[0, 0] == np.float32(np.finfo(np.float32).tiny / 2)


def test_default_mode_flushes_denormals_only(isa, n_threads, rng):
    """By default (as TensorFlow) the kernels run with flush-to-zero / denormals-are-zero:
    denormal inputs read as zero, results below 2^-126 become zero; normal numbers give the
    same bits as in IEEE mode; and the caller's own floating-point mode (NumPy's) is intact."""
    assert keras.get_flush_denormals()
    a = (rng.standard_normal((300, 200)) * 1e-39).astype(np.float32)
    b = rng.standard_normal((200, 300)).astype(np.float32)
    assert not ops.matmul(a, b).any()                       # every product read as 0 * b
    tiny = np.full(4, np.finfo(np.float32).tiny, np.float32)
    assert ops.matmul(tiny[None, :], np.full((4, 1), 0.125, np.float32))[0, 0] == 0.0
    sig = _kernels.act_fwd(np.array([-90.0, -10.0], np.float32), act=2)   # sigmoid
    assert sig[0] == 0.0 and sig[1] == np.float32(1 / (1 + np.exp(10.0)))
    # normal numbers: the same bits in both modes, through matmul and a whole model
    x = rng.standard_normal((64, 96)).astype(np.float32)
    w = rng.standard_normal((96, 512)).astype(np.float32)
    model = keras.Sequential([keras.Input((96,)), keras.layers.Dense(32, activation="gelu"),
                              keras.layers.Dense(10)])
    flushed = ops.matmul(x, w), model.predict(x, verbose=0)
    keras.set_flush_denormals(False)
    try:
        ieee = ops.matmul(x, w), model.predict(x, verbose=0)
    finally:
        keras.set_flush_denormals(True)
    for got, want in zip(flushed, ieee):
        np.testing.assert_array_equal(got, want)
    # the calling thread is back in IEEE mode: NumPy still produces denormals
    assert np.float32(1e-20) * np.float32(1e-20) != 0.0


def test_flush_denormals_setting_errors():
    with pytest.raises(TypeError, match="set_flush_denormals: enabled must be a bool, received "
                                        "int"):
        keras.set_flush_denormals(1)
    env = {**os.environ, "FASTNN_FLUSH_DENORMALS": "maybe"}
    res = subprocess.run([sys.executable, "-c", "import fastnn"], capture_output=True,
                         text=True, env=env, timeout=60, check=False)
    assert res.returncode != 0
    assert "FASTNN_FLUSH_DENORMALS='maybe' is not valid; valid choices: 1, 0" in res.stderr
    env["FASTNN_FLUSH_DENORMALS"] = "0"
    code = "import fastnn; print(fastnn.get_flush_denormals())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert res.stdout.strip() == "False", res.stderr
