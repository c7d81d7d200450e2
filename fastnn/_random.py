"""The seed root of every random draw in fastnn.

No module keeps a hidden global Generator. Each consumer (an initializer without a seed, a
Dropout layer, a model's shuffling) asks `make_generator()` once for its own Generator, spawned
from one `np.random.SeedSequence`. `fastnn.utils.set_random_seed(n)` resets that root, so a
script that seeds first and then builds and trains in the same order gets the same bits.
"""

from __future__ import annotations

import numpy as np

_root = np.random.SeedSequence()  # OS entropy until set_seed() is called


def set_seed(seed: int) -> None:
    """Restart the seed root: later `make_generator()` calls repeat the same sequence."""
    global _root
    _root = np.random.SeedSequence(seed)


def make_generator() -> np.random.Generator:
    """A new independent Generator, the next child of the seed root."""
    return np.random.Generator(np.random.PCG64(_root.spawn(1)[0]))


def generator_from_seed(seed: int | None) -> np.random.Generator:
    """Generator(PCG64(seed)) for an explicit integer seed, else `make_generator()`."""
    if seed is None:
        return make_generator()
    return np.random.Generator(np.random.PCG64(seed))
