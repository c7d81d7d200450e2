"""Optimizer updates fused with the weight-gradient GEMM (gemm_sgd/adam/rmsprop_update, and
Dense training through them).

The fused kernels must equal "GEMM into a gradient buffer, then the update" bit for bit
whenever the unfused GEMM reduces k in one pass (k <= kc) and past 4 kc (where they use a
buffer), on every ISA and thread count; between, they must stay within float32 rounding of it
and still give the same bits on every thread count. A model trained with fused updates must
match one trained without them exactly, and must never allocate its Dense kernels' gradient
buffers.
"""

import numpy as np
import pytest

import fastnn
from fastnn import _kernels as K
from fastnn import optimizers

ADAM = {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
SGD = {"lr": 0.05, "momentum": 0.9, "nesterov": True}
RMSPROP = {"lr": 0.01, "rho": 0.8, "momentum": 0.5, "epsilon": 1e-4}

# (m, n, k): the dense shapes of the issue, 1s and primes, a narrow output layer, zero depth
SHAPES = [(784, 512, 128), (512, 256, 128), (256, 10, 128), (1, 1, 1), (7, 13, 5),
          (97, 61, 31), (13, 33, 0)]


def operands(rng, m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def state(rng, m, n):
    param = rng.standard_normal((m, n), dtype=np.float32)
    s1 = (0.1 * rng.standard_normal((m, n))).astype(np.float32)
    s2 = rng.random((m, n), dtype=np.float32)
    return param, s1, s2


def gradient(a, b, ta, tb):
    m = a.shape[1] if ta else a.shape[0]
    n = b.shape[0] if tb else b.shape[1]
    g = np.zeros((m, n), np.float32)
    if (a.shape[0] if ta else a.shape[1]) > 0:
        K.gemm(a, b, g, trans_a=ta, trans_b=tb)
    return g


def run_both(rule, a, b, ta, tb, param, s1, s2, step=3):
    """(unfused result arrays, fused result arrays) for one update by `rule`."""
    g = gradient(a, b, ta, tb)
    plain = [x.copy() for x in (param, s1, s2)]
    fused = [x.copy() for x in (param, s1, s2)]
    if rule == "adam":
        K.adam_update(plain[0], g, plain[1], plain[2], step=step, **ADAM)
        K.gemm_adam_update(a, b, *fused, trans_a=ta, trans_b=tb, step=step, **ADAM)
    elif rule == "sgd":
        K.sgd_update(plain[0], g, plain[1], **SGD)
        K.gemm_sgd_update(a, b, fused[0], fused[1], trans_a=ta, trans_b=tb, **SGD)
    else:
        K.rmsprop_update(plain[0], g, plain[1], plain[2], **RMSPROP)
        K.gemm_rmsprop_update(a, b, *fused, trans_a=ta, trans_b=tb, **RMSPROP)
    return plain, fused


@pytest.mark.parametrize("rule", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("trans", [(True, False), (False, False), (False, True), (True, True)],
                         ids=["tn", "nn", "nt", "tt"])
def test_fused_equals_gemm_then_update_bitwise(isa, n_threads, rng, rule, shape, trans):
    m, n, k = shape
    a, b = operands(rng, m, n, k, *trans)
    plain, fused = run_both(rule, a, b, *trans, *state(rng, m, n))
    for want, got in zip(plain, fused):
        np.testing.assert_array_equal(got, want)


def test_row_slices_and_empty_outputs(rng):
    """Operands with a row stride (slices of wider arrays) and m or n == 0."""
    wide_a = rng.standard_normal((64, 50), dtype=np.float32)
    wide_b = rng.standard_normal((64, 40), dtype=np.float32)
    a, b = wide_a[:, :37], wide_b[:, 3:32]
    plain, fused = run_both("adam", a, b, True, False, *state(rng, 37, 29))
    for want, got in zip(plain, fused):
        np.testing.assert_array_equal(got, want)
    empty = np.zeros((0, 5), np.float32)
    K.gemm_adam_update(np.zeros((4, 0), np.float32), np.zeros((4, 5), np.float32), empty,
                       empty.copy(), empty.copy(), trans_a=True, step=1, **ADAM)


@pytest.mark.parametrize("k", [600, 1100, 3000])
def test_deep_gradients_are_close_and_thread_invariant(rng, k):
    """k past kc: one pass over k per tile; float32-close to the blocked GEMM + update, and the
    same bits on 1 and 3 threads."""
    m, n = 70, 150
    a, b = operands(rng, m, n, k, True, False)
    start = state(rng, m, n)
    plain, fused = run_both("sgd", a, b, True, False, *start)
    g64 = a.astype(np.float64).T @ b.astype(np.float64)
    scale = np.abs(a).T.astype(np.float64) @ np.abs(b).astype(np.float64)
    v64 = SGD["momentum"] * start[1].astype(np.float64) - SGD["lr"] * g64
    w64 = start[0] + (SGD["momentum"] * v64 - SGD["lr"] * g64)
    tol = 4 * k * np.finfo(np.float32).eps * SGD["lr"] * (1 + SGD["momentum"]) * scale + 1e-6
    assert np.all(np.abs(fused[0] - w64) <= tol)
    assert np.all(np.abs(plain[0] - w64) <= tol)
    results = []
    for threads in (1, 3):
        with _threads(threads):
            results.append(run_both("sgd", a, b, True, False, *start)[1])
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = K.get_num_threads()
        K.set_num_threads(self.n)

    def __exit__(self, *exc):
        K.set_num_threads(self.old)


def test_deepest_gradients_go_through_a_buffer_with_the_same_bits(isa, n_threads, rng):
    """Past 4 kc (2048 with AVX-512) G is computed as usual into a temporary buffer: the
    bits of GEMM + update again."""
    a, b = operands(rng, 45, 70, 2100, True, False)
    plain, fused = run_both("rmsprop", a, b, True, False, *state(rng, 45, 70))
    for want, got in zip(plain, fused):
        np.testing.assert_array_equal(got, want)


def test_zero_depth_still_moves_the_optimizer_state(rng):
    """k == 0: the gradient is 0, and Adam's moments still decay (as with a zero buffer)."""
    param, m, v = state(rng, 5, 9)
    plain, fused = run_both("adam", np.zeros((0, 5), np.float32), np.zeros((0, 9), np.float32),
                            True, False, param, m, v)
    assert not np.array_equal(fused[1], m)
    for want, got in zip(plain, fused):
        np.testing.assert_array_equal(got, want)


def test_errors(rng):
    a, b = operands(rng, 6, 4, 3, True, False)
    param, s1, s2 = state(rng, 6, 4)
    with pytest.raises(ValueError, match=r"param must have the gradient's shape \(6, 4\).*"
                                         r"received \(4, 6\)"):
        K.gemm_adam_update(a, b, param.T.copy(), s1, s2, trans_a=True, step=1, **ADAM)
    with pytest.raises(ValueError, match=r"inner dimensions differ: op\(a\) is 3x6"):
        K.gemm_adam_update(a, b, param, s1, s2, step=1, **ADAM)
    with pytest.raises(ValueError, match="m must have the shape of param"):
        K.gemm_adam_update(a, b, param, s1[:, :3].copy(), s2, trans_a=True, step=1, **ADAM)
    with pytest.raises(ValueError, match="step counts updates from 1"):
        K.gemm_adam_update(a, b, param, s1, s2, trans_a=True, step=0, **ADAM)
    with pytest.raises(ValueError, match="momentum=0.9 needs a velocity array"):
        K.gemm_sgd_update(a, b, param, None, trans_a=True, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum=0.5 needs a mom array"):
        K.gemm_rmsprop_update(a, b, param, s1, None, trans_a=True, lr=0.1, rho=0.9,
                              momentum=0.5, epsilon=1e-7)
    with pytest.raises(TypeError, match="a must be float32"):
        K.gemm_sgd_update(a.astype(np.float64), b, param, trans_a=True, lr=0.1)
    with pytest.raises(ValueError, match="param must be writeable"):
        ro = param.copy()
        ro.flags.writeable = False
        K.gemm_sgd_update(a, b, ro, trans_a=True, lr=0.1)
    with pytest.raises(ValueError, match="param and m overlap"):
        K.gemm_adam_update(a, b, param, param, s2, trans_a=True, step=1, **ADAM)
    square = rng.standard_normal((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="param and a overlap"):
        K.gemm_sgd_update(square, square.copy(), square, lr=0.1)


# ---- training through fused updates ----------------------------------------------------------


def _mlp(optimizer, regularizer=None):
    fastnn.utils.set_random_seed(7)
    model = fastnn.Sequential([
        fastnn.Input((20,)),
        fastnn.layers.Dense(33, activation="relu", kernel_regularizer=regularizer),
        fastnn.layers.Dense(17, activation="tanh"),
        fastnn.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("optimizer", [
    lambda: optimizers.Adam(1e-2),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.SGD(0.1),
    lambda: optimizers.RMSprop(1e-2, momentum=0.5),
], ids=["adam", "nesterov", "sgd", "rmsprop"])
@pytest.mark.parametrize("regularizer", [None, "l2"])
def test_fused_training_equals_unfused_bitwise(blobs, monkeypatch, optimizer, regularizer):
    x, labels = blobs
    fused = _mlp(optimizer(), regularizer)
    fused.fit(x, labels, epochs=2, batch_size=64, verbose=0)
    assert fused._plan.skip  # the kernels without a regularizer went through the fused path
    monkeypatch.setattr(optimizers.Optimizer, "supports_fused_update",
                        property(lambda self: False))
    plain = _mlp(optimizer(), regularizer)
    plain.fit(x, labels, epochs=2, batch_size=64, verbose=0)
    assert not plain._plan.skip
    for want, got in zip(plain.get_weights(), fused.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert fused.optimizer.iterations == plain.optimizer.iterations


def test_fused_kernels_allocate_no_gradient_buffer(blobs):
    x, labels = blobs
    model = _mlp("adam", regularizer="l2")  # the first kernel has a regularizer: not fused
    model.fit(x, labels, epochs=1, batch_size=100, verbose=0)
    first, second, third = model.layers
    assert first._grads[0] is not None  # its penalty's gradient needs the buffer
    assert second._grads[0] is None and third._grads[0] is None
    assert second._grads[1] is not None  # biases keep the ordinary update
    assert all(u is None for layer in model.layers for u in layer.fused_updates)


def test_custom_update_rules_are_not_bypassed(blobs):
    """A subclass that changes `_update` only must get its own rule for every parameter."""
    calls = []

    class Logged(optimizers.SGD):
        def _update(self, param, grad, slots):
            calls.append(param.shape)
            super()._update(param, grad, slots)

    assert not Logged(0.1).supports_fused_update
    assert optimizers.SGD(0.1).supports_fused_update
    x, labels = blobs
    model = _mlp(Logged(0.1))
    model.train_on_batch(x[:32], labels[:32])
    assert (20, 33) in calls and len(calls) == 6


def test_layer_backward_outside_training_never_updates(blobs):
    x, labels = blobs
    model = _mlp("adam")
    model.fit(x, labels, epochs=1, batch_size=100, verbose=0)
    dense = model.layers[1]
    before = dense.get_weights()
    dense(x[:8].astype(np.float32) @ np.ones((20, 33), np.float32))  # a forward of its own
    dense.backward(np.ones((8, 17), np.float32))
    for want, got in zip(before, dense.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_gradient_buffers_are_lazy_and_assignable():
    layer = fastnn.layers.Dense(3)
    layer.build_for((None, 4))
    assert layer._grads == [None, None]  # nothing allocated until used
    assert layer.grad_buffer(1).shape == (3,) and layer._grads[0] is None
    own = [np.ones((4, 3), np.float32), np.ones(3, np.float32)]
    layer.grads = own  # a layer of one's own may assign its gradient arrays
    assert layer.grads[0] is own[0]
    with pytest.raises(ValueError, match=r"grads must be one array per weight, of shapes "
                                         r"\[\(4, 3\), \(3,\)\], received shapes \[\(3,\)\]"):
        layer.grads = [np.ones(3, np.float32)]
