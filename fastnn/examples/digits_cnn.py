"""Train a small CNN on the UCI digits shipped with fastnn; print test accuracy and epoch time.

    python -m fastnn.examples.digits_cnn [--epochs 40] [--batch-size 32] [--seed 0] [--verbose 2]

The data is fixed: 1,437 training and 360 test 8x8 images (fastnn.datasets.digits, seed 113),
fed as (8, 8, 1) NHWC images.
"""

from __future__ import annotations

import argparse
import statistics
import time

import fastnn as keras


def build_model() -> keras.Sequential:
    """Conv(32, 3x3, relu) -> MaxPool 2 -> Conv(64, 3x3, relu) -> MaxPool 2 -> Flatten ->
    Dropout -> Dense(10, softmax), 'same' padding. Over seeds 0-5 it reached 97.8-98.3% test
    accuracy in 40 epochs (30 epochs: 97.2-98.1%)."""
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def main(argv=None) -> float:
    """Run the example; returns the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    x_train = (x_train / 16.0).reshape(-1, 8, 8, 1)
    x_test = (x_test / 16.0).reshape(-1, 8, 8, 1)

    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    if args.verbose:
        model.summary()
    starts, durations = [], []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: durations.append(time.perf_counter() - starts[-1]),
    )
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=args.verbose,
        callbacks=[timer],
    )
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"digits CNN: {len(x_train)} train / {len(x_test)} test images, {args.epochs} epochs")
    print(f"test accuracy: {accuracy:.4f}  test loss: {loss:.4f}")
    if durations:
        print(
            f"time per epoch: {1e3 * statistics.median(durations):.1f} ms median, "
            f"{1e3 * sum(durations) / len(durations):.1f} ms mean"
        )
    return accuracy


if __name__ == "__main__":
    main()
