"""Optimizers: multi-step trajectories against NumPy implementations of Keras 3's rules,
learning-rate changes, state, configs and every error path of fastnn.optimizers."""

import numpy as np
import pytest
from _reference import KerasAdam, KerasRMSprop, KerasSGD

from fastnn import optimizers

STEPS = 12

CASES = [
    (lambda: optimizers.SGD(0.1), lambda: KerasSGD(0.1)),
    (lambda: optimizers.SGD(0.05, momentum=0.9), lambda: KerasSGD(0.05, 0.9)),
    (lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True),
     lambda: KerasSGD(0.05, 0.8, nesterov=True)),
    (lambda: optimizers.Adam(), lambda: KerasAdam(0.001)),
    (lambda: optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
     lambda: KerasAdam(0.01, 0.8, 0.99, 1e-5)),
    (lambda: optimizers.RMSprop(), lambda: KerasRMSprop(0.001)),
    (lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.9, epsilon=1e-6),
     lambda: KerasRMSprop(0.01, 0.8, 0.9, 1e-6)),
]


@pytest.mark.parametrize("make,make_ref", CASES)
def test_trajectory_matches_keras_rule(rng, make, make_ref):
    params = [rng.standard_normal((3, 4)).astype(np.float32),
              rng.standard_normal(4).astype(np.float32)]
    refs = [make_ref() for _ in params]
    expected = [p.astype(np.float64) for p in params]
    opt = make()
    for _ in range(STEPS):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        opt.apply(params, grads)
        expected = [r.step(e, g.astype(np.float64)) for r, e, g in zip(refs, expected, grads)]
    assert opt.iterations == STEPS
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p, e, rtol=2e-5, atol=2e-6)


def test_learning_rate_can_change_between_steps():
    param = np.ones(3, np.float32)
    opt = optimizers.SGD(0.1)
    opt.apply([param], [np.ones(3, np.float32)])
    opt.learning_rate = 0.01
    opt.apply_gradients([(np.ones(3, np.float32), param)])
    np.testing.assert_allclose(param, 1 - 0.1 - 0.01, rtol=1e-6)


def test_state_roundtrip(rng):
    params = [rng.standard_normal(5).astype(np.float32)]
    opt = optimizers.Adam()
    opt.apply(params, [np.ones(5, np.float32)])
    state = opt.get_state()
    fresh = optimizers.Adam()
    fresh.build(params)
    fresh.set_state(state, opt.iterations)
    a, b = params[0].copy(), params[0].copy()
    opt.apply([a], [np.ones(5, np.float32)])
    fresh.apply([b], [np.ones(5, np.float32)])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,cls,lr", [("sgd", optimizers.SGD, 0.01),
                                         ("Adam", optimizers.Adam, 0.001),
                                         ("rmsprop", optimizers.RMSprop, 0.001)])
def test_names_give_keras_defaults(name, cls, lr):
    opt = optimizers.get(name)
    assert type(opt) is cls and opt.learning_rate == lr


@pytest.mark.parametrize("make,_", CASES)
def test_config_roundtrip(make, _):
    opt = make()
    clone = optimizers.get(optimizers.serialize(opt))
    assert type(clone) is type(opt) and clone.get_config() == opt.get_config()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: optimizers.SGD(-0.1), ValueError, r"SGD: learning_rate must be a finite number"),
    (lambda: optimizers.SGD("fast"), TypeError, "learning_rate must be a real number"),
    (lambda: optimizers.SGD(momentum=1.5), ValueError, r"momentum must be a finite number in"),
    (lambda: optimizers.Adam(beta_1=1.0), ValueError, r"beta_1 .* in \[0, 1\)"),
    (lambda: optimizers.Adam(amsgrad=True), NotImplementedError, "amsgrad"),
    (lambda: optimizers.RMSprop(centered=True), NotImplementedError, "centered"),
    (lambda: optimizers.get("adagrad"), ValueError, "Unknown optimizer 'adagrad'"),
    (lambda: optimizers.get({"class_name": "Adagrad"}), ValueError, "Unknown optimizer class"),
    (lambda: optimizers.get(0.1), TypeError, "optimizer must be a string"),
    (lambda: optimizers.Optimizer(0.1, "base").build([np.zeros(1)]), NotImplementedError,
     "_make_slots"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_apply_and_state_shape_errors():
    opt = optimizers.SGD(momentum=0.5)
    opt.apply([np.zeros(3, np.float32)], [np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match=r"built for parameters of shapes \[\(3,\)\], received"):
        opt.apply([np.zeros(4, np.float32)], [np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match=r"optimizer state holds \[\(2,\)\], expected \[\(3,\)\]"):
        opt.set_state([np.zeros(2, np.float32)], 1)


def test_subclass_without_update_rule_raises():
    class Incomplete(optimizers.Optimizer):
        def _make_slots(self, param):
            return ()
    with pytest.raises(NotImplementedError, match="Incomplete does not implement _update"):
        Incomplete(0.1, "x").apply([np.zeros(1, np.float32)], [np.zeros(1, np.float32)])
