"""Exact confidence interval for lambda by inverting the RLRT (lambda0 > 0).

Oracle: in the balanced one-way model the REML profile depends on the data
only through F = MSB/MSW, and F / (1 + J lambda) ~ F(K-1, n-K).  With u = 1 +
J lambda the profiled REML criterion is g(u) = (n-1) log(a F / u + b) + a log u
(a = K-1, b = n-K, SSW scaled to b), minimised at u = max(F, 1).  So the exact
p-value of RLRT(lambda0) is an F-distribution probability of two tails, and
the exact interval {lambda0 : p(lambda0) > alpha} follows by root finding.
"""

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import f as fdist

import vctest

NSIM = 20_000


def _g(f, u, a, b):
    return (a + b) * np.log(a * f / u + b) + a * np.log(u)


def _rlrt(f, u0, a, b):
    return _g(f, u0, a, b) - _g(f, max(f, 1.0), a, b)


def exact_pvalue(f_obs, lam0, k, j):
    a, b = k - 1, k * j - k
    u0 = 1.0 + j * lam0
    r_obs = _rlrt(f_obs, u0, a, b)
    if r_obs <= 0:
        return 1.0

    def r_of_x(x):  # x = F / u0 ~ F(a, b) under H0
        return _rlrt(u0 * x, u0, a, b) - r_obs

    lo = 0.0 if r_of_x(1e-300) < 0 else brentq(r_of_x, 1e-300, 1.0, xtol=1e-14)
    hi = brentq(r_of_x, 1.0, 1e12, xtol=1e-12)
    return float(fdist.cdf(lo, a, b) + fdist.sf(hi, a, b))


def exact_interval(f_obs, k, j, level):
    alpha = 1 - level
    est = max(f_obs - 1, 0) / j
    p = lambda lam: exact_pvalue(f_obs, lam, k, j) - alpha  # noqa: E731
    lower = 0.0 if p(0.0) > 0 else brentq(p, 0.0, est, xtol=1e-12)
    upper = brentq(p, est + 1e-9, 1e6, xtol=1e-12)
    return lower, upper


def slope(f_obs, lam, k, j):
    h = 1e-4 * max(lam, 1e-3)
    return (exact_pvalue(f_obs, lam + h, k, j) - exact_pvalue(f_obs, lam - h, k, j)) / (2 * h)


def _f_statistic(data, k, j):
    y = data["Yield"].to_numpy(float)
    groups = data["Batch"].cat.codes.to_numpy()
    means = np.array([y[groups == g].mean() for g in range(k)])
    msb = j * np.sum((means - y.mean()) ** 2) / (k - 1)
    msw = np.sum((y - means[groups]) ** 2) / (k * j - k)
    return msb / msw


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_dyestuff_interval_matches_exact_oracle(level):
    k, j = 6, 5
    data = vctest.datasets.load("Dyestuff")
    f_obs = _f_statistic(data, k, j)
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", data, term="(1 | Batch)", nsim=1000, seed=4)
    ci = res.confint(level=level, nsim=NSIM)
    lo, hi = exact_interval(f_obs, k, j, level)
    assert ci.estimate == pytest.approx((f_obs - 1) / j, rel=1e-4)
    se = math.sqrt((1 - level) * level / NSIM)
    for got, want in ((ci.lower, lo), (ci.upper, hi)):
        tol = 4 * se / abs(slope(f_obs, want, k, j)) + 2e-3 * want
        assert abs(got - want) < tol, (got, want, tol)
    assert ci.icc == pytest.approx((ci.lower / (1 + ci.lower), ci.upper / (1 + ci.upper)))


def test_dyestuff2_interval_starts_at_zero():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff2", term="(1 | Batch)",
                         nsim=1000, seed=4)
    ci = res.confint(nsim=5_000)
    assert ci.lower == 0.0 and ci.estimate == 0.0
    assert 0.0 < ci.upper < math.inf


def test_confint_level_checked():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=1000, seed=4)
    with pytest.raises(ValueError, match="`level`"):
        res.confint(level=1.5)


def test_oracle_is_consistent_with_the_test_at_zero():
    # p(0) of the oracle equals the exact test p-value of prior-art (0.0043975)
    data = vctest.datasets.load("Dyestuff")
    assert exact_pvalue(_f_statistic(data, 6, 5), 0.0, 6, 5) == pytest.approx(0.0043975,
                                                                                abs=5e-7)
