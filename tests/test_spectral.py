"""Tests of the spectral (R)LRT null simulators (``vctest.nulls.spectral``).

Oracles:

* balanced one-way closed forms (prior-art §b2 / table E1): RLRT and LRT are
  monotone in the ANOVA F statistic, so their exact nulls follow from scipy's
  F distribution -- also for lambda0 > 0 (derived below);
* a dense NumPy brute force of Crainiceanu & Ruppert's sup_lambda f_R(lambda)
  on the *same* chi-square draws (``draw_variates``);
* RLRsim 3.1-8 reference samples (/work/shared/reference/rlrsim.json; the
  numbers used are copied below so the tests are self-contained).

Tolerances are 4 Monte Carlo standard errors: for a proportion
sqrt(p (1 - p) / N); for a quantile, the binomial SE of the empirical CDF at
the exact (or reference) quantile; with two simulated samples the SEs combine.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import chi2
from scipy.stats import f as fdist

from vctest._pvalue import monte_carlo_pvalue
from vctest._rng import replicate_seeds, seed_sequence
from vctest.kernels.spectral import draw_variates
from vctest.nulls.asymptotic import mixture_50_50
from vctest.nulls.spectral import (
    _merge_groups,
    _run,
    group_eigenvalues,
    lrt_null,
    rlrt_null,
)

NSIM = 200_000


# ----------------------------------------------------------------------------- designs


def oneway_mu_xi(k: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced one-way, X = 1: mu = J (mult K-1) and 0; xi = J (mult K)."""
    return np.r_[np.full(k - 1, float(j)), 0.0], np.full(k, float(j))


def design_eigenvalues(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p0 = np.eye(x.shape[0]) - x @ np.linalg.solve(x.T @ x, x.T)
    mu = np.clip(np.linalg.eigvalsh(z.T @ p0 @ z), 0.0, None)
    xi = np.clip(np.linalg.eigvalsh(z.T @ z), 0.0, None)
    return mu, xi


def sleepstudy_slope(scale: float = 1.0):
    """Reaction ~ Days + (0 + Days | Subject): 18 subjects, Days 0..9."""
    days = np.arange(10.0)
    n = 180
    x = np.column_stack([np.ones(n), np.tile(days, 18)])
    z = np.zeros((n, 18))
    for s in range(18):
        z[10 * s : 10 * s + 10, s] = days * scale
    return (*design_eigenvalues(x, z), n, 2)


def unbalanced_oneway():
    sizes = [2, 3, 5, 8, 13, 20, 1, 1, 40]
    n = sum(sizes)
    z = np.zeros((n, len(sizes)))
    z[np.arange(n), np.repeat(np.arange(len(sizes)), sizes)] = 1.0
    return (*design_eigenvalues(np.ones((n, 1)), z), n, 1)


def pspline_design(scale: float = 1.0, constant: bool = False):
    """P-spline, n = 100, 20 knots (prior-art E4): truncated-linear basis with
    X = [1, x], or (``constant``) the step basis (x > knot) with X = 1."""
    n = 100
    x = (np.arange(1, n + 1) - 0.5) / n
    knots = np.quantile(x, np.linspace(0, 1, 22)[1:-1])
    if constant:
        return (*design_eigenvalues(np.ones((n, 1)), (x[:, None] > knots) * scale), n, 1)
    z = scale * np.maximum(x[:, None] - knots, 0)
    return (*design_eigenvalues(np.column_stack([np.ones(n), x]), z), n, 2)


# ----------------------------------------------------------------------------- oracles


def oneway_rlrt_of_f(f, k, j):
    n, a, b = k * j, k - 1, k * j - k
    return np.where(f <= 1, 0.0, (n - 1) * np.log((a * f + b) / (n - 1)) - a * np.log(f))


def oneway_lrt_of_f(f, k, j):
    n, a, b = k * j, k - 1, k * j - k
    return np.where(f <= k / a, 0.0, n * np.log((a * f + b) / n) - k * np.log(a * f / k))


def oneway_exact(k, j):
    """Exact RLRT/LRT mass at zero and quantiles from F(K-1, n-K)."""
    a, b = k - 1, k * j - k
    fq = {lv: fdist.ppf(lv, a, b) for lv in (0.95, 0.99)}
    f_rl = brentq(lambda x: oneway_rlrt_of_f(x, k, j) - MIX_CRIT, 1.0, 1e8)
    f_lr = brentq(lambda x: oneway_lrt_of_f(x, k, j) - MIX_CRIT, k / a, 1e8)
    return {
        "rlrt_size": fdist.sf(f_rl, a, b),
        "lrt_size": fdist.sf(f_lr, a, b),
        "rlrt_p0": fdist.cdf(1.0, a, b),
        "rlrt_q95": float(oneway_rlrt_of_f(fq[0.95], k, j)),
        "rlrt_q99": float(oneway_rlrt_of_f(fq[0.99], k, j)),
        "lrt_p0": fdist.cdf(k / a, a, b),
        "lrt_q95": float(oneway_lrt_of_f(fq[0.95], k, j)),
    }


def oneway_rlrt_lambda0_stat(f0, k, j, lam0):
    """Exact RLRT for H0: lambda = lambda0 as a function of F0 = F/(1 + J lambda0).

    With y = (1 + lambda J)/(1 + lambda0 J) the profile is minimised at
    y* = max(F0, 1/(1 + J lambda0)), and
    RLRT = (n-1) log((a F0 + b)/(a F0 / y* + b)) - a log y*.
    """
    n, a, b = k * j, k - 1, k * j - k
    y = max(f0, 1.0 / (1.0 + j * lam0))
    return (n - 1) * math.log((a * f0 + b) / (a * f0 / y + b)) - a * math.log(y)


def oneway_rlrt_lambda0_cdf(q, k, j, lam0):
    """P(RLRT <= q): the statistic is a valley in F0 with minimum 0 at F0 = 1."""
    a, b = k - 1, k * j - k
    stat = lambda x: oneway_rlrt_lambda0_stat(x, k, j, lam0) - q  # noqa: E731
    hi = brentq(stat, 1.0, 1e8)
    lo = 0.0 if stat(1e-300) <= 0 else brentq(stat, 1e-300, 1.0)
    return fdist.cdf(hi, a, b) - fdist.cdf(lo, a, b)


def cr_f(lam, a, r, vals, pen_values, n_eff, lam0):
    """Prior-art §b1: f_R(lam) = N log(1 + N(lam)/D(lam)) - sum_s log((1+lam mu_s)/(1+lam0 mu_s)).

    ``a`` holds one chi-square per eigenvalue group (the sum of the w_s^2 of
    the group), ``pen_values`` the ungrouped eigenvalues of the penalty.
    """
    lam = np.atleast_1d(lam)[:, None]
    num = (a * (lam - lam0) * vals / (1 + lam * vals)).sum(1)
    den = ((1 + lam0 * vals) * a / (1 + lam * vals)).sum(1) + r
    pen = np.log((1 + lam * pen_values) / (1 + lam0 * pen_values)).sum(1)
    return n_eff * np.log1p(num / den) - pen


def dense_reference(a, r, u, vals, pen_values, n_eff, lam0, q):
    """sup_lambda f_R by a dense grid (100 points/decade over 16+ decades) + bounded Brent."""
    lo, hi = 1e-8 / vals.max(), 1e8 / vals.min()
    grid = np.unique(np.r_[0.0, lam0, np.geomspace(lo, hi, int(np.log10(hi / lo) * 100))])
    fv = cr_f(grid, a, r, vals, pen_values, n_eff, lam0)
    k = int(np.argmax(fv))
    best = float(fv[k])
    if 0 < k < grid.size - 1:
        g0, g1 = grid[k - 1], grid[k + 1]
        if g0 > 0:
            res = minimize_scalar(
                lambda t: -cr_f(np.exp(t), a, r, vals, pen_values, n_eff, lam0)[0],
                bounds=(math.log(g0), math.log(g1)),
                method="bounded",
                options={"xatol": 1e-12},
            )
        else:
            res = minimize_scalar(
                lambda x: -cr_f(x, a, r, vals, pen_values, n_eff, lam0)[0],
                bounds=(g0, g1),
                method="bounded",
                options={"xatol": 1e-14 * g1},
            )
        best = max(best, -float(res.fun))
    best = max(best, 0.0)
    if q > 0:
        best += n_eff * math.log1p(u / (a.sum() + r))
    return best


def variates(seed, nsim, dfa, df_r, q):
    seeds = replicate_seeds(seed_sequence(seed), 0, nsim)
    out = np.empty((nsim, dfa.size + 2))
    draw_variates(seeds, dfa.astype(float), float(df_r), float(q), out)
    return out


def se_prop(p, *ns):
    return math.sqrt(p * (1 - p) * sum(1.0 / n for n in ns))


# ----------------------------------------------------------------------------- identities


def test_g_form_equals_cr_form():
    """g(lambda0) - g(lambda) = f_R(lambda) (N + D = T) on random inputs."""
    rng = np.random.default_rng(20240)
    for _ in range(200):
        g = int(rng.integers(1, 6))
        vals = rng.uniform(0.01, 3.0, g)
        mult = rng.integers(1, 4, g).astype(float)
        a = rng.chisquare(mult)
        r = rng.chisquare(7.0)
        n_eff = mult.sum() + 7.0
        lam0 = float(rng.choice([0.0, rng.uniform(0, 5)]))
        lam = rng.uniform(0, 20)
        at = (1 + lam0 * vals) * a

        def gfun(x, at=at, vals=vals, mult=mult, r=r, n_eff=n_eff):
            return (
                n_eff * np.log((at / (1 + x * vals)).sum() + r) + (mult * np.log1p(x * vals)).sum()
            )

        expected = cr_f(lam, a, r, vals, np.repeat(vals, mult.astype(int)), n_eff, lam0)[0]
        assert gfun(lam0) - gfun(lam) == pytest.approx(expected, rel=1e-10, abs=1e-10)
        # D(lambda0) = T
        assert (at / (1 + lam0 * vals)).sum() + r == pytest.approx(a.sum() + r, rel=1e-13)


# ----------------------------------------------------------------------------- one-way exact

# prior-art table E1: K, J, P(RLRT=0), RLRT q95, RLRT q99, size of the 50:50 mixture test
# on the RLRT, P(LRT=0), LRT q95, size of the mixture test on the LRT
E1 = [
    (5, 4, 0.5620, 2.3645, 5.0226, 0.0402, 0.6676, 1.6970, 0.0247),
    (6, 5, 0.5611, 2.3287, 4.9435, 0.0391, 0.6610, 1.6886, 0.0243),
    (5, 10, 0.5825, 2.1507, 4.6750, 0.0344, 0.6964, 1.4302, 0.0192),
    (10, 5, 0.5441, 2.4168, 5.0413, 0.0415, 0.6226, 1.8946, 0.0284),
    (20, 5, 0.5297, 2.4985, 5.1376, 0.0438, 0.5857, 2.1072, 0.0332),
    (5, 100, 0.5929, 2.0440, 4.4965, 0.0316, 0.7112, 1.2985, 0.0166),
    (50, 2, 0.5004, 2.7297, 5.4618, 0.0508, 0.5286, 2.5243, 0.0445),
]
MIX_CRIT = float(chi2.ppf(0.90, 1))  # 5% critical value of 0.5 chi2(0) + 0.5 chi2(1)


@pytest.mark.parametrize("row", E1, ids=[f"K{r[0]}J{r[1]}" for r in E1])
def test_oneway_closed_forms_reproduce_table(row):
    k, j, *table = row
    ex = oneway_exact(k, j)
    got = [ex["rlrt_p0"], ex["rlrt_q95"], ex["rlrt_q99"], ex["rlrt_size"]]
    got += [ex["lrt_p0"], ex["lrt_q95"], ex["lrt_size"]]
    for value, tab in zip(got, table, strict=True):
        assert abs(value - tab) <= 5e-5 + 1e-12


@pytest.mark.parametrize("row", E1, ids=[f"K{r[0]}J{r[1]}" for r in E1])
def test_oneway_simulation_matches_exact(row):
    k, j = row[0], row[1]
    n = k * j
    ex = oneway_exact(k, j)
    mu, xi = oneway_mu_xi(k, j)
    rl = rlrt_null(mu, n, 1, nsim=NSIM, seed=1000 + k * j)
    lr = lrt_null(mu, xi, n, 1, nsim=NSIM, seed=2000 + k * j)
    assert rl.min() >= 0 and lr.min() >= 0
    for sample, p0 in ((rl, ex["rlrt_p0"]), (lr, ex["lrt_p0"])):
        assert abs(np.mean(sample == 0.0) - p0) < 4 * se_prop(p0, NSIM)
    for sample, qv, lv in (
        (rl, ex["rlrt_q95"], 0.95),
        (rl, ex["rlrt_q99"], 0.99),
        (lr, ex["lrt_q95"], 0.95),
    ):
        assert abs(np.mean(sample <= qv) - lv) < 4 * se_prop(lv, NSIM)
    for sample, size in ((rl, ex["rlrt_size"]), (lr, ex["lrt_size"])):
        assert abs(np.mean(sample > MIX_CRIT) - size) < 4 * se_prop(size, NSIM)


def test_oneway_closed_form_path_equals_grid_path():
    """G = 1 closed form == generic grid + Newton search, draw by draw."""
    vals, mult = np.array([1.0]), np.array([4.0])
    a = _run(vals, mult, mult, 49.0, 45.0, 0.0, 0.0, 20_000, 5, None, closed_form=True)
    b = _run(vals, mult, mult, 49.0, 45.0, 0.0, 0.0, 20_000, 5, None, closed_form=False)
    assert np.array_equal(a[0] == 0, b[0] == 0)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-8, atol=1e-12)
    c = _run(vals, mult, mult, 49.0, 45.0, 0.0, 10.0, 20_000, 5, None, closed_form=True)
    d = _run(vals, mult, mult, 49.0, 45.0, 0.0, 10.0, 20_000, 5, None, closed_form=False)
    np.testing.assert_allclose(c[0], d[0], rtol=1e-10, atol=1e-12)


def test_oneway_lambda_hat_is_f_minus_one_over_j():
    k, j, nsim, seed = 6, 5, 2000, 9
    mu, _ = oneway_mu_xi(k, j)
    stat, lam = rlrt_null(mu * 3.0, k * j, 1, nsim=nsim, seed=seed, return_lambda=True)
    v = variates(seed, nsim, np.array([k - 1.0]), k * j - k, 0)
    f = (v[:, 0] / (k - 1)) / (v[:, 1] / (k * j - k))
    np.testing.assert_allclose(lam * 3.0, np.maximum(f - 1, 0) / j, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(stat, oneway_rlrt_of_f(f, k, j), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- dense reference


def two_scale_design():
    """Eigenvalues in clusters 1e9 apart: the profile is sometimes bimodal."""
    mu = np.r_[[1000.0] * 3, [0.01] * 30, [1e-6] * 5]
    return mu, np.r_[[1500.0] * 3, [0.02] * 30, [1e-5] * 5, [0.5] * 2], 100, 2


CASES = {
    "unbalanced": unbalanced_oneway,
    "pspline": pspline_design,
    "sleepstudy": sleepstudy_slope,
    "two_scale": two_scale_design,
}


@pytest.mark.parametrize("design", list(CASES))
@pytest.mark.parametrize("lam0_rel", [0.0, 0.05, 2.0])
def test_rlrt_matches_dense_reference(design, lam0_rel):
    mu, _, n, p = CASES[design]()
    vals, mult = group_eigenvalues(mu)
    scale = vals.max()
    lam0 = lam0_rel / scale  # on the scale of mu
    nsim, seed = 300, 41
    stat = rlrt_null(mu, n, p, lambda0=lam0, nsim=nsim, seed=seed)
    v = variates(seed, nsim, mult, n - p - mult.sum(), 0)
    g = vals.size
    pen_values = np.repeat(vals / scale, mult)
    ref = np.array(
        [
            dense_reference(v[i, :g], v[i, g], 0.0, vals / scale, pen_values, n - p, lam0_rel, 0)
            for i in range(nsim)
        ]
    )
    np.testing.assert_allclose(stat, ref, rtol=1e-9, atol=1e-9)
    if lam0_rel == 0.0:
        # exact zeros: f'(0) < 0 forces a positive statistic; zeros are true zeros
        a, r = v[:, :g], v[:, g]
        fp0 = -(n - p) * (a * vals).sum(1) / (a.sum(1) + r) + (mult * vals).sum()
        assert np.all(stat[fp0 < 0] > 0)
        assert np.all(ref[stat == 0] < 1e-10)


@pytest.mark.parametrize("design", list(CASES))
@pytest.mark.parametrize("q", [0, 1])
def test_lrt_matches_dense_reference(design, q):
    mu, xi, n, p = CASES[design]()
    vmu, mmu = group_eigenvalues(mu)
    vxi, mxi = group_eigenvalues(xi)
    scale = max(vmu.max(), vxi.max())
    vals, dfa, _ = _merge_groups(vmu / scale, mmu, vxi / scale, mxi, 1e-9)
    nsim, seed = 300, 43
    stat = lrt_null(mu, xi, n, p, q=q, nsim=nsim, seed=seed)
    v = variates(seed, nsim, dfa, n - p - mmu.sum(), q)
    g = vals.size
    pen_values = np.repeat(vxi / scale, mxi)
    ref = np.array(
        [
            dense_reference(v[i, :g], v[i, g], v[i, g + 1], vals, pen_values, n, 0.0, q)
            for i in range(nsim)
        ]
    )
    np.testing.assert_allclose(stat, ref, rtol=1e-9, atol=1e-9)
    if q > 0:
        assert np.all(stat > 0)


@pytest.mark.parametrize("design", ["pspline", "two_scale"])
def test_grid_density_does_not_matter(design):
    """10 grid points per decade (default) == 80 per decade, draw by draw."""
    mu, xi, n, p = CASES[design]()
    vmu, mmu = group_eigenvalues(mu)
    vxi, mxi = group_eigenvalues(xi)
    scale = max(vmu.max(), vxi.max())
    vals, dfa, pen = _merge_groups(vmu / scale, mmu, vxi / scale, mxi, 1e-9)
    df_r = n - p - mmu.sum()
    runs = [
        (vmu / vmu.max(), mmu * 1.0, mmu * 1.0, n - p, 0.0, 0.0),
        (vmu / vmu.max(), mmu * 1.0, mmu * 1.0, n - p, 0.0, 3.0),
        (vals, dfa, pen, n, 1.0, 0.0),
    ]
    for v, da, pe, n_eff, q, lam0 in runs:
        coarse = _run(v, da, pe, n_eff, df_r, q, lam0, 50_000, 12, None, ppd=10)[0]
        fine = _run(v, da, pe, n_eff, df_r, q, lam0, 50_000, 12, None, ppd=80)[0]
        np.testing.assert_allclose(coarse, fine, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- RLRsim 3.1-8

# From /work/shared/reference/rlrsim.json (nsim = 1e5 each; R type-7 quantiles).
RLRSIM = {
    "rlrt.dyestuff": {"p0": 0.55701, "q": (1.32678418279737, 2.31378953310456, 4.8813178936013)},
    "rlrt.dyestuff2": {"p0": 0.56084, "q": (1.33024343359913, 2.32985919720669, 5.07653760140231)},
    "lrt.dyestuff": {"p0": 0.66311, "q": (0.839030713520233, 1.73485364269036, 4.15193872637273)},
    "rlrt.sleep_slope": {
        "p0": 0.54049,
        "q": (1.40530820843552, 2.40969775205951, 5.03222171575907),
    },
}
RLRSIM_N = 100_000


def _rlrsim_sample(case, seed):
    mu5 = [5.0] * 5 + [7.51073303035834e-31]  # Dyestuff mu_raw
    if case == "lrt.dyestuff":
        return lrt_null(mu5, [5.0] * 6, 30, 1, nsim=NSIM, seed=seed)
    if case == "rlrt.sleep_slope":
        mu_raw = [285.0] * 16 + [284.999999999998, 5.23768523656114e-28]
        return rlrt_null(mu_raw, 180, 2, nsim=NSIM, seed=seed)
    return rlrt_null(mu5, 30, 1, nsim=NSIM, seed=seed)


@pytest.mark.parametrize("case", list(RLRSIM))
def test_matches_rlrsim_reference(case):
    ref = RLRSIM[case]
    sample = _rlrsim_sample(case, seed=3100 + list(RLRSIM).index(case))
    p0 = ref["p0"]
    assert abs(np.mean(sample == 0.0) - p0) < 4 * se_prop(p0, NSIM, RLRSIM_N)
    for lv, qv in zip((0.9, 0.95, 0.99), ref["q"], strict=True):
        assert abs(np.mean(sample <= qv) - lv) < 4 * se_prop(lv, NSIM, RLRSIM_N)


E4 = {  # prior-art E4 (its own 200k-draw simulation, printed to 3 decimals)
    "linear": (False, 0.665, 1.794, 0.994),
    "constant": (True, 0.646, 2.005, 0.919),
}


@pytest.mark.parametrize("name", list(E4))
def test_pspline_matches_prior_art_simulation(name):
    constant, p0_rl, q95_rl, p0_lr = E4[name]
    mu, xi, n, p = pspline_design(constant=constant)
    rl = rlrt_null(mu, n, p, nsim=NSIM, seed=4400 + len(name))
    lr = lrt_null(mu, xi, n, p, nsim=NSIM, seed=4500 + len(name))
    ref_n = 200_000
    rounding = 5e-4
    assert abs(np.mean(rl == 0) - p0_rl) < 4 * se_prop(p0_rl, NSIM, ref_n) + rounding
    assert abs(np.mean(lr == 0) - p0_lr) < 4 * se_prop(p0_lr, NSIM, ref_n) + rounding
    # q95 printed to 3 decimals: allow the CDF to move by density * 5e-4 (density < 0.1 there)
    assert abs(np.mean(rl <= q95_rl) - 0.95) < 4 * se_prop(0.95, NSIM, ref_n) + 0.1 * rounding


def test_sleepstudy_design_eigenvalues_match_rlrsim():
    mu = sleepstudy_slope()[0]
    vals, mult = group_eigenvalues(mu)
    assert vals.tolist() == pytest.approx([285.0], rel=1e-12)
    assert mult.tolist() == [17]


def test_dyestuff_pvalues():
    mu5 = [5.0] * 5
    sample = rlrt_null(mu5, 30, 1, nsim=NSIM, seed=77)
    exact = fdist.sf(4.5983, 5, 24)  # RLRT > 0 is monotone in F: p = P(F > F_obs)
    res = monte_carlo_pvalue(6.36895531362114, sample)
    assert abs(res.pvalue - exact) < 4 * se_prop(exact, NSIM) + 1e-4  # F_obs rounded to 4 d.p.
    # Dyestuff2: observed 5.7e-14 counts as 0 -> p = 1 (simulated and asymptotic)
    assert monte_carlo_pvalue(5.6843418860808e-14, sample).pvalue == 1.0
    assert mixture_50_50(5.6843418860808e-14) == 1.0


# ----------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("design", [sleepstudy_slope, pspline_design])
@pytest.mark.parametrize("factor", [0.01, 10.0])
def test_lrt_scale_invariance(design, factor):
    """Z -> factor * Z scales mu and xi by factor**2: the same sample.

    RLRsim's LRTSim normalises mu and then xi one after the other, which breaks
    this whenever max(xi) < 1 after scaling (prior-art §0 item 2).
    """
    mu, xi, n, p = design()
    mu2, xi2, _, _ = design(factor)
    a = lrt_null(mu, xi, n, p, nsim=20_000, seed=8)
    b = lrt_null(mu2, xi2, n, p, nsim=20_000, seed=8)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    c = lrt_null(mu * factor**2, xi * factor**2, n, p, nsim=20_000, seed=8)
    np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)
    assert np.mean(a == 0) < 1  # not a degenerate sample


def test_rlrt_lambda0_is_on_the_scale_of_mu():
    mu, _, n, p = unbalanced_oneway()
    a, la = rlrt_null(mu, n, p, lambda0=0.3, nsim=5000, seed=4, return_lambda=True)
    b, lb = rlrt_null(mu * 100.0, n, p, lambda0=0.003, nsim=5000, seed=4, return_lambda=True)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(la, lb * 100.0, rtol=1e-8, atol=1e-14)


def test_thread_and_chunk_invariance():
    mu, _, n, p = pspline_design()
    one = rlrt_null(mu, n, p, nsim=5000, seed=123, threads=1)
    two = rlrt_null(mu, n, p, nsim=5000, seed=123, threads=2)
    assert np.array_equal(one, two)
    prefix = rlrt_null(mu, n, p, nsim=1234, seed=123, threads=2)
    assert np.array_equal(prefix, one[:1234])
    mu1, xi1 = oneway_mu_xi(5, 10)
    l1 = lrt_null(mu1, xi1, 50, 1, q=1, nsim=3000, seed=5, threads=1)
    l2 = lrt_null(mu1, xi1, 50, 1, q=1, nsim=3000, seed=5, threads=2)
    assert np.array_equal(l1, l2)


def test_seed_types():
    mu = [5.0] * 5
    a = rlrt_null(mu, 30, 1, nsim=100, seed=np.random.SeedSequence(3))
    b = rlrt_null(mu, 30, 1, nsim=100, seed=3)
    assert np.array_equal(a, b)
    assert rlrt_null(mu, 30, 1, nsim=100, seed=None).shape == (100,)


# ----------------------------------------------------------------------------- lambda0 > 0


def test_lambda0_positive_is_not_degenerate_and_exact():
    """K=5, J=10, lambda0=1 (RLRsim returns all zeros here)."""
    k, j, lam0 = 5, 10, 1.0
    mu, _ = oneway_mu_xi(k, j)
    sample = rlrt_null(mu, k * j, 1, lambda0=lam0, nsim=NSIM, seed=606)
    assert np.mean(sample < 1e-8) < 0.01
    q95 = np.quantile(sample, 0.95)
    assert np.isfinite(q95) and q95 > 0
    # exact CDF from F0 = F/(1 + J lambda0) ~ F(K-1, n-K)
    q95_exact = brentq(lambda q: oneway_rlrt_lambda0_cdf(q, k, j, lam0) - 0.95, 0.5, 20.0)
    assert abs(np.mean(sample <= q95_exact) - 0.95) < 4 * se_prop(0.95, NSIM)
    q50_exact = brentq(lambda q: oneway_rlrt_lambda0_cdf(q, k, j, lam0) - 0.5, 1e-6, 20.0)
    assert abs(np.mean(sample <= q50_exact) - 0.5) < 4 * se_prop(0.5, NSIM)
    # and draw by draw against the dense reference
    nsim = 300
    small = rlrt_null(mu, k * j, 1, lambda0=lam0, nsim=nsim, seed=607)
    v = variates(607, nsim, np.array([k - 1.0]), k * j - k, 0)
    ref = [
        dense_reference(
            v[i, :1], v[i, 1], 0, np.array([1.0]), np.full(k - 1, 1.0), k * j - 1, lam0 * j, 0
        )
        for i in range(nsim)
    ]
    np.testing.assert_allclose(small, ref, rtol=1e-9, atol=1e-9)
    # the draws are the null-scaled chi-squares: F0 = (A/a)/(R/b) itself
    f0 = (v[:, 0] / (k - 1)) / (v[:, 1] / (k * j - k))
    exact = [oneway_rlrt_lambda0_stat(x, k, j, lam0) for x in f0]
    np.testing.assert_allclose(small, exact, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- grouping & errors


def test_group_eigenvalues():
    v, m = group_eigenvalues([3.0, 1.0, 3.0 * (1 + 1e-12), 1e-14, 0.0, -1e-15, 2.0])
    np.testing.assert_allclose(v, [1.0, 2.0, 3.0])
    assert m.tolist() == [1, 1, 2]
    v, m = group_eigenvalues([1.0, 1.0 + 1e-6])
    assert m.tolist() == [1, 1]
    v, m = group_eigenvalues([0.0, 0.0])
    assert v.size == 0 and m.size == 0
    with pytest.raises(ValueError, match="values"):
        group_eigenvalues([1.0, -0.5])
    with pytest.raises(ValueError, match="values"):
        group_eigenvalues([1.0, np.nan])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"mu": [1.0, -1.0]}, ValueError, "mu"),
        ({"mu": [1.0, np.inf]}, ValueError, "mu"),
        ({"mu": [[1.0, 2.0]]}, ValueError, "mu"),
        ({"mu": ["a"]}, TypeError, "mu"),
        ({"mu": [0.0, 0.0]}, ValueError, "mu"),
        ({"n": 5, "p": 5}, ValueError, "n"),
        ({"n": 30.5}, TypeError, "n"),
        ({"p": -1}, ValueError, "p"),
        ({"mu": [1.0] * 30}, ValueError, "n - p"),
        ({"nsim": 0}, ValueError, "nsim"),
        ({"nsim": 10.0}, TypeError, "nsim"),
        ({"lambda0": -0.1}, ValueError, "lambda0"),
        ({"lambda0": np.nan}, ValueError, "lambda0"),
        ({"lambda0": "1"}, TypeError, "lambda0"),
        ({"threads": 0}, ValueError, "threads"),
        ({"threads": 10_000}, ValueError, "threads"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_rlrt_null_validation(kwargs, exc, match):
    args = {"mu": [5.0] * 5, "n": 30, "p": 1, "nsim": 10}
    args.update(kwargs)
    mu, n, p = args.pop("mu"), args.pop("n"), args.pop("p")
    with pytest.raises(exc, match=match):
        rlrt_null(mu, n, p, **args)


def test_rlrt_allows_k_equal_n_minus_p():
    sample = rlrt_null([2.0, 1.0, 0.5], 4, 1, nsim=2000, seed=1)
    assert np.all(np.isfinite(sample)) and sample.min() >= 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"xi": [0.0]}, "xi"),
        ({"xi": [1.0, -2.0]}, "xi"),
        ({"q": 2}, "q"),
        ({"mu": [5.0] * 29}, "n - p - K"),
    ],
)
def test_lrt_null_validation(kwargs, match):
    args = {"mu": [5.0] * 5, "xi": [5.0] * 6, "n": 30, "p": 1, "nsim": 10}
    args.update(kwargs)
    mu, xi, n, p = args.pop("mu"), args.pop("xi"), args.pop("n"), args.pop("p")
    with pytest.raises(ValueError, match=match):
        lrt_null(mu, xi, n, p, **args)


def test_disable_jit_gives_identical_numbers():
    """The kernels as plain Python (NUMBA_DISABLE_JIT=1) reproduce the compiled draws."""
    code = (
        "import numpy as np, warnings; warnings.simplefilter('error');"
        "from vctest.nulls.spectral import rlrt_null, lrt_null;"
        "a = rlrt_null([5.0, 5.0, 3.0, 1.0], 30, 1, nsim=40, seed=3);"
        "b = rlrt_null([5.0, 5.0, 3.0, 1.0], 30, 1, lambda0=0.2, nsim=40, seed=3);"
        "c = lrt_null([5.0, 5.0, 3.0, 1.0], [6.0, 6.0, 5.0, 2.0], 30, 1, q=1, nsim=40, seed=3);"
        "print(repr(np.r_[a, b, c].tolist()))"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    plain = np.array(eval(out.stdout))
    mu, xi = [5.0, 5.0, 3.0, 1.0], [6.0, 6.0, 5.0, 2.0]
    jitted = np.r_[
        rlrt_null(mu, 30, 1, nsim=40, seed=3),
        rlrt_null(mu, 30, 1, lambda0=0.2, nsim=40, seed=3),
        lrt_null(mu, xi, 30, 1, q=1, nsim=40, seed=3),
    ]
    assert np.array_equal(plain, jitted)
