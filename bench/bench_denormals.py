"""Denormal (subnormal) floats: how much slower the kernels run on them than on normal floats.

x86 cores take a microcode assist (~100+ cycles) for a denormal input or result unless MXCSR's
flush-to-zero (FTZ) and denormals-are-zero (DAZ) bits are set. fastnn sets them inside its
kernels, per thread, by default (fastnn.set_flush_denormals; csrc/internal.h says how):

    python bench/bench_denormals.py            # a table: every ISA, normal vs denormal data,
                                               # with flushing (the default) and IEEE mode
    pytest bench/bench_denormals.py            # the flushing cases under pytest-benchmark

Cases: a 256^3 matmul whose A is denormal (every product and partial sum is denormal); one whose
A and B are normal but tiny (1e-20: every product underflows); a 3x3 convolution and an average
pooling of denormal images (8x32x32x32); the element-wise activations over 1 M denormal inputs.
One thread, minimum of repeated runs.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastnn
from fastnn import _config, _kernels, ops

SIZE = 256
ELEMENTS = 1 << 20
DENORMAL_SCALE = 1e-39  # N(0, 1) * 1e-39: every value below float32's tiny (1.18e-38)
ACTS = ("relu", "sigmoid", "tanh", "elu", "gelu", "softmax")


def _inputs(kind: str):
    rng = np.random.default_rng(0)
    scale = DENORMAL_SCALE if kind == "denormal" else 1.0
    tiny = 1e-20 if kind == "denormal" else 1.0  # normal, but every product underflows
    a = (rng.standard_normal((SIZE, SIZE)) * scale).astype(np.float32)
    b = rng.standard_normal((SIZE, SIZE)).astype(np.float32)
    a2, b2 = (tiny * a / scale).astype(np.float32), (tiny * b).astype(np.float32)
    x = (rng.standard_normal((ELEMENTS // 64, 64)) * scale).astype(np.float32)
    img = (rng.standard_normal((8, 32, 32, 32)) * scale).astype(np.float32)
    return a, b, a2, b2, x, img


def cases(kind: str) -> dict:
    """{name: zero-argument callable} on normal or denormal inputs."""
    a, b, a2, b2, x, img = _inputs(kind)
    out, y = np.empty((SIZE, SIZE), np.float32), np.empty_like(x)
    filt = np.random.default_rng(1).standard_normal((3, 3, 32, 64)).astype(np.float32)
    calls = {f"matmul {SIZE}^3": lambda: ops.matmul(a, b, out=out),
             "matmul underflow": lambda: ops.matmul(a2, b2, out=out)}
    if hasattr(ops, "conv2d"):
        calls["conv2d 3x3 32->64"] = lambda: ops.conv2d(img, filt, padding="same")
        calls["avg_pool2d 2x2"] = lambda: ops.avg_pool2d(img)
    for act in ACTS:
        code = _kernels.ACTIVATIONS.index(act)
        calls[f"act {act} 1M"] = lambda code=code: _kernels.act_fwd(x, y, act=code)
    return calls


def best_time(fn, repeats: int = 15) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    before = fastnn.get_num_threads(), fastnn.get_isa(), fastnn.get_flush_denormals()
    fastnn.set_num_threads(1)
    print(f"fastnn {fastnn.__version__}, 1 thread, {_config.cpu_model()}")
    print(f"{'isa':7s} {'case':18s} {'normal ms':>10s} {'denormal ms':>12s} {'ratio':>6s}"
          f" {'IEEE ms':>10s} {'ratio':>6s}")
    worst = worst_ieee = 0.0
    try:
        for isa in _config.available_isas():
            fastnn.set_isa(isa)
            normal, denormal = cases("normal"), cases("denormal")
            for name in normal:
                fastnn.set_flush_denormals(True)
                t_n, t_d = best_time(normal[name]), best_time(denormal[name])
                fastnn.set_flush_denormals(False)
                t_i = best_time(denormal[name], repeats=3)
                worst, worst_ieee = max(worst, t_d / t_n), max(worst_ieee, t_i / t_n)
                print(f"{isa:7s} {name:18s} {t_n * 1e3:10.3f} {t_d * 1e3:12.3f} "
                      f"{t_d / t_n:6.2f} {t_i * 1e3:10.3f} {t_i / t_n:6.1f}")
    finally:
        fastnn.set_num_threads(before[0])
        fastnn.set_isa(before[1])
        fastnn.set_flush_denormals(before[2])
    print(f"worst denormal / normal ratio: {worst:.2f} flushing (the default), "
          f"{worst_ieee:.1f} in IEEE mode")


@pytest.mark.parametrize("isa", _config.available_isas())
@pytest.mark.parametrize("kind", ["normal", "denormal"])
@pytest.mark.parametrize("name", list(cases("normal")))
def test_denormals(benchmark, isa, kind, name):
    before = fastnn.get_isa()
    fastnn.set_isa(isa)
    try:
        benchmark.group = f"{name} {isa}"
        benchmark(cases(kind)[name])
    finally:
        fastnn.set_isa(before)


if __name__ == "__main__":
    main()
