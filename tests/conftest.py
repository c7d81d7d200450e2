"""Shared fixtures: every kernel test runs on each ISA this CPU has and on 1 and 4 threads."""

import numpy as np
import pytest

import fastnn
from fastnn import _config


@pytest.fixture(params=_config.available_isas())
def isa(request):
    """Selects one ISA for the test, then restores the previous one."""
    before = fastnn.get_isa()
    fastnn.set_isa(request.param)
    yield request.param
    fastnn.set_isa(before)


@pytest.fixture(params=[1, 4])
def n_threads(request):
    """Runs the test with 1 and with 4 threads (more threads than cores is legal)."""
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seed root, so failures reproduce."""
    fastnn.utils.set_random_seed(1234)


def make_blobs(rng, n=600, dims=20, classes=10, spread=0.3):
    """Linearly separable Gaussian blobs: (x float32 (n, dims), integer labels (n,))."""
    centers = rng.standard_normal((classes, dims)) * 2.0
    labels = rng.integers(0, classes, n)
    x = centers[labels] + spread * rng.standard_normal((n, dims))
    return x.astype(np.float32), labels


@pytest.fixture
def blobs(rng):
    return make_blobs(rng)
