"""Inverted dropout with counter-based masks (csrc/dropout.c): every ISA, 1 and 4 threads."""

import numpy as np
import pytest

import fastnn
from fastnn import _kernels as K

SIZES = (0, 1, 2, 7, 17, 64, 65, 1031, 300007)


def run(x, rate, seed):
    mask = np.empty(x.shape, np.uint8)
    y = K.dropout_fwd(x, mask, rate=rate, seed=seed)
    return mask, y


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_forward_and_backward(isa, n_threads, rng, n, rate):
    x = rng.standard_normal(n).astype(np.float32)
    mask, y = run(x, rate, 12345)
    assert set(np.unique(mask)) <= {0, 1}
    scale = np.float32(1.0 / (1.0 - np.float32(rate)))
    np.testing.assert_array_equal(y, x * mask.astype(np.float32) * scale)
    dy = rng.standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(
        K.dropout_bwd(dy, mask, rate=rate), dy * mask.astype(np.float32) * scale
    )
    if rate == 0.0:
        assert mask.all() and np.array_equal(y, x)


def test_mask_depends_only_on_seed_and_index(rng):
    """Same (seed, index), same decision: for every ISA, thread count and array length."""
    x = np.ones(300007, np.float32)
    before = fastnn.get_num_threads(), fastnn.get_isa()
    masks = []
    try:
        for isa in fastnn._config.available_isas():
            for nt in (1, 2, 3, 4):
                fastnn.set_isa(isa)
                fastnn.set_num_threads(nt)
                masks.append(run(x, 0.3, 2**64 - 5)[0])
    finally:
        fastnn.set_num_threads(before[0])
        fastnn.set_isa(before[1])
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])
    np.testing.assert_array_equal(run(x[:1001], 0.3, 2**64 - 5)[0], masks[0][:1001])


def test_keep_rate_and_independence():
    n = 1_000_000
    x = np.ones(n, np.float32)
    for rate in (0.1, 0.5, 0.8):
        mask = run(x, rate, 7)[0].astype(np.float64)
        keep = 1 - rate
        sigma = np.sqrt(keep * rate / n)
        assert abs(mask.mean() - keep) < 5 * sigma, (rate, mask.mean())
        # neighbours (same and adjacent 64-bit words) and the next seed are uncorrelated
        for lag in (1, 2, 3, 64):
            c = np.corrcoef(mask[:-lag], mask[lag:])[0, 1]
            assert abs(c) < 5 / np.sqrt(n), (rate, lag, c)
        other = run(x, rate, 8)[0].astype(np.float64)
        assert abs(np.corrcoef(mask, other)[0, 1]) < 5 / np.sqrt(n)


def test_nan_and_in_place(isa, rng):
    x = rng.standard_normal(100).astype(np.float32)
    x[::7] = np.nan
    mask, y = run(x, 0.5, 3)
    assert np.isnan(y[::7]).all(), "x * 0 keeps NaN, as x * mask does"
    same = x.copy()
    assert K.dropout_fwd(same, np.empty(100, np.uint8), same, rate=0.5, seed=3) is same
    np.testing.assert_array_equal(same, y)
    dy = rng.standard_normal(100).astype(np.float32)
    expected = K.dropout_bwd(dy, mask, rate=0.5)
    assert K.dropout_bwd(dy, mask, dy, rate=0.5) is dy
    np.testing.assert_array_equal(dy, expected)


def test_multi_dim_and_numpy_seed(rng):
    x = rng.standard_normal((4, 33)).astype(np.float32)
    seed = np.random.default_rng(1).integers(0, 2**63, dtype=np.int64)
    m1, y1 = run(x, 0.25, seed)
    m2, _ = run(x.reshape(-1), 0.25, int(seed))
    np.testing.assert_array_equal(m1.reshape(-1), m2)
    assert y1.shape == (4, 33)


def test_errors():
    x = np.zeros(8, np.float32)
    m = np.zeros(8, np.uint8)
    with pytest.raises(ValueError, match=r"dropout_fwd: rate must be in \[0, 1\), received 1.0"):
        K.dropout_fwd(x, m, rate=1.0, seed=0)
    with pytest.raises(ValueError, match=r"dropout_bwd: rate must be in \[0, 1\), received -0.1"):
        K.dropout_bwd(x, m, rate=-0.1)
    with pytest.raises(ValueError, match=r"dropout_fwd: seed must be in \[0, 2\*\*64\)"):
        K.dropout_fwd(x, m, rate=0.5, seed=-1)
    with pytest.raises(TypeError, match="dropout_fwd: seed must be an int, received float"):
        K.dropout_fwd(x, m, rate=0.5, seed=1.5)
    with pytest.raises(TypeError, match="dropout_fwd: mask must be uint8, received bool"):
        K.dropout_fwd(x, m.astype(bool), rate=0.5, seed=0)
    with pytest.raises(ValueError, match=r"dropout_fwd: mask must have the shape of x"):
        K.dropout_fwd(x, m[:7], rate=0.5, seed=0)
    with pytest.raises(ValueError, match="dropout_fwd: mask must be writeable"):
        ro = np.zeros(8, np.uint8)
        ro.flags.writeable = False
        K.dropout_fwd(x, ro, rate=0.5, seed=0)
    with pytest.raises(ValueError, match="dropout_fwd: x and mask overlap in memory"):
        buf = np.zeros(64, np.uint8)
        K.dropout_fwd(buf[:32].view(np.float32), buf[:8], rate=0.5, seed=0)
    with pytest.raises(ValueError, match="dropout_bwd: out overlaps input 0"):
        big = np.zeros(16, np.float32)
        K.dropout_bwd(big[:8], m, big[4:12], rate=0.5)
