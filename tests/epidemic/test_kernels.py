"""The kernel's binomial sampler against the exact distribution."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from hygie.epidemic.kernels import binomial


@numba.njit
def _draws(n: float, p: float, size: int, seed: int) -> np.ndarray:
    np.random.seed(seed)
    out = np.empty(size)
    for i in range(size):
        out[i] = binomial(n, p)
    return out


@pytest.mark.parametrize("n, p", [
    (5, 0.3), (40, 0.2), (100, 0.3), (1000, 0.004), (200, 0.5), (50, 0.9), (7, 0.99),
    (1_000_000, 0.0003), (12_000_000, 0.02), (3, 1e-9),
])
def test_binomial_matches_the_exact_pmf(n: int, p: float) -> None:
    x = _draws(float(n), p, 100_000, 7)
    assert np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= n
    mean, sd = n * p, np.sqrt(n * p * (1 - p))
    ks = np.arange(max(0, int(mean - 6 * sd) - 2), min(n, int(mean + 6 * sd) + 3) + 1)
    expected = stats.binom.pmf(ks, n, p) * x.size
    observed = np.array([(x == k).sum() for k in ks])
    keep = expected > 5
    if keep.sum() < 2:  # almost surely zero: all draws must be
        assert (x == 0).mean() > 0.999
        return
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3


def test_edge_cases() -> None:
    assert binomial(0.0, 0.5) == 0.0
    assert binomial(10.0, 0.0) == 0.0
    assert binomial(10.0, 1.0) == 10.0
