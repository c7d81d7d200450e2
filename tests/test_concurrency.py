"""Threads, determinism and fork: one shared model used from 8 Python threads at once gives the
serial results bit for bit; training is bitwise reproducible whatever fastnn's thread count;
a child (and a grandchild) forked after the parent ran parallel regions computes the same
forward pass without hanging."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops

N_THREADS = 8


def _model(features=96, hidden=64, classes=10, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(hidden, activation="gelu"),
        keras.layers.Dense(classes, activation="softmax"),
    ])


def _lstm_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((7, 5)), keras.layers.LSTM(12, return_sequences=True),
                             keras.layers.LSTM(6), keras.layers.Dense(3)])


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(8, 3, activation="gelu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4),
    ])


def _run_threads(work, count=N_THREADS):
    """Runs work(i) on `count` threads released together; re-raises the first error."""
    barrier = threading.Barrier(count)
    errors = []

    def body(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("make", [_model, _lstm_model, _conv_model], ids=["dense", "lstm", "conv"])
def test_shared_model_from_8_threads_gives_serial_results(make, rng):
    """predict, predict_on_batch and __call__ on one model, matmul beside them: each thread
    gets exactly what it gets alone. Batches differ per thread (sizes too: different buffer
    shapes), so a shared scratch buffer would mix them up."""
    model = make()
    shape = model.input_shape[1:]
    inputs = [rng.standard_normal((17 + 5 * i,) + shape).astype(np.float32)
              for i in range(N_THREADS)]
    mats = [(rng.standard_normal((130, 70 + i)).astype(np.float32),
             rng.standard_normal((70 + i, 90)).astype(np.float32)) for i in range(N_THREADS)]
    want = [model.predict(x, batch_size=8, verbose=0) for x in inputs]
    want_mm = [ops.matmul(a, b) for a, b in mats]
    got = [[] for _ in range(N_THREADS)]

    def work(i):
        for rep in range(6):
            how = (i + rep) % 3
            if how == 0:
                got[i].append(model.predict(inputs[i], batch_size=8, verbose=0))
            elif how == 1:
                got[i].append(model.predict_on_batch(inputs[i]))
            else:
                got[i].append(model(inputs[i]))
            np.testing.assert_array_equal(ops.matmul(*mats[i]), want_mm[i])

    _run_threads(work)
    for i in range(N_THREADS):
        for result in got[i]:
            np.testing.assert_array_equal(result, want[i])


def _train(threads, make, x, y, loss):
    before = keras.get_num_threads()
    keras.set_num_threads(threads)
    try:
        model = make(seed=7)
        model.compile(keras.optimizers.Adam(1e-3), loss)
        keras.utils.set_random_seed(11)  # the shuffling and dropout draws
        model.fit(x, y, batch_size=256, epochs=2, verbose=0)
        return model.get_weights()
    finally:
        keras.set_num_threads(before)


@pytest.mark.parametrize("make", [_model, _lstm_model, _conv_model], ids=["dense", "lstm", "conv"])
def test_training_is_bitwise_identical_at_any_thread_count(make, rng):
    """Same seed, 1, 2 or 3 threads: the same bits (every reduction splits in a fixed way).
    Batches of 256 through 384 -> 512 make GEMMs of 50 M multiply-adds, which run on 3
    threads (10 M per thread at least, csrc/gemm.c)."""
    if make is _model:
        make = lambda seed: _model(features=384, hidden=512, seed=seed)
        x = rng.standard_normal((512, 384)).astype(np.float32)
        loss = "sparse_categorical_crossentropy"
        y = rng.integers(0, 10, 512)
    elif make is _lstm_model:
        x = rng.standard_normal((512, 7, 5)).astype(np.float32)
        y = rng.standard_normal((512, 3)).astype(np.float32)
        loss = "mse"
    else:
        x = rng.standard_normal((512, 12, 12, 3)).astype(np.float32)
        y = rng.standard_normal((512, 4)).astype(np.float32)
        loss = "mse"
    reference = _train(1, make, x, y, loss)
    for threads in (2, 3):
        for got, want in zip(_train(threads, make, x, y, loss), reference):
            np.testing.assert_array_equal(got, want)


FORK_MODEL = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import fastnn as keras
    keras.set_num_threads(2)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512, activation="relu"),
                              keras.layers.Dense(64),
                              keras.layers.Dense(10, activation="softmax")])
    seq = keras.Sequential([keras.Input((9, 4)), keras.layers.LSTM(16), keras.layers.Dense(2)])
    cnn = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(32, 3, padding="same"),
                            keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                            keras.layers.Dense(3)])
    x = np.random.default_rng(1).standard_normal((300, 256)).astype(np.float32)
    xs = np.random.default_rng(2).standard_normal((40, 9, 4)).astype(np.float32)
    xi = np.random.default_rng(4).standard_normal((64, 16, 16, 3)).astype(np.float32)
    big = np.random.default_rng(3).standard_normal((600, 600)).astype(np.float32)
    keras.ops.matmul(big, big)                  # parallel regions in the parent (2 threads)
    want, want_seq = model.predict(x, verbose=0), seq.predict(xs, verbose=0)
    want_cnn = cnn.predict(xi, batch_size=64, verbose=0)   # conv regions in the parent too

    def child(depth):
        signal.alarm(5)                         # the forward passes must finish in < 5 s
        ok = np.array_equal(model.predict(x, verbose=0), want)
        ok = ok and np.array_equal(seq.predict(xs, verbose=0), want_seq)
        ok = ok and np.array_equal(cnn.predict(xi, batch_size=64, verbose=0), want_cnn)
        ok = ok and np.array_equal(keras.ops.matmul(big, big), keras.ops.matmul(big, big))
        if depth == 1:                          # the grandchild too
            pid = os.fork()
            if pid == 0:
                os._exit(child(2))
            _, status = os.waitpid(pid, 0)
            ok = ok and os.waitstatus_to_exitcode(status) == 0
        return 0 if ok else 1

    pid = os.fork()
    if pid == 0:
        os._exit(child(1))
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status))
""")


def test_fork_after_parallel_regions_model_forward():
    """A child forked after the parent ran OpenMP regions (libgomp cannot start a team
    there) runs its forward passes on one thread: same bits, well within 5 s; so does a
    grandchild. A hang is a SIGALRM (exit -14) in the child."""
    res = subprocess.run([sys.executable, "-c", FORK_MODEL], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "child exit 0", (res.stdout, res.stderr[-3000:])
