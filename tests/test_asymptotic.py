"""Tests of the chi-bar-square references (``vctest.nulls.asymptotic``).

Targets: prior-art §e (E2 Dyestuff mixture p-values, E5 varTestnlme vignette,
E6 orthant weights) and a Monte Carlo projection check of the weights with a
4-SE tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import nnls
from scipy.stats import chi2

from vctest.nulls.asymptotic import (
    chibar_pvalue,
    chibar_weights_orthant,
    mixture_50_50,
    mixture_slope,
)


def test_point_mass_semantics():
    assert chibar_pvalue(0.0, [1.0], [0]) == 1.0
    assert chibar_pvalue(0.5, [1.0], [0]) == 0.0
    assert chibar_pvalue(1e-9, [0.5, 0.5], [0, 1]) == 1.0  # counts as 0
    assert chibar_pvalue(-1e-12, [0.5, 0.5], [1, 2]) == 1.0
    assert chibar_pvalue(2.0, [0.5, 0.5], [0, 1]) == pytest.approx(0.5 * chi2.sf(2.0, 1))


def test_mixture_50_50_values():
    # 95% point of the 50:50 mixture is the chi2(1) 90% point
    assert mixture_50_50(float(chi2.ppf(0.9, 1))) == pytest.approx(0.05, rel=1e-12)
    # prior-art E2 (Dyestuff RLRT and LRT), E5 (cbpp GLMM)
    assert mixture_50_50(6.36896) == pytest.approx(0.00581, abs=5e-6)
    assert mixture_50_50(6.36895531362114) == pytest.approx(0.00580669721772698, rel=1e-9)
    assert mixture_50_50(5.40283) == pytest.approx(0.01005, abs=5e-6)
    assert mixture_50_50(14.00527) == pytest.approx(9.11e-05, abs=5e-8)
    # E5: uncorrelated slope: 0.5 chi2(0) + 0.5 chi2(1)
    assert mixture_50_50(0.53041) == pytest.approx(0.23322, abs=5e-6)
    # Dyestuff2: the observed 5.7e-14 counts as zero -> p = 1 (R's formula gives ~0.5)
    assert mixture_50_50(5.6843418860808e-14) == 1.0
    assert isinstance(mixture_50_50(1.0), float)


def test_mixture_slope_values():
    # E5: Orthodont correlated slope, nlme LRT 0.83311 -> p = 0.51035.  Both are
    # printed to 5 decimals: +-5e-6 on the output plus |dp/dt| * 5e-6 ~ 1.6e-6
    # from the rounded input.
    assert mixture_slope(0.83311) == pytest.approx(0.51035, abs=5e-6 + 2e-6)
    assert mixture_slope(0.0) == 1.0
    t = 3.0
    assert mixture_slope(t) == pytest.approx(0.5 * chi2.sf(t, 1) + 0.5 * chi2.sf(t, 2))


def test_weights_two_dim_closed_form():
    w = chibar_weights_orthant([[1.0, 0.5], [0.5, 1.0]])
    assert w == pytest.approx((1 / 6, 0.5, 1 / 3), abs=1e-14)
    assert chibar_weights_orthant(np.diag([2.0, 9.0])) == pytest.approx((0.25, 0.5, 0.25))
    # scale invariance (covariance vs correlation)
    w2 = chibar_weights_orthant([[4.0, 1.0], [1.0, 1.0]])
    assert w2 == pytest.approx(chibar_weights_orthant([[1.0, 0.5], [0.5, 1.0]]))


def test_weights_three_dim_e6():
    assert chibar_weights_orthant(np.eye(3)) == pytest.approx((1 / 8, 3 / 8, 3 / 8, 1 / 8))
    v = [[1, 0.5, 0.2], [0.5, 1, 0.3], [0.2, 0.3, 1]]
    w = chibar_weights_orthant(v)
    assert w == pytest.approx((0.0622, 0.2931, 0.4378, 0.2069), abs=5e-5)
    assert sum(w) == pytest.approx(1.0)
    assert all(isinstance(x, float) for x in w)


def _projection_weights(v: np.ndarray, nsim: int, seed: int) -> np.ndarray:
    """P(k positive components) of the V^-1-metric projection of N(0, V) onto the orthant."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(v)
    linv = np.linalg.inv(chol)
    counts = np.zeros(v.shape[0] + 1)
    for z in rng.standard_normal((nsim, v.shape[0])) @ chol.T:
        theta, _ = nnls(linv, linv @ z)
        counts[int(np.count_nonzero(theta > 1e-12))] += 1
    return counts / nsim


@pytest.mark.parametrize(
    "v",
    [
        np.array([[1.0, -0.6], [-0.6, 1.0]]),
        np.array([[1, 0.5, 0.2], [0.5, 1, 0.3], [0.2, 0.3, 1]], dtype=float),
        np.array([[2.0, -0.8, 0.3], [-0.8, 1.0, 0.4], [0.3, 0.4, 1.5]]),
    ],
)
def test_weights_match_monte_carlo_projection(v):
    nsim = 20_000
    mc = _projection_weights(v, nsim, seed=11)
    w = np.asarray(chibar_weights_orthant(v))
    se = np.sqrt(w * (1 - w) / nsim)
    assert np.all(np.abs(mc - w) < 4 * se)


@pytest.mark.parametrize(
    ("cov", "match"),
    [
        (np.ones((2, 3)), "square matrix"),
        (np.ones(3), "square matrix"),
        ([[1.0, 0.5], [0.4, 1.0]], "symmetric"),
        ([[1.0, 2.0], [2.0, 1.0]], "positive definite"),
        ([[1.0, np.nan], [np.nan, 1.0]], "finite"),
    ],
)
def test_weights_validation(cov, match):
    with pytest.raises(ValueError, match=match):
        chibar_weights_orthant(cov)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((np.nan, [1.0], [1]), ValueError, "stat"),
        ((math.inf, [1.0], [1]), ValueError, "stat"),
        (("1", [1.0], [1]), TypeError, "stat"),
        ((1.0, [0.5, 0.4], [0, 1]), ValueError, "sum to 1"),
        ((1.0, [1.5, -0.5], [0, 1]), ValueError, "non-negative"),
        ((1.0, [0.5, 0.5], [0]), ValueError, "equal length"),
        ((1.0, [], []), ValueError, "non-empty"),
        ((1.0, [1.0], [-1]), ValueError, "dfs"),
        ((1.0, [1.0], [np.nan]), ValueError, "finite"),
    ],
)
def test_chibar_pvalue_validation(args, exc, match):
    with pytest.raises(exc, match=match):
        chibar_pvalue(*args)


def test_chibar_pvalue_general_mixture():
    w = chibar_weights_orthant(np.eye(3))
    t = 4.2
    expected = sum(wk * chi2.sf(t, k) for k, wk in enumerate(w) if k > 0)
    assert chibar_pvalue(t, w, range(4)) == pytest.approx(expected, rel=1e-12)
    assert isinstance(chibar_pvalue(t, w, range(4)), float)
