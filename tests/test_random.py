"""Tests of the pure-function xoshiro256** generator in ``vctest.kernels.random``.

Statistical checks use fixed seeds and tolerances of 4 Monte Carlo standard
errors (moments) or a KS p-value above 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vctest.kernels import random as rnd

MASK = (1 << 64) - 1
N = 200_000


def _splitmix64(x: int) -> tuple[int, int]:
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return x, z ^ (z >> 31)


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK


def _reference_xoshiro(seed: int, count: int) -> list[int]:
    """Pure-Python splitmix64 seeding + xoshiro256** (Blackman & Vigna)."""
    s = []
    x = seed
    for _ in range(4):
        x, z = _splitmix64(x)
        s.append(z)
    out = []
    for _ in range(count):
        out.append((_rotl((s[1] * 5) & MASK, 7) * 9) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
    return out


def test_splitmix64_known_value():
    # splitmix64 from state 0: first output 0xE220A8397B1DCDAF (Vigna's reference code)
    _, z = rnd.splitmix64(np.uint64(0))
    assert int(z) == 0xE220A8397B1DCDAF
    assert _splitmix64(0)[1] == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 + 17, 2**64 - 1])
def test_xoshiro_matches_pure_python(seed):
    out = np.empty(20, dtype=np.uint64)
    rnd.fill_u64(np.uint64(seed), out)
    assert [int(v) for v in out] == _reference_xoshiro(seed, 20)


def test_seed_state_matches_splitmix():
    state = np.empty(4, dtype=np.uint64)
    rnd.seed_state(np.uint64(99), state)
    x, expected = 99, []
    for _ in range(4):
        x, z = _splitmix64(x)
        expected.append(z)
    assert [int(v) for v in state] == expected


def test_next_u64_advances_state_in_place():
    state = np.empty(4, dtype=np.uint64)
    rnd.seed_state(np.uint64(7), state)
    first = int(rnd.next_u64(state))
    second = int(rnd.next_u64(state))
    assert [first, second] == _reference_xoshiro(7, 2)


def test_uniform_is_top_53_bits_in_open_interval():
    raw = np.empty(1000, dtype=np.uint64)
    rnd.fill_u64(np.uint64(5), raw)
    u = np.empty(1000)
    rnd.fill_uniform(np.uint64(5), u)
    expected = ((raw >> np.uint64(11)).astype(float) + 0.5) * 2.0**-53
    assert np.array_equal(u, expected)
    assert u.min() > 0.0 and u.max() < 1.0


def test_determinism_and_seed_sensitivity():
    a, b, c = np.empty(100), np.empty(100), np.empty(100)
    rnd.fill_chisquare(np.uint64(3), 5.0, a)
    rnd.fill_chisquare(np.uint64(3), 5.0, b)
    rnd.fill_chisquare(np.uint64(4), 5.0, c)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def _check_moments(x, mean, var, fourth_central=None):
    """Mean and variance within 4 standard errors."""
    n = x.size
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / n)
    if fourth_central is not None:
        se_var = math.sqrt((fourth_central - var**2) / n)
        assert abs(x.var() - var) < 4 * se_var


def test_uniform_moments_and_ks():
    u = np.empty(N)
    rnd.fill_uniform(np.uint64(2024), u)
    _check_moments(u, 0.5, 1 / 12, 1 / 80)
    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_standard_normal_moments_and_ks():
    z = np.empty(N)
    rnd.fill_normal(np.uint64(2025), z)
    _check_moments(z, 0.0, 1.0, 3.0)
    assert stats.kstest(z, "norm").pvalue > 1e-4


@pytest.mark.parametrize("shape", [0.3, 0.5, 1.0, 2.5, 8.5, 80.5])
def test_gamma_moments_and_ks(shape):
    x = np.empty(N)
    rnd.fill_gamma(np.uint64(31), shape, x)
    # Gamma(k): variance k, fourth central moment 3k^2 + 6k
    _check_moments(x, shape, shape, 3 * shape**2 + 6 * shape)
    assert x.min() >= 0.0
    assert stats.kstest(x, stats.gamma(shape).cdf).pvalue > 1e-4


@pytest.mark.parametrize("df", [1.0, 2.0, 3.0, 17.0, 161.0, 0.7])
def test_chisquare_moments_and_ks(df):
    x = np.empty(N)
    rnd.fill_chisquare(np.uint64(77), df, x)
    # chi2(k): variance 2k, fourth central moment 12k^2 + 48k
    _check_moments(x, df, 2 * df, 12 * df**2 + 48 * df)
    assert stats.kstest(x, stats.chi2(df).cdf).pvalue > 1e-4


def test_chisquare_and_gamma_degenerate():
    x = np.empty(10)
    rnd.fill_chisquare(np.uint64(1), 0.0, x)
    assert np.all(x == 0.0)
    rnd.fill_gamma(np.uint64(1), 0.0, x)
    assert np.all(x == 0.0)


def test_chisquare_zero_df_consumes_no_numbers():
    state = np.empty(4, dtype=np.uint64)
    rnd.seed_state(np.uint64(11), state)
    before = state.copy()
    assert rnd.chisquare(state, 0.0) == 0.0
    assert np.array_equal(state, before)


def _chi2_gof_pvalue(x, pmf):
    """Pearson goodness of fit of integer draws to ``pmf`` (cells with expectation > 5)."""
    k = np.arange(x.min(), x.max() + 1)
    observed = np.bincount(x - x.min())
    expected = x.size * pmf(k)
    keep = expected > 5
    other_obs = x.size - observed[keep].sum()
    other_exp = x.size - expected[keep].sum()
    stat = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    df = int(keep.sum()) - 1
    if other_exp > 5:
        stat += (other_obs - other_exp) ** 2 / other_exp
        df += 1
    return stats.chi2.sf(stat, df)


# small n p (inversion), the split by Beta order statistics (large n p), p > 1/2 (the flip)
@pytest.mark.parametrize(("n", "p"), [(1, 0.3), (10, 0.5), (34, 0.1), (7, 0.999),
                                      (200, 0.7), (5000, 0.01), (100_000, 0.4)])
def test_binomial_moments_and_goodness_of_fit(n, p):
    x = np.empty(N, dtype=np.int64)
    rnd.fill_binomial(np.uint64(41), n, p, x)
    var = n * p * (1 - p)
    # Binomial: fourth central moment n p q (1 + 3 (n - 2) p q)
    _check_moments(x.astype(float), n * p, var, var * (1 + 3 * (n - 2) * p * (1 - p)))
    assert x.min() >= 0 and x.max() <= n
    assert _chi2_gof_pvalue(x, lambda k: stats.binom.pmf(k, n, p)) > 1e-4


@pytest.mark.parametrize("mu", [0.01, 0.5, 3.0, 15.9, 16.1, 40.0, 1000.0, 1e6])
def test_poisson_moments_and_goodness_of_fit(mu):
    x = np.empty(N, dtype=np.int64)
    rnd.fill_poisson(np.uint64(43), mu, x)
    # Poisson: variance mu, fourth central moment mu (1 + 3 mu)
    _check_moments(x.astype(float), mu, mu, mu * (1 + 3 * mu))
    assert x.min() >= 0
    assert _chi2_gof_pvalue(x, lambda k: stats.poisson.pmf(k, mu)) > 1e-4


def test_binomial_and_poisson_degenerate():
    x = np.empty(10, dtype=np.int64)
    for n, p, want in [(0, 0.5, 0), (5, 0.0, 0), (5, 1.0, 5)]:
        rnd.fill_binomial(np.uint64(1), n, p, x)
        assert np.all(x == want)
    rnd.fill_poisson(np.uint64(1), 0.0, x)
    assert np.all(x == 0)
