"""Ctrl-C during a long fit: a real SIGINT sent to a child process running fit returns control
(KeyboardInterrupt) quickly, between two steps, and leaves the model usable: it predicts
finite values and trains on. The latency is printed (pytest -s); the assertion allows 5 s so a
loaded CI machine cannot make it flaky, while a fit that ignores the signal would run for
minutes."""

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastnn as keras

    kind = sys.argv[1]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if kind == "dense":
        x = rng.standard_normal((8192, 128)).astype(np.float32)
        model = keras.Sequential([keras.Input((128,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
    else:
        x = rng.standard_normal((2048, 20, 8)).astype(np.float32)
        model = keras.Sequential([keras.Input((20, 8)), keras.layers.LSTM(32),
                                  keras.layers.Dense(10, activation="softmax")])
    y = rng.integers(0, 10, len(x))
    model.compile("adam", "sparse_categorical_crossentropy")

    class Announce(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3 and self.params.get("announced") is None:
                self.params["announced"] = True
                print("fitting", flush=True)

    try:
        model.fit(x, y, epochs=10000, batch_size=32, verbose=0, callbacks=[Announce()])
        print("fit finished without an interrupt", flush=True)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    out = model.predict(x[:64], verbose=0)
    assert np.isfinite(out).all(), "non-finite predictions after the interrupt"
    before = model.get_weights()
    model.fit(x[:64], y[:64], epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    print("usable", flush=True)
""")


def _readline(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else None


@pytest.mark.parametrize("kind", ["dense", "lstm"])
def test_sigint_during_fit_returns_quickly_and_leaves_the_model_usable(kind):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        assert _readline(proc, 120) == "fitting", proc.stderr.read() if proc.poll() else ""
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        line = _readline(proc, 60)
        latency = time.perf_counter() - sent
        assert line == "interrupted", f"after SIGINT the child printed {line!r}"
        print(f"\n{kind}: control returned {latency * 1e3:.1f} ms after SIGINT")
        assert latency < 5.0, f"control returned only {latency:.2f} s after SIGINT"
        assert _readline(proc, 120) == "usable"
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
