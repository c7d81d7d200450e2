"""Element-wise cases: activations forward and backward, bias gradient, fused softmax
cross-entropy, dropout and the optimizer updates, fastnn vs the best NumPy we can write (and
torch), on the shapes of an MNIST MLP (784-512-256-10) at batch 128.

The NumPy baselines write into preallocated buffers with out=, never allocate per call, and
use the cheapest formulation of each op we found (each choice noted where it is made):
sigmoid as 0.5 tanh(x/2) + 0.5 (no overflow, 3 passes); ReLU backward through a bool mask;
optimizer updates in L2-sized chunks (as fastnn/bench/_mlp_numpy.py, where the chunk size was
measured). torch impls use preallocated out= tensors and torch's fused CPU optimizers.
"""

from __future__ import annotations

import math

import numpy as np

from fastnn import _kernels as K
from fastnn.bench._harness import Case, _maybe_torch

HIDDEN = ((128, 512), (128, 256))  # (batch, units) of the MLP's hidden activations
HIDDEN_QUICK = ((128, 512),)
LOGITS = ((128, 10), (256, 1000))
LOGITS_QUICK = ((128, 10),)
# Parameter counts: 784-512-10 (one training step of the second benchmark) and
# 784-512-256-10 (the epoch benchmark).
PARAMS = (784 * 512 + 512 + 512 * 10 + 10, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10)
PARAMS_QUICK = PARAMS[:1]
OPT_CHUNK = 131072  # elements per NumPy optimizer chunk: five 512 KiB arrays stay in L2

ACT = {name: K.ACTIVATIONS.index(name) for name in K.ACTIVATIONS}
SQRT_HALF = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _np_erf(x, out, tmp):
    """erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) in place: NumPy has no erf."""
    np.abs(x, out=tmp)
    np.multiply(tmp, 0.3275911, out=tmp)
    np.add(tmp, 1.0, out=tmp)
    np.reciprocal(tmp, out=tmp)  # t
    np.multiply(tmp, 1.061405429, out=out)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        np.add(out, c, out=out)
        np.multiply(out, tmp, out=out)
    np.multiply(x, x, out=tmp)
    np.negative(tmp, out=tmp)
    np.exp(tmp, out=tmp)
    np.multiply(out, tmp, out=out)
    np.subtract(1.0, out, out=out)
    np.copysign(out, x, out=out)


def _numpy_act_fwd(name, x, out, tmp, tmp2):
    if name == "relu":
        return lambda: np.maximum(x, 0.0, out=out)
    if name == "sigmoid":

        def f():
            np.multiply(x, 0.5, out=out)
            np.tanh(out, out=out)
            np.multiply(out, 0.5, out=out)
            np.add(out, 0.5, out=out)

        return f
    if name == "tanh":
        return lambda: np.tanh(x, out=out)
    if name == "gelu":

        def f():
            np.multiply(x, SQRT_HALF, out=tmp2)
            _np_erf(tmp2, out, tmp)
            np.add(out, 1.0, out=out)
            np.multiply(out, x, out=out)
            np.multiply(out, 0.5, out=out)

        return f
    raise ValueError(name)


def _numpy_act_bwd(name, x, y, dy, out, tmp, mask):
    if name == "relu":  # bool mask: 16 us at 128x512 against 270 us for fancy indexing

        def f():
            np.greater(y, 0.0, out=mask)
            np.multiply(dy, mask, out=out)

        return f
    if name == "sigmoid":

        def f():
            np.subtract(1.0, y, out=out)
            np.multiply(out, y, out=out)
            np.multiply(out, dy, out=out)

        return f
    if name == "tanh":

        def f():
            np.multiply(y, y, out=out)
            np.subtract(1.0, out, out=out)
            np.multiply(out, dy, out=out)

        return f
    if name == "gelu":

        def f():
            np.multiply(x, SQRT_HALF, out=tmp)
            _np_erf(tmp, out, mask)  # mask doubles as float scratch here
            np.add(out, 1.0, out=out)
            np.multiply(out, 0.5, out=out)
            np.multiply(x, x, out=tmp)
            np.multiply(tmp, -0.5, out=tmp)
            np.exp(tmp, out=tmp)
            np.multiply(tmp, x, out=tmp)
            np.multiply(tmp, INV_SQRT_2PI, out=tmp)
            np.add(out, tmp, out=out)
            np.multiply(out, dy, out=out)

        return f
    raise ValueError(name)


def _torch_act(name):
    torch = _maybe_torch()
    F = torch.nn.functional
    return {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu}[name]


def _act_cases(rng, shapes, torch) -> list[Case]:
    out = []
    for batch, units in shapes:
        x = (rng.standard_normal((batch, units)) * 2).astype(np.float32)
        dy = rng.standard_normal((batch, units)).astype(np.float32)
        for name in ("relu", "sigmoid", "tanh", "gelu"):
            y = K.act_fwd(x, act=ACT[name])
            bufs = [np.empty_like(x) for _ in range(4)]
            mask = np.empty(x.shape, bool) if name == "relu" else np.empty_like(x)
            impls_f = {
                "fastnn": lambda x=x, o=bufs[0], a=ACT[name]: K.act_fwd(x, o, act=a),
                "numpy": _numpy_act_fwd(name, x, bufs[1], bufs[2], bufs[3]),
            }
            impls_b = {
                "fastnn": lambda y=y, dy=dy, x=x, o=bufs[0], a=ACT[name]: K.act_bwd(
                    y, dy, o, act=a, preact=x
                ),
                "numpy": _numpy_act_bwd(name, x, y, dy, bufs[1], bufs[2], mask),
            }
            if torch is not None:
                fn, tx, tout = _torch_act(name), torch.from_numpy(x), torch.empty(x.shape)
                if name in ("sigmoid", "tanh"):  # these take out=
                    impls_f["torch"] = lambda fn=fn, tx=tx, t=tout: fn(tx, out=t)
                else:
                    impls_f["torch"] = lambda fn=fn, tx=tx: fn(tx)
                ty, tdy = torch.from_numpy(y), torch.from_numpy(dy)
                if name == "relu":
                    impls_b["torch"] = lambda ty=ty, tdy=tdy: torch.ops.aten.threshold_backward(
                        tdy, ty, 0.0
                    )
                elif name == "sigmoid":
                    impls_b["torch"] = lambda ty=ty, tdy=tdy: torch.ops.aten.sigmoid_backward(
                        tdy, ty
                    )
                elif name == "tanh":
                    impls_b["torch"] = lambda ty=ty, tdy=tdy: torch.ops.aten.tanh_backward(tdy, ty)
                else:
                    impls_b["torch"] = lambda tx=tx, tdy=tdy: torch.ops.aten.gelu_backward(tdy, tx)
            n = x.size
            out.append(
                Case(
                    "eltwise/act",
                    f"{name} fwd {batch}x{units}",
                    0.0,
                    impls_f,
                    display="time",
                    params={"n": n},
                )
            )
            out.append(
                Case(
                    "eltwise/act",
                    f"{name} bwd {batch}x{units}",
                    0.0,
                    impls_b,
                    display="time",
                    params={"n": n},
                )
            )
        db_f, db_n = np.empty(units, np.float32), np.empty(units, np.float32)
        impls = {
            "fastnn": lambda dy=dy, o=db_f: K.bias_grad(dy, o),
            "numpy": lambda dy=dy, o=db_n: np.sum(dy, axis=0, out=o),
        }
        if torch is not None:
            tdy, tdb = torch.from_numpy(dy), torch.empty(units)
            impls["torch"] = lambda tdy=tdy, tdb=tdb: torch.sum(tdy, dim=0, out=tdb)
        out.append(Case("eltwise/act", f"bias_grad {batch}x{units}", 0.0, impls, display="time"))
    return out


def _xent_cases(rng, shapes, torch) -> list[Case]:
    out = []
    for batch, classes in shapes:
        z = (rng.standard_normal((batch, classes)) * 3).astype(np.float32)
        y = rng.integers(0, classes, batch).astype(np.int64)
        g_f = np.empty_like(z)
        p, shifted = np.empty_like(z), np.empty_like(z)
        row, ar = np.empty((batch, 1), np.float32), np.arange(batch)

        def numpy_xent(z=z, y=y, p=p, shifted=shifted, row=row, ar=ar):
            # as fastnn/bench/_mlp_numpy.py (but on a copy: the logits stay intact)
            np.max(z, axis=1, keepdims=True, out=row)
            np.subtract(z, row, out=shifted)
            np.exp(shifted, out=p)
            np.sum(p, axis=1, keepdims=True, out=row)
            loss = float(np.log(row).sum() - shifted[ar, y].sum()) / z.shape[0]
            np.divide(p, row, out=p)
            p[ar, y] -= 1.0
            np.multiply(p, 1.0 / z.shape[0], out=p)
            return loss

        impls = {"fastnn": lambda z=z, y=y, g=g_f: K.softmax_xent(z, y, g), "numpy": numpy_xent}
        if torch is not None:
            tz, ty = torch.from_numpy(z).requires_grad_(True), torch.from_numpy(y)

            def torch_xent(tz=tz, ty=ty):
                tz.grad = None
                loss = torch.nn.functional.cross_entropy(tz, ty)
                loss.backward()
                return loss.item()

            impls["torch"] = torch_xent
        out.append(
            Case(
                "eltwise/loss",
                f"softmax_xent fwd+bwd {batch}x{classes}",
                0.0,
                impls,
                display="time",
            )
        )
    return out


def _chunks(total):
    return [(s, min(s + OPT_CHUNK, total)) for s in range(0, total, OPT_CHUNK)]


LR, BETA_1, BETA_2, EPS, MOMENTUM, RHO = 1e-3, 0.9, 0.999, 1e-7, 0.9, 0.9


def _adam_case(w0, g, torch) -> Case:
    n = w0.size
    w_f, m_f, v_f = w0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    w_n, m_n, v_n = w0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    tmp, spans = np.empty(min(n, OPT_CHUNK), np.float32), _chunks(n)
    alpha = LR * math.sqrt(1 - BETA_2**10) / (1 - BETA_1**10)

    def numpy_adam():
        for s, e in spans:
            p_, g_, m_, v_, t_ = w_n[s:e], g[s:e], m_n[s:e], v_n[s:e], tmp[: e - s]
            np.subtract(g_, m_, out=t_)
            np.multiply(t_, 1 - BETA_1, out=t_)
            np.add(m_, t_, out=m_)
            np.multiply(g_, g_, out=t_)
            np.subtract(t_, v_, out=t_)
            np.multiply(t_, 1 - BETA_2, out=t_)
            np.add(v_, t_, out=v_)
            np.sqrt(v_, out=t_)
            np.add(t_, EPS, out=t_)
            np.divide(m_, t_, out=t_)
            np.multiply(t_, alpha, out=t_)
            np.subtract(p_, t_, out=p_)

    impls = {
        "fastnn": lambda: K.adam_update(
            w_f, g, m_f, v_f, lr=LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPS, step=10
        ),
        "numpy": numpy_adam,
    }
    if torch is not None:
        impls["torch"] = _torch_optim(torch, w0, g, "adam")
    return Case(
        "eltwise/optim", f"adam update {n:,} params", 0.0, impls, display="time", params={"n": n}
    )


def _sgd_case(w0, g, torch) -> Case:
    n = w0.size
    w_f, v_f = w0.copy(), np.zeros(n, np.float32)
    w_n, v_n = w0.copy(), np.zeros(n, np.float32)
    tmp, spans = np.empty(min(n, OPT_CHUNK), np.float32), _chunks(n)

    def numpy_sgd():
        for s, e in spans:
            p_, g_, v_, t_ = w_n[s:e], g[s:e], v_n[s:e], tmp[: e - s]
            np.multiply(v_, MOMENTUM, out=v_)
            np.multiply(g_, LR, out=t_)
            np.subtract(v_, t_, out=v_)
            np.add(p_, v_, out=p_)

    impls = {
        "fastnn": lambda: K.sgd_update(w_f, g, v_f, lr=LR, momentum=MOMENTUM),
        "numpy": numpy_sgd,
    }
    if torch is not None:
        impls["torch"] = _torch_optim(torch, w0, g, "sgd")
    return Case(
        "eltwise/optim",
        f"sgd momentum update {n:,} params",
        0.0,
        impls,
        display="time",
        params={"n": n},
    )


def _rmsprop_case(w0, g, torch) -> Case:
    n = w0.size
    w_f, s_f = w0.copy(), np.zeros(n, np.float32)
    w_n, s_n = w0.copy(), np.zeros(n, np.float32)
    tmp, spans = np.empty(min(n, OPT_CHUNK), np.float32), _chunks(n)

    def numpy_rmsprop():
        for s, e in spans:
            p_, g_, ms_, t_ = w_n[s:e], g[s:e], s_n[s:e], tmp[: e - s]
            np.multiply(ms_, RHO, out=ms_)
            np.multiply(g_, g_, out=t_)
            np.multiply(t_, 1 - RHO, out=t_)
            np.add(ms_, t_, out=ms_)
            np.add(ms_, EPS, out=t_)
            np.sqrt(t_, out=t_)
            np.divide(g_, t_, out=t_)
            np.multiply(t_, LR, out=t_)
            np.subtract(p_, t_, out=p_)

    impls = {
        "fastnn": lambda: K.rmsprop_update(w_f, g, s_f, lr=LR, rho=RHO, epsilon=EPS),
        "numpy": numpy_rmsprop,
    }
    if torch is not None:
        impls["torch"] = _torch_optim(torch, w0, g, "rmsprop")
    return Case(
        "eltwise/optim", f"rmsprop update {n:,} params", 0.0, impls, display="time", params={"n": n}
    )


def _optim_cases(rng, sizes, torch) -> list[Case]:
    out = []
    for n in sizes:
        w0 = rng.standard_normal(n).astype(np.float32)
        g = (rng.standard_normal(n) * 1e-2).astype(np.float32)
        out += [_adam_case(w0, g, torch), _sgd_case(w0, g, torch), _rmsprop_case(w0, g, torch)]
    return out


def _torch_optim(torch, w0, g, name):
    """One step of torch's best CPU optimizer (fused Adam/SGD; foreach RMSprop)."""
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    p.grad = torch.from_numpy(g)
    if name == "adam":
        opt = torch.optim.Adam([p], lr=LR, eps=EPS, fused=True)
    elif name == "sgd":
        opt = torch.optim.SGD([p], lr=LR, momentum=MOMENTUM, fused=True)
    else:
        opt = torch.optim.RMSprop([p], lr=LR, alpha=RHO, eps=EPS, foreach=True)
    return opt.step


def _dropout_case(x, torch) -> Case:
    mask_f, y_f = np.empty(x.shape, np.uint8), np.empty_like(x)
    u, mask_n, y_n = np.empty_like(x), np.empty(x.shape, bool), np.empty_like(x)
    gen = np.random.default_rng(1)
    rate, scale = 0.5, np.float32(2.0)

    def numpy_dropout():
        gen.random(dtype=np.float32, out=u)
        np.greater_equal(u, rate, out=mask_n)
        np.multiply(x, mask_n, out=y_n)
        np.multiply(y_n, scale, out=y_n)

    def fastnn_dropout():  # the layer draws a fresh seed from its Generator per call
        K.dropout_fwd(x, mask_f, y_f, rate=rate, seed=int(gen.integers(2**63)))

    impls = {"fastnn": fastnn_dropout, "numpy": numpy_dropout}
    if torch is not None:
        tx = torch.from_numpy(x)
        impls["torch"] = lambda: torch.nn.functional.dropout(tx, rate, training=True)
    batch, units = x.shape
    return Case("eltwise/act", f"dropout fwd {batch}x{units}", 0.0, impls, display="time")


def _dropout_cases(rng, shapes, torch) -> list[Case]:
    return [_dropout_case(rng.standard_normal(shape).astype(np.float32), torch) for shape in shapes]


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(0)
    torch = _maybe_torch()
    hidden = HIDDEN_QUICK if quick else HIDDEN
    return (
        _act_cases(rng, hidden, torch)
        + _dropout_cases(rng, hidden, torch)
        + _xent_cases(rng, LOGITS_QUICK if quick else LOGITS, torch)
        + _optim_cases(rng, PARAMS_QUICK if quick else PARAMS, torch)
    )
