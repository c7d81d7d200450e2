"""SGD, Adam and RMSprop updates (csrc/optim.c): every ISA, 1 and 4 threads. The kernels are
float32 in Keras 3's operation order without FMA contraction, so multi-step trajectories must
equal the float32 NumPy rules of _ref_eltwise bit for bit; float64 and PyTorch cross-checks
bound the rules themselves."""

import numpy as np
import pytest
from _ref_eltwise import adam_step, rmsprop_step, sgd_step

import fastnn
from fastnn import _kernels as K

SIZES = (0, 1, 7, 16, 17, 31, 1031, 300007)  # 300007 runs on several threads
STEPS = 12

SGD_CONFIGS = [
    {"lr": 0.01, "momentum": 0.0, "nesterov": False},
    {"lr": 0.05, "momentum": 0.9, "nesterov": False},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
]
ADAM_CONFIGS = [
    {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    {"lr": 0.1, "beta_1": 0.5, "beta_2": 0.75, "epsilon": 1e-3},
]
RMSPROP_CONFIGS = [
    {"lr": 1e-3, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7},
    {"lr": 0.01, "rho": 0.8, "momentum": 0.5, "epsilon": 1e-4},
]


def trajectories(rng, n):
    """Start weights and STEPS gradients, with a few zero gradients in the mix."""
    w = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(STEPS)]
    if n:
        grads[3][:: max(1, n // 5)] = 0.0
    return w, grads


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=["plain", "momentum", "nesterov"])
def test_sgd_trajectory_bitwise(isa, n_threads, rng, n, cfg):
    w, grads = trajectories(rng, n)
    w_ref, v_ref = w.copy(), np.zeros_like(w)
    v = np.zeros_like(w) if cfg["momentum"] else None
    for g in grads:
        K.sgd_update(w, g, v, **cfg)
        sgd_step(w_ref, g, v_ref, **cfg)
    np.testing.assert_array_equal(w, w_ref)
    if v is not None:
        np.testing.assert_array_equal(v, v_ref)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=["defaults", "aggressive"])
def test_adam_trajectory_bitwise(isa, n_threads, rng, n, cfg):
    w, grads = trajectories(rng, n)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w_ref, m_ref, v_ref = w.copy(), m.copy(), v.copy()
    for step, g in enumerate(grads, start=1):
        K.adam_update(w, g, m, v, step=step, **cfg)
        adam_step(w_ref, g, m_ref, v_ref, step=step, **cfg)
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(v, v_ref)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("cfg", RMSPROP_CONFIGS, ids=["defaults", "momentum"])
def test_rmsprop_trajectory_bitwise(isa, n_threads, rng, n, cfg):
    w, grads = trajectories(rng, n)
    ms = np.zeros_like(w)
    mom = np.zeros_like(w) if cfg["momentum"] else None
    w_ref, ms_ref, mom_ref = w.copy(), ms.copy(), np.zeros_like(w)
    for g in grads:
        K.rmsprop_update(w, g, ms, mom, **cfg)
        rmsprop_step(w_ref, g, ms_ref, mom_ref, **cfg)
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(ms, ms_ref)
    if mom is not None:
        np.testing.assert_array_equal(mom, mom_ref)


def test_adam_float64_rule(rng):
    """The float32 kernel follows Adam's rule (Keras form, epsilon outside the bias-corrected
    root) to float32 accuracy over 20 steps."""
    w, grads = trajectories(rng, 999)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w64, m64, v64 = w.astype(np.float64), np.zeros(999), np.zeros(999)
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-7
    for t, g in enumerate(grads + grads[:8], start=1):
        K.adam_update(w, g, m, v, lr=lr, beta_1=b1, beta_2=b2, epsilon=eps, step=t)
        m64 = b1 * m64 + (1 - b1) * g
        v64 = b2 * v64 + (1 - b2) * g.astype(np.float64) ** 2
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w64 -= alpha * m64 / (np.sqrt(v64) + eps)
    np.testing.assert_allclose(w, w64, rtol=1e-5, atol=1e-5)


def test_torch_cross_check(rng):
    torch = pytest.importorskip("torch")
    w0, grads = trajectories(rng, 257)
    cases = [
        (
            "sgd",
            {"lr": 0.05, "momentum": 0.9, "nesterov": True},
            lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True),
        ),
        (
            "adam",
            {"lr": 1e-2, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
            lambda p: torch.optim.Adam([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-7),
        ),
        # RMSprop: Keras puts epsilon inside the root, torch outside; a tiny one hides that
        (
            "rmsprop",
            {"lr": 1e-3, "rho": 0.9, "momentum": 0.5, "epsilon": 1e-14},
            lambda p: torch.optim.RMSprop([p], lr=1e-3, alpha=0.9, momentum=0.5, eps=1e-14),
        ),
    ]
    for name, cfg, make in cases:
        w = w0.copy()
        s1, s2 = np.zeros_like(w), np.zeros_like(w)
        p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        opt = make(p)
        for t, g in enumerate(grads, start=1):
            if name == "sgd":
                K.sgd_update(w, g, s1, **cfg)
            elif name == "adam":
                K.adam_update(w, g, s1, s2, step=t, **cfg)
            else:
                K.rmsprop_update(w, g, s1, s2, **cfg)
            p.grad = torch.from_numpy(g.copy())
            opt.step()
        # Keras and torch differ only in where epsilon enters (and torch's SGD velocity is
        # Keras's divided by -lr): tiny differences at these epsilons.
        np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_nan_gradient_propagates(isa):
    w = np.ones(40, np.float32)
    g = np.zeros(40, np.float32)
    g[[3, 21]] = np.nan
    m, v = np.zeros_like(w), np.zeros_like(w)
    K.adam_update(w, g, m, v, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    assert np.isnan(w[[3, 21]]).all() and np.isfinite(np.delete(w, [3, 21])).all()


def test_threads_and_isas_agree(rng):
    w0, grads = trajectories(rng, 200003)
    results = []
    before = fastnn.get_num_threads(), fastnn.get_isa()
    try:
        for isa in fastnn._config.available_isas():
            for nt in (1, 3):
                fastnn.set_isa(isa)
                fastnn.set_num_threads(nt)
                w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
                for t, g in enumerate(grads[:4], start=1):
                    K.adam_update(
                        w, g, m, v, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=t
                    )
                results.append(w)
    finally:
        fastnn.set_num_threads(before[0])
        fastnn.set_isa(before[1])
    for w in results[1:]:
        np.testing.assert_array_equal(w, results[0])


def test_errors():
    w, g = np.zeros(8, np.float32), np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="sgd_update: momentum=0.9 needs a velocity array"):
        K.sgd_update(w, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="rmsprop_update: momentum=0.5 needs a mom array"):
        K.rmsprop_update(
            w, g, np.zeros(8, np.float32), None, lr=0.1, rho=0.9, momentum=0.5, epsilon=1e-7
        )
    with pytest.raises(ValueError, match="adam_update: step counts updates from 1, received 0"):
        K.adam_update(
            w, g, w.copy(), w.copy(), lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=0
        )
    with pytest.raises(
        ValueError,
        match=r"adam_update: grad must have the shape of param "
        r"\(8,\), received \(7,\)",
    ):
        K.adam_update(
            w, g[:7], w.copy(), w.copy(), lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1
        )
    with pytest.raises(ValueError, match="adam_update: param and m overlap in memory"):
        K.adam_update(w, g, w, w.copy(), lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    with pytest.raises(TypeError, match="sgd_update: param must be float32, received float64"):
        K.sgd_update(w.astype(np.float64), g, lr=0.1)
    with pytest.raises(ValueError, match="sgd_update: param must be C-contiguous"):
        K.sgd_update(np.zeros(16, np.float32)[::2], g, lr=0.1)
    with pytest.raises(ValueError, match="sgd_update: param must be writeable"):
        ro = np.zeros(8, np.float32)
        ro.flags.writeable = False
        K.sgd_update(ro, g, lr=0.1)
    with pytest.raises(ValueError, match="rmsprop_update: ms must be writeable"):
        ro = np.zeros(8, np.float32)
        ro.flags.writeable = False
        K.rmsprop_update(w, g, ro, lr=0.1, rho=0.9, epsilon=1e-7)
    with pytest.raises(ValueError, match="sgd_update: param and grad overlap in memory"):
        K.sgd_update(w, w, lr=0.1)
