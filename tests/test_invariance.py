"""The one engine is numerically invariant to the user's units (hypothesis and fixed cases).

Shifting a Gaussian response by up to 1e9, or scaling it by 1e-6 .. 1e6, changes
nothing but units: the criterion moves by exactly ``(n - p) log k^2`` (REML) or
``n log k^2`` (ML) under a scale ``k`` and not at all under a shift; theta and
the test statistics stay.  Shifting a GLMM's offset by a constant changes only
the intercept.  lme4 behaves so; vctest's earlier engine drifted from +1e4
(cross-products of an uncentred response lost the digits that matter).
"""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vctest

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SLEEP = vctest.datasets.load("sleepstudy")
# multiples of 1/64: (Reaction + c) * 2**j is then exact in float64 for integers
# |c| <= 1e9 (45 bits), so the shifted and scaled data are the same data in other units
# and any difference is the engine's
EXACT = SLEEP.assign(Reaction=np.round(SLEEP.Reaction * 64) / 64)
FORMULAS = ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"]
REFERENCE = {(f, reml): vctest.fit(f, EXACT, reml=reml) for f in FORMULAS
             for reml in (True, False)}


def _units(fit, k: float, reml: bool) -> float:
    n, p = fit.nobs, fit.model.p
    return (n - p if reml else n) * math.log(k * k)


@SETTINGS
@given(formula=st.sampled_from(FORMULAS), shift=st.integers(-10**9, 10**9),
       power=st.integers(-20, 20), reml=st.booleans())
def test_lmm_response_shift_and_scale_change_only_units(formula, shift, power, reml):
    k = 2.0 ** power  # 1e-6 .. 1e6
    ref = REFERENCE[formula, reml]
    y = (EXACT.Reaction + shift) * k
    assert np.array_equal(y / k - shift, EXACT.Reaction)  # the data are exact
    fit = vctest.fit(formula, EXACT.assign(Reaction=y), reml=reml)
    assert fit.converged
    assert fit.objective - _units(fit, k, reml) == pytest.approx(ref.objective, rel=1e-8)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-4, atol=1e-6)
    assert fit.sigma == pytest.approx(ref.sigma * k, rel=1e-5)
    assert fit.beta["Days"] == pytest.approx(ref.beta["Days"] * k, rel=1e-5)
    assert fit.beta["(Intercept)"] == pytest.approx((ref.beta["(Intercept)"] + shift) * k,
                                                    rel=1e-9, abs=1e-5 * k)


@pytest.mark.parametrize("shift", [1e6, 1e9])
def test_lmm_statistics_survive_a_huge_shift(shift):
    data = SLEEP.assign(Reaction=SLEEP.Reaction + shift)
    # the earlier engine: 1744.38 at +1e6 (not converged), FloatingPointError at +1e9
    fit = vctest.fit(FORMULAS[0], data)
    assert fit.converged and fit.objective == pytest.approx(1743.6282719584, rel=1e-9)
    term = "(0 + Days | Subject)"
    kw = {"term": term, "method": "exact", "nsim": 2000, "seed": 1}
    formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    shifted = vctest.vc_test(formula, data, **kw)
    plain = vctest.vc_test(formula, SLEEP, **kw)
    assert shifted.statistic == pytest.approx(plain.statistic, rel=1e-7)
    assert shifted.pvalue == plain.pvalue
    # the earlier engine: 1562.53 at +1e9 for (1 | Subject), below the true minimum 1786.47
    assert vctest.fit(FORMULAS[1], data).objective == pytest.approx(1786.4650853, rel=1e-9)


def test_compare_survives_a_huge_shift():
    data = SLEEP.assign(Reaction=SLEEP.Reaction + 1e6)
    kw = {"nsim": 40, "seed": 3}
    shifted = vctest.compare(FORMULAS[0], FORMULAS[1], data, **kw)
    plain = vctest.compare(FORMULAS[0], FORMULAS[1], SLEEP, **kw)
    assert shifted.n_failed == plain.n_failed == 0  # the earlier engine: 141 of 200 failed
    np.testing.assert_allclose(shifted.null_distribution, plain.null_distribution,
                               rtol=1e-5, atol=1e-6)


def test_a_group_spread_a_million_times_the_residual_fits():
    # 10 groups of 5, group sd 1e6, residual sd 1 (the earlier engine: criterion 450.06,
    # theta 3.2e5 where lme4 had 1.24e6).  Balanced one-way data: the ML and REML
    # estimates are known in closed form (ANOVA mean squares).
    from .dense_reference import dense_objective

    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(10), 5)
    y = rng.normal(0, 1e6, 10)[g] + rng.normal(0, 1, 50)
    data = pd.DataFrame({"y": y, "g": [f"g{i}" for i in g]})
    means = y.reshape(10, 5).mean(axis=1)
    msw = np.sum((y.reshape(10, 5) - means[:, None]) ** 2) / 40
    msb = 5 * np.var(means, ddof=1)
    ml = vctest.fit("y ~ 1 + (1 | g)", data, reml=False)
    assert ml.converged
    assert ml.theta[0] == pytest.approx(math.sqrt((0.9 * msb - msw) / 5 / msw), rel=1e-5)
    assert ml.objective == pytest.approx(dense_objective(ml.model, ml.theta, False), rel=1e-9)
    reml = vctest.fit("y ~ 1 + (1 | g)", data)
    assert reml.converged
    # REML is looser: log|X'V^-1 X| is a difference of O(1) numbers whose result is
    # O(1 / theta^2) here, so the criterion carries ~1e-16 theta^2 ~ 1e-4 absolute noise
    # (lme4's R_X is formed the same way) and the optimum is only located to a few %
    theta = math.sqrt((msb - msw) / 5 / msw)
    assert reml.theta[0] == pytest.approx(theta, rel=0.05)
    assert reml.sigma == pytest.approx(math.sqrt(msw), rel=0.01)
    assert reml.objective == pytest.approx(reml.model.objective(np.array([theta]), True),
                                           rel=1e-4)


@SETTINGS
@given(shift=st.floats(-1e6, 1e6))
def test_glmm_offset_shift_changes_only_the_intercept(shift):
    data = vctest.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    ref = vctest.fit(formula, data, family="binomial")
    fit = vctest.fit(formula, data, family="binomial", offset=np.full(len(data), shift))
    assert fit.objective == pytest.approx(ref.objective, rel=1e-8)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-4)
    np.testing.assert_allclose(fit.beta.iloc[1:], ref.beta.iloc[1:], rtol=1e-4, atol=1e-6)
    assert fit.beta.iloc[0] == pytest.approx(ref.beta.iloc[0] - shift, abs=1e-4 + 1e-9 * abs(shift))
