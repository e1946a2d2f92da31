"""Fisher information of the covariance parameters and the chi-bar-square weights built on it.

Oracles: the balanced one-way layout's closed-form information; a dense brute force
(explicit n x n derivative matrices); binomial weights for independent components; Monte
Carlo projections onto the orthant; and a parametric bootstrap of an anova row."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, chi2

import vctest
from vctest.formula.design import build_design
from vctest.model.information import covariance_information
from vctest.nulls.asymptotic import chibar_weights_orthant, orthant_projection_rank


def _one_way_info(a, m, s2, sa2, reml):
    """Closed form: a groups of m, V_g = s2 I + sa2 J; lam = s2 + m sa2 (Searle et al. 1992)."""
    lam = s2 + m * sa2
    between = a - 1 if reml else a
    i_ss = 0.5 * (a * (m - 1) / s2**2 + between / lam**2)
    i_sa = 0.5 * between * m / lam**2
    i_aa = 0.5 * between * m**2 / lam**2
    return np.array([[i_ss, i_sa], [i_sa, i_aa]])


@pytest.mark.parametrize("reml", [False, True])
def test_balanced_one_way_equals_the_closed_form(reml):
    data = vctest.datasets.load("Dyestuff")
    d = build_design("Yield ~ 1 + (1 | Batch)", data)
    theta, sigma = 0.8, 50.0
    info = covariance_information(d, np.array([theta]), sigma, reml=reml)
    expected = _one_way_info(6, 5, sigma**2, (sigma * theta) ** 2, reml)
    np.testing.assert_allclose(info, expected, rtol=1e-10)


def _brute_force(d, theta, sigma, reml):
    """1/2 tr(P dV_a P dV_b) with every n x n matrix written out."""
    n = d.n
    w = np.ones(n) if d.prior_weights is None else d.prior_weights
    derivs, v = [np.diag(1 / w)], np.diag(sigma**2 / w)
    pos = 0
    for blk in d.blocks:
        k = blk.k
        t = np.zeros((k, k))
        idx = []
        for c in range(k):
            for r in range(c, k):
                t[r, c] = theta[pos]
                idx.append((r, c))
                pos += 1
        same = (blk.codes[:, None] == blk.codes[None, :]).astype(float)
        cov = sigma**2 * t @ t.T
        for a in range(k):
            for b in range(k):
                v += cov[a, b] * np.outer(blk.columns[:, a], blk.columns[:, b]) * same
        for r, c in idx:
            e = np.outer(blk.columns[:, r], blk.columns[:, c]) * same
            derivs.append(e if r == c else e + e.T)
    p_mat = np.linalg.inv(v)
    if reml:
        x = d.X
        p_mat = p_mat - p_mat @ x @ np.linalg.solve(x.T @ p_mat @ x, x.T @ p_mat)
    q = len(derivs)
    return np.array([[0.5 * np.trace(p_mat @ derivs[i] @ p_mat @ derivs[j])
                      for j in range(q)] for i in range(q)])


@pytest.mark.parametrize("reml", [False, True])
def test_slopes_weights_and_two_terms_equal_the_dense_brute_force(reml):
    data = vctest.datasets.load("sleepstudy").iloc[:90].copy()
    data["w"] = 1.0 + (np.arange(len(data)) % 3)
    data["g"] = (np.arange(len(data)) % 4).astype(str)
    d = build_design("Reaction ~ Days + (Days | Subject) + (1 | g)", data, weights="w")
    theta = np.array([0.9, 0.05, 0.2, 0.0])   # g's variance on its boundary, as at a null
    ours = covariance_information(d, theta, 25.0, reml=reml)
    np.testing.assert_allclose(ours, _brute_force(d, theta, 25.0, reml), rtol=1e-9)


def test_information_refuses_a_large_design():
    from vctest.model import information

    d = build_design("Yield ~ 1 + (1 | Batch)", vctest.datasets.load("Dyestuff"))
    old = information.MAX_N
    information.MAX_N = 10
    try:
        with pytest.raises(ValueError, match="at most 10 rows; the model has 30"):
            covariance_information(d, np.array([1.0]), 1.0, reml=False)
    finally:
        information.MAX_N = old


@pytest.mark.parametrize("r", [1, 2, 3, 4, 5])
def test_independent_components_give_binomial_weights(r):
    w = np.array(chibar_weights_orthant(np.diag(np.arange(1.0, r + 1))))
    exact = binom.pmf(np.arange(r + 1), r, 0.5)
    if r <= 3:
        np.testing.assert_allclose(w, exact, atol=1e-12)
    else:   # Monte Carlo: 40,000 draws, SE <= 0.0025 per weight
        assert np.all(np.abs(w - exact) <= 4 * np.sqrt(exact * (1 - exact) / 40_000))
    assert w[0::2].sum() == pytest.approx(0.5) and w[1::2].sum() == pytest.approx(0.5)


def test_the_projected_statistic_follows_the_weighted_mixture():
    """z'V^-1 z - min_{t >= 0} (z - t)'V^-1 (z - t), z ~ N(0, V): the chi-bar-square law
    with the orthant's weights (the projection counts are checked in test_asymptotic)."""
    from scipy.optimize import nnls

    cov = np.array([[1.0, -0.6], [-0.6, 2.0]])
    w = chibar_weights_orthant(cov)
    z = np.random.default_rng(3).multivariate_normal(np.zeros(2), cov, size=4000)
    a = np.linalg.inv(np.linalg.cholesky(cov))
    stat = np.array([np.sum((a @ zi) ** 2) - nnls(a, a @ zi)[1] ** 2 for zi in z])
    for q in (0.5, 2.0, 4.0):
        tail = w[1] * chi2.sf(q, 1) + w[2] * chi2.sf(q, 2)
        assert abs(np.mean(stat > q) - tail) <= 4 * np.sqrt(tail * (1 - tail) / z.shape[0])
    freq = np.bincount(orthant_projection_rank(cov / np.sqrt(np.outer(np.diag(cov),
                                                                        np.diag(cov))), z),
                       minlength=3) / z.shape[0]
    assert np.all(np.abs(freq - w) <= 4 * np.sqrt(np.array(w) * (1 - np.array(w)) / 4000))


def _nested_data(n_b=60, n_c=3, m=3, n_a=8, seed=2, sd_b=0.0):
    rng = np.random.default_rng(seed)
    rows = [(str(b), f"{b}_{c}", str((b + c + r) % n_a))
            for b in range(n_b) for c in range(n_c) for r in range(m)]
    d = pd.DataFrame(rows, columns=["b", "c", "a"])
    d["y"] = (rng.normal(size=n_a)[d.a.astype(int)] + sd_b * rng.normal(size=n_b)[d.b.astype(int)]
              + rng.normal(size=len(d)))
    return d


def test_anova_weights_come_from_the_information_of_the_added_variances():
    d = _nested_data(n_b=12, sd_b=1.0)
    null, full = "y ~ 1 + (1 | a)", "y ~ 1 + (1 | a) + (1 | b) + (1 | c)"
    tab = vctest.anova(null, full, data=d, method="asymptotic")
    note = next(n for n in tab.notes if "adds 2 variances" in n)
    # recompute: the (b, c) block of the inverse information at the ML null fit
    fit0 = vctest.fit(null, d, reml=False)
    dfull = build_design(full, d)
    order = [blk.name for blk in dfull.blocks]
    theta = np.zeros(3)
    theta[order.index("a")] = fit0.theta[0]
    info = covariance_information(dfull, theta, fit0.sigma, reml=False)
    idx = [1 + order.index("b"), 1 + order.index("c")]
    cov = np.linalg.inv(info)[np.ix_(idx, idx)]
    rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert rho < -0.2   # nested variances: negatively correlated estimators
    w0 = np.arccos(rho) / (2 * np.pi)
    assert f"{w0:.4f}, 0.5000, {0.5 - w0:.4f}" in note
    stat = tab["Chisq"].iloc[1]
    assert stat > 0.1
    expected = 0.5 * chi2.sf(stat, 1) + (0.5 - w0) * chi2.sf(stat, 2)
    assert tab["Pr(chibar)"].iloc[1] == pytest.approx(expected, rel=1e-9)


def test_anova_refuses_weights_for_a_covariance_matrix_cone():
    tab = vctest.anova("Reaction ~ Days + (1 | Subject)",
                       "Reaction ~ Days + (1 + Days + I(Days^2) | Subject)",
                       data="sleepstudy", method="asymptotic")
    assert np.isnan(tab["Pr(chibar)"].iloc[1])
    assert any("cone of covariance matrices" in n for n in tab.notes)


@pytest.mark.slow
def test_information_weights_fit_the_bootstrap_null_of_an_anova_row():
    """Monte Carlo check: 1,000 ML refits under the null of (1|b) + (1|c), c nested in b.
    The information mixture matches the bootstrap tail within 4 SE; the mixture that
    ignores the correlation (1/4, 1/2, 1/4) puts 0.25 at zero where the bootstrap has
    over 1/3."""
    d = _nested_data()
    null, full = "y ~ 1 + (1 | a)", "y ~ 1 + (1 | a) + (1 | b) + (1 | c)"
    tab = vctest.anova(null, full, data=d, method="asymptotic")
    note = next(n for n in tab.notes if "adds 2 variances" in n)
    w = [float(x) for x in note.split("weights ")[1].split(" from")[0].split(", ")]
    boot = np.asarray(vctest.compare(full, null, d, nsim=1000, seed=1).null_distribution)
    for q in (1.0, 2.0, 3.0):
        tail = w[1] * chi2.sf(q, 1) + w[2] * chi2.sf(q, 2)
        assert abs(np.mean(boot > q) - tail) <= 4 * np.sqrt(tail * (1 - tail) / boot.size)
    zero = np.mean(boot < 1e-6)
    assert abs(zero - w[0]) < abs(zero - 0.25)
