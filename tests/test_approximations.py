"""Reading a bootstrap sample (vctest/nulls/approximations.py) against independent oracles.

* Clopper-Pearson bounds against SciPy's exact binomial interval and beta quantiles;
* sequential stopping's error guarantee: the exact probability of a wrong early
  decision (a dynamic programme over the binomial count at each look) and a
  simulation of the real stopping loop on synthetic exceedance streams, both
  against the stated bound;
* the gamma and Bartlett approximations against pbkrtest's ``PBmodcomp``
  (validation/r/pbkrtest_pbmodcomp.R), SciPy's special functions in another
  parametrisation, the laws they recover exactly (a gamma sample, a scaled
  chi-square sample), and wired into ``compare()``.
"""

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

import vctest
from vctest.nulls.approximations import (
    bartlett_pvalue,
    clopper_pearson,
    decision_is_clear,
    gamma_pvalue,
    looks,
    per_look_error,
)
from vctest.nulls.bootstrap import run_replicates

PBMODCOMP = json.loads((Path(__file__).parents[1]
                        / "validation/reference/pbkrtest_pbmodcomp.json").read_text())["cases"]


# -- Clopper-Pearson ---------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 100), (1, 100), (5, 100), (37, 400), (99, 100),
                                      (100, 100), (12, 1600)])
@pytest.mark.parametrize("error", [0.05, 2e-4])
def test_clopper_pearson_is_scipys_exact_interval(k, n, error):
    lo, hi = clopper_pearson(k, n, error)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - error, method="exact")
    # SciPy finds its bounds by root finding (to about 1e-9 relative, 1e-12 absolute)
    assert lo == pytest.approx(ci.low, rel=1e-8, abs=1e-11)
    assert hi == pytest.approx(ci.high, rel=1e-8, abs=1e-11)
    # and the beta-quantile form: P(Beta(k, n-k+1) < lo) = P(Beta(k+1, n-k) > hi) = error/2
    if k > 0:
        assert stats.beta.cdf(lo, k, n - k + 1) == pytest.approx(error / 2, rel=1e-8)
    if k < n:
        assert stats.beta.sf(hi, k + 1, n - k) == pytest.approx(error / 2, rel=1e-8)


def test_clopper_pearson_known_value():
    # no success in 400 draws: the upper 1 - 1e-4 bound is 1 - (1e-4)**(1/400) (closed form)
    lo, hi = clopper_pearson(0, 400, 2e-4)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 1e-4 ** (1 / 400), rel=1e-10)


def test_per_look_error_is_bonferroni_over_the_looks():
    assert looks(1600) == [100, 200, 400, 800, 1600]
    assert per_look_error(1600, 1e-3) == pytest.approx(1e-3 / 5, rel=1e-15)
    assert per_look_error(100, 1e-3) == pytest.approx(1e-3, rel=1e-15)


# -- sequential stopping: the error guarantee --------------------------------------------


@functools.lru_cache
def _stopping_sets(nsim, alpha, error):
    """Per look: the counts k that stop as significant / as not significant."""
    err = per_look_error(nsim, error)
    out = []
    for n in looks(nsim)[:-1]:  # no decision is needed at the last look
        k = np.arange(n + 1)
        clear = np.array([decision_is_clear(int(j), n, alpha, err) for j in k])
        sig, non = clear & (k < alpha * n), clear & (k > alpha * n)
        assert not np.any(clear & (k == alpha * n))
        # the p-value reported at the stop lies on the side the rule decided
        p = (1 + k) / (1 + n)
        assert np.all(p[sig] < alpha) and np.all(p[non] > alpha)
        out.append((n, sig, non))
    return tuple(out)


def _stop_probabilities(sets, p_true):
    """Exact P(stop at each look as significant / not significant) for a true p-value."""
    dist, prev, out = np.array([1.0]), 0, []
    for n, sig, non in sets:
        dist = np.convolve(dist, stats.binom.pmf(np.arange(n - prev + 1), n - prev, p_true))
        out.append((dist[sig].sum(), dist[non].sum()))
        dist = np.where(sig | non, 0.0, dist)
        prev = n
    return np.array(out)


def _wrong_decision(probs, p_true, alpha):
    return probs[:, 0].sum() if p_true >= alpha else probs[:, 1].sum()


@pytest.mark.parametrize(("nsim", "alpha", "error"), [(1600, 0.05, 1e-3), (1600, 0.01, 1e-2)])
def test_exact_error_of_sequential_stopping_is_within_its_bound(nsim, alpha, error):
    """P(early decision on the wrong side of alpha) <= error, for every true p-value.

    Only one side can be wrong, so the union bound over the looks gives error/2
    (each two-sided interval misses on a given side with probability <= err/2).
    The worst case is a true p-value at alpha.
    """
    sets = _stopping_sets(nsim, alpha, error)
    grid = alpha * np.concatenate([np.linspace(0.3, 0.999, 25), np.linspace(1.001, 2.0, 25)])
    wrong = [_wrong_decision(_stop_probabilities(sets, p), p, alpha) for p in grid]
    assert max(wrong) <= error / 2


def test_a_clear_case_stops_early():
    # the rule is worth having: far from alpha a run stops early almost surely
    sets = _stopping_sets(1600, 0.05, 1e-3)
    assert _stop_probabilities(sets, 0.05 / 20).sum() > 0.999
    assert _stop_probabilities(sets, 0.05 * 4).sum() > 0.999


def _stream_task(exceed: np.ndarray):
    """A bootstrap task whose replicate i has statistic 1 if ``exceed[i]`` else 0."""

    def task(start, stop):
        m = stop - start
        obj = np.column_stack([exceed[start:stop].astype(float), np.zeros(m)])
        zeros = np.zeros((m, 1))
        return (obj, zeros, zeros, np.ones((m, 2), dtype=np.int64),
                np.zeros((m, 2), dtype=np.int64))

    return task


def test_simulated_error_of_the_stopping_loop_is_within_its_bound():
    """The bootstrap's stopping loop on synthetic exceedance streams (no model fits).

    True p-value just above alpha (the worst case): the share of runs that stop
    early and report p < alpha must be within the stated bound (error/2 for one
    side, plus 4 binomial SEs), and where each run stops must follow the exact
    stopping probabilities of the rule (4 SEs per look).
    """
    nsim, alpha, error, p_true, runs = 1600, 0.05, 1e-2, 0.0505, 600
    rng = np.random.default_rng(20261130)
    streams = rng.random((runs, nsim)) < p_true
    stopped_at, wrong = [], 0
    for exceed in streams:
        raw = run_replicates(_stream_task(exceed), nsim=nsim, dims=(1, 1), observed=0.5,
                             null_fixed=False, threads=1, progress=False, stop_alpha=alpha,
                             stop_error=error, backend="local", client=None, n_workers=1)
        stat = raw.arrays[0][:, 0] - raw.arrays[0][:, 1]
        n = stat.size
        assert raw.stopped_early == (n < nsim)
        np.testing.assert_array_equal(stat, exceed[:n])  # a prefix of the stream
        stopped_at.append(n)
        k = int(np.count_nonzero(stat >= 0.5))
        wrong += raw.stopped_early and (1 + k) / (1 + n) < alpha
    bound = error / 2
    assert wrong / runs <= bound + 4 * math.sqrt(bound * (1 - bound) / runs)
    probs = _stop_probabilities(_stopping_sets(nsim, alpha, error), p_true).sum(axis=1)
    for n, prob in zip(looks(nsim)[:-1], probs, strict=True):
        share = np.mean(np.asarray(stopped_at) == n)
        assert abs(share - prob) <= 4 * math.sqrt(max(prob * (1 - prob), 1e-4) / runs)


# -- gamma and Bartlett approximations -----------------------------------------------------

SAMPLE = np.array([0.0, 0.0, 0.0, 0.31, 0.72, 1.2, 1.9, 2.5, 4.0, 6.3])


@pytest.mark.parametrize("t", [0.5, 2.0, 5.99, 14.0])
def test_gamma_pvalue_from_the_rate_parametrisation(t):
    # gamma with mean m and variance v: shape m^2/v, rate m/v; upper tail Q(shape, rate t)
    m = SAMPLE.sum() / SAMPLE.size
    v = ((SAMPLE - m) ** 2).sum() / (SAMPLE.size - 1)
    want = special.gammaincc(m * m / v, t * m / v)
    assert gamma_pvalue(t, SAMPLE) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("df", [2, 3, 5])
@pytest.mark.parametrize("t", [0.5, 2.0, 5.99, 14.0])
def test_bartlett_pvalue_from_the_chi_square_tail(t, df):
    # t scaled so that the reference mean becomes df: t / (mean / df), upper chi2(df) tail
    m = SAMPLE.sum() / SAMPLE.size
    want = special.chdtrc(df, t / (m / df))
    assert bartlett_pvalue(t, SAMPLE, df) == pytest.approx(want, rel=1e-12)


def _moment_tolerance(pfun, sample, t):
    """4 SEs of p(mean, var) from the sampling error of the two moments (delta method)."""
    n, m, v = sample.size, sample.mean(), sample.var(ddof=1)
    c = sample - m
    cov = np.array([[v, np.mean(c**3)], [np.mean(c**3), np.mean(c**4) - v * v]]) / n
    h = np.array([1e-4 * m, 1e-4 * v])
    grad = np.array([(pfun(m + h[0], v) - pfun(m - h[0], v)) / (2 * h[0]),
                     (pfun(m, v + h[1]) - pfun(m, v - h[1])) / (2 * h[1])])
    return 4 * math.sqrt(grad @ cov @ grad)


@pytest.mark.parametrize("t", [1.0, 4.5, 12.0])
def test_gamma_approximation_recovers_a_gamma_law(t):
    shape, scale = 3.0, 1.5
    sample = np.random.default_rng(11).gamma(shape, scale, 200_000)
    exact = stats.gamma.sf(t, shape, scale=scale)

    def p_of(m, v):
        return special.gammaincc(m * m / v, t * m / v)

    assert abs(gamma_pvalue(t, sample) - exact) <= _moment_tolerance(p_of, sample, t)


@pytest.mark.parametrize("t", [1.0, 5.0, 12.0])
def test_bartlett_approximation_recovers_a_scaled_chi_square(t):
    # T* = c chi2(df): mean c df, so t df / mean(T*) = t / c and p = P(chi2(df) > t / c)
    c, df = 1.7, 3
    sample = c * np.random.default_rng(12).chisquare(df, 200_000)
    exact = stats.chi2.sf(t / c, df)
    tol = 4 * stats.chi2.pdf(t / c, df) * (t / c) * math.sqrt(2 / df / sample.size)
    assert abs(bartlett_pvalue(t, sample, df) - exact) <= tol


def test_degenerate_samples():
    zeros = np.zeros(50)
    assert gamma_pvalue(0.0, zeros) == 1.0 and bartlett_pvalue(0.0, zeros, 2) == 1.0
    assert math.isnan(gamma_pvalue(1.0, zeros)) and math.isnan(bartlett_pvalue(1.0, zeros, 2))


def test_compare_reports_both_approximations_of_its_own_sample():
    res = vctest.compare("distance ~ age + Sex + (age | Subject)",
                         "distance ~ age + Sex + (1 | Subject)", "Orthodont", nsim=40, seed=3)
    df = res.settings["df"]
    assert df == 2
    # the observed statistic is lme4's (as pbkrtest's PBmodcomp reports it)
    tobs = next(c["tobs"] for c in PBMODCOMP if c["id"] == "orthodont_slope")
    assert res.statistic == pytest.approx(tobs, abs=1e-6)
    sample, t = res.null_distribution, res.statistic
    m, v = sample.mean(), sample.var(ddof=1)
    approx = res.approximations
    assert approx[f"gamma approximation (moment-matched, df={df})"] == pytest.approx(
        special.gammaincc(m * m / v, t * m / v), rel=1e-12)
    assert approx[f"Bartlett-scaled chi2({df})"] == pytest.approx(
        special.chdtrc(df, t * df / m), rel=1e-12)


@pytest.mark.parametrize("case", PBMODCOMP, ids=[c["id"] for c in PBMODCOMP])
def test_gamma_and_bartlett_match_pbkrtest(case):
    ref, t, df = np.array(case["ref"]), case["tobs"], int(case["df"])
    assert df == 2  # at df = 1 a lost factor df would not show
    # PBmodcomp uses the replicates > 0 only; vctest keeps the zeros (docs/methods.rst)
    positive = ref[ref > 0]
    assert positive.size == case["npos"] < ref.size
    assert positive.mean() == pytest.approx(case["moment"]["mean"], rel=1e-12)
    assert positive.var(ddof=1) == pytest.approx(case["moment"]["var"], rel=1e-12)
    want = case["pvalues"]
    assert gamma_pvalue(t, positive) == pytest.approx(want["Gamma"], rel=1e-9)
    assert bartlett_pvalue(t, positive, df) == pytest.approx(want["Bartlett"], rel=1e-9)
    assert stats.chi2.isf(bartlett_pvalue(t, positive, df), df) == pytest.approx(
        case["bartlett_stat"], rel=1e-9)
    # with the zeros kept the moments, and so the p-values, differ
    assert gamma_pvalue(t, np.maximum(ref, 0.0)) != pytest.approx(want["Gamma"], rel=1e-3)

