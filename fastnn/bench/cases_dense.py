"""Dense-network cases (issue 3): a training epoch, one training step, and peak memory.

- epoch: MLP 784-512-256-10, ReLU, softmax cross-entropy, Adam (lr 1e-3), batch 128, one epoch
  of 60,000 synthetic samples (see `dataset`), shuffled.
  fastnn: Sequential.fit exactly as a Keras user writes it; numpy: NumpyMLP (_mlp_numpy.py, the
  best NumPy trainer we could write); torch: nn.Sequential + torch.optim.Adam on the same
  shuffled index batches (tensor indexing, no DataLoader: its per-sample collation would make
  torch look slower than it is).
- step: one training step of 784-512-10 on a fixed batch of 128 (fastnn: train_on_batch).
- memory: peak memory of the epoch, measured in a fresh subprocess per impl (so one impl's
  allocator caches cannot hide another's): imports, the dataset and a warm-up (the same impl
  trains a tiny 784-8-10 model for 2 batches: lazy code loading, thread pools, BLAS buffers)
  come first; then the resident-set high-water mark is
  reset (/proc/self/clear_refs = 5; where that is refused, ru_maxrss is used, which may hide a
  peak lower than the setup's), the model is built and trained for one epoch, and
  "RSS" = VmHWM - RSS before. "traced" = tracemalloc's peak over the same span, which sees
  NumPy-side allocations only (not torch's allocator nor fastnn's C workspaces): n/a for torch.
fastnn's impls are left out, with a note, while fastnn has no Sequential (issue 3 in progress).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from fastnn.bench._harness import Case, _maybe_torch
from fastnn.bench._mlp_numpy import NumpyMLP

MLP = (784, 512, 256, 10)
STEP_MLP = (784, 512, 10)
BATCH = 128
SAMPLES = 60000
SAMPLES_QUICK = 1024


def dataset(samples: int, features: int = 784, classes: int = 10, seed: int = 0):
    """Standardised features x ~ N(0, 1) and labels of a random linear teacher,
    y = argmax(x @ T): learnable, so the ReLU units stay alive as on real data. (Uniform
    pixels with random labels drive most units dead within an epoch, in NumPy and PyTorch
    alike, and the benchmark would time a degenerate network.)"""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features), dtype=np.float32)
    teacher = rng.standard_normal((features, classes), dtype=np.float32)
    y = np.argmax(x @ teacher, axis=1).astype(np.int64)
    return x, y


def train_flops(sizes, samples: int) -> float:
    """Forward + weight gradients of every layer + input gradients of all but the first."""
    macs = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    return 2.0 * samples * (2 * sum(macs) + sum(macs[1:]))


# ---- the three trainers: each returns (epoch(), step(x, y)) closures over one model ----------


def fastnn_model(sizes):
    """A compiled fastnn.Sequential, or None while fastnn has no Keras API."""
    import fastnn

    if not hasattr(fastnn, "Sequential"):
        return None
    layers = fastnn.layers
    Input = getattr(fastnn, "Input", None) or getattr(layers, "Input", None)
    stack = [Input(shape=(sizes[0],))] if Input is not None else []
    stack += [layers.Dense(u, activation="relu") for u in sizes[1:-1]]
    stack += [layers.Dense(sizes[-1], activation="softmax")]
    model = fastnn.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def fastnn_step(model, x, y):
    if hasattr(model, "train_on_batch"):
        return model.train_on_batch(x, y)
    return model.fit(x, y, epochs=1, batch_size=x.shape[0], verbose=0, shuffle=False)


def torch_model(sizes):
    torch = _maybe_torch()
    mods = []
    for i, (fan_in, units) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(torch.nn.Linear(fan_in, units))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)  # Keras' epsilon
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_epoch(step, x, y, rng):
    torch = _maybe_torch()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    order = torch.from_numpy(rng.permutation(x.shape[0]))
    for s in range(0, x.shape[0], BATCH):
        idx = order[s : s + BATCH]
        step(xt.index_select(0, idx), yt.index_select(0, idx))


def build_epoch(impl: str, x, y, sizes=MLP):
    """A callable running one epoch of a fresh MLP on (x, y) with impl (each call keeps
    training the same model), or None if impl is unavailable."""
    rng = np.random.default_rng(1)
    if impl == "fastnn":
        model = fastnn_model(sizes)
        if model is None:
            return None
        return lambda: model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    if impl == "numpy":
        mlp = NumpyMLP(sizes, BATCH, rng)
        return lambda: mlp.fit_epoch(x, y, BATCH, rng)
    if impl == "torch" and _maybe_torch() is not None:
        step = torch_model(sizes)
        return lambda: torch_epoch(step, x, y, rng)
    return None


# ---- peak memory, one subprocess per impl --------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM")


def memory_child(impl: str, samples: int, threads: int) -> dict:
    """Runs in a fresh interpreter: peak bytes of building + one epoch (see the docstring)."""
    import gc
    import resource
    import tracemalloc

    import fastnn
    from fastnn.bench._harness import pinned_threads

    x, y = dataset(samples)
    with pinned_threads(threads, with_torch=(impl == "torch")):
        # warm-up: a tiny model trains for 2 batches, so lazy initialisation (code pages,
        # thread pools, BLAS buffers) is not counted as the epoch's memory
        small = np.ones((64, 64), np.float32)
        np.matmul(small, small)
        fastnn.ops.matmul(small, small)
        build_epoch(impl, x[: 2 * BATCH], y[: 2 * BATCH], sizes=(MLP[0], 8, MLP[-1]))()
        gc.collect()
        before = _rss_bytes()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            method = "VmHWM reset"
        except OSError:
            method = "ru_maxrss (setup peak not reset)"
        tracemalloc.start()
        build_epoch(impl, x, y)()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if method == "VmHWM reset":
            peak = _hwm_bytes()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "rss": max(0, peak - before),
        "traced": None if impl == "torch" else traced,
        "method": method,
    }


def _run_memory_child(impl: str, samples: int, threads: int) -> dict:
    import fastnn

    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        "-m",
        "fastnn.bench.cases_dense",
        "--memory",
        impl,
        "--samples",
        str(samples),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child for {impl} failed:\n{proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_cases(samples: int, impl_names) -> list[Case]:
    """Two rows (RSS, traced) sharing one child run per (impl, thread count)."""
    from fastnn import get_num_threads

    cache: dict = {}

    def measure(impl, key):
        def run():
            slot = (impl, get_num_threads())
            if slot not in cache:
                cache[slot] = _run_memory_child(impl, samples, slot[1])
            return cache[slot][key]

        return run

    name = f"epoch peak memory, {samples} samples"
    return [
        Case("dense", f"{name}: RSS", 0, {k: measure(k, "rss") for k in impl_names}, kind="memory"),
        Case(
            "dense",
            f"{name}: traced",
            0,
            {k: measure(k, "traced") for k in impl_names},
            kind="memory",
        ),
    ]


def cases(quick: bool) -> list[Case]:
    samples = SAMPLES_QUICK if quick else SAMPLES
    x, y = dataset(samples)
    epoch = {}
    for impl in ("fastnn", "numpy", "torch"):
        fn = build_epoch(impl, x, y)
        if fn is not None:
            epoch[impl] = fn
    note = "" if "fastnn" in epoch else "fastnn.Sequential not available yet: fastnn skipped"
    out = [
        Case(
            "dense",
            f"epoch MLP {'-'.join(map(str, MLP))} b{BATCH} {samples} samples",
            train_flops(MLP, samples),
            epoch,
            display="time",
            min_repeats=1 if quick else 3,
            note=note,
        )
    ]

    xs, ys = x[:BATCH].copy(), y[:BATCH].copy()
    step_impls = {}
    model = fastnn_model(STEP_MLP)
    if model is not None:
        step_impls["fastnn"] = lambda: fastnn_step(model, xs, ys)
    mlp = NumpyMLP(STEP_MLP, BATCH, np.random.default_rng(2))
    step_impls["numpy"] = lambda: mlp.step(xs, ys)
    if _maybe_torch() is not None:
        torch = _maybe_torch()
        tstep = torch_model(STEP_MLP)
        xt, yt = torch.from_numpy(xs), torch.from_numpy(ys)
        step_impls["torch"] = lambda: tstep(xt, yt)
    out.append(
        Case(
            "dense",
            f"step MLP {'-'.join(map(str, STEP_MLP))} b{BATCH}",
            train_flops(STEP_MLP, BATCH),
            step_impls,
            display="time",
            note=note,
        )
    )
    if sys.platform.startswith("linux"):
        out += memory_cases(samples, list(epoch))
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="peak-memory child of the dense cases")
    p.add_argument("--memory", required=True, choices=("fastnn", "numpy", "torch"))
    p.add_argument("--samples", type=int, default=SAMPLES)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    print(json.dumps(memory_child(a.memory, a.samples, a.threads)))
