"""Smooth terms s(x): bases, gamm parity, the exact RLRT of "f is linear", predict and plots.

Oracles: ``validation/reference/smooth_gamm.json`` (``Rscript
validation/r/smooth_gamm.R``: mgcv 1.8-41 ``gamm(method = "REML")`` on
MASS::mcycle, a simulated data set and an additive mixed model, two smooths and
by= smooths (numeric and factor); RLRsim 3.1-8 ``exactRLRT``) and, for the
null's mass at zero, a dense NumPy brute-force supremum over lambda on the same
design.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest.api.smooth_test import dense_spectral_design
from vctest.cli import main
from vctest.formula import build_design, parse_formula
from vctest.model.smooth_fit import SmoothFit, fit_smooth

from .test_spectral import se_prop

REF = json.loads((Path(__file__).parents[1] / "validation/reference/smooth_gamm.json")
                 .read_text())
CASES = {c["name"]: c for c in REF["cases"]}


TESTED = [name for name, c in CASES.items() if "rlrt" in c]  # two_smooths: the fit only


def _data(name: str) -> pd.DataFrame:
    return pd.DataFrame(REF["data"][name.split("_")[0]])


def _formula(case: dict) -> str:
    return case["formula"] + (" + (1 | g)" if case["random"] else "")


@pytest.fixture(scope="module")
def fits() -> dict[str, SmoothFit]:
    return {name: fit_smooth(build_design(_formula(c), _data(name))) for name, c in CASES.items()}


# -- basis ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_basis_equals_gamms(name):
    """The same null-space columns (their span and Gram determinant: the REML criterion
    depends on both) and the same Z Z' (up to the penalty's scale)."""
    case = CASES[name]
    d = build_design(_formula(case), _data(name))
    sm = d.smooths[0]
    n_smooth_fixed = sum(len(b.fixed_columns) for b in d.smooths)
    first = d.p - n_smooth_fixed
    mine = d.X[:, list(sm.fixed_columns)]
    theirs = np.array(case["X"])[:, first:first + len(sm.fixed_columns)]
    assert np.linalg.slogdet(mine.T @ mine)[1] == pytest.approx(
        np.linalg.slogdet(theirs.T @ theirs)[1], abs=1e-9)
    proj = mine @ np.linalg.solve(mine.T @ mine, mine.T)
    np.testing.assert_allclose(proj @ theirs, theirs, atol=1e-9 * np.abs(theirs).max())
    a, b = sm.Z @ sm.Z.T, np.array(case["Z"]) @ np.array(case["Z"]).T
    ratio = np.sum(a * b) / np.sum(b * b)
    assert np.abs(a - ratio * b).max() < 1e-9 * np.abs(a).max()
    if "_cr" in name:
        np.testing.assert_allclose(sm.basis.knots, case["knots"], rtol=1e-12)


def test_cr_basis_interpolates_and_extends_linearly():
    d = build_design('accel ~ s(times, bs="cr")', _data("mcycle_cr"))
    basis = d.smooths[0].basis
    np.testing.assert_allclose(basis.basis(basis.knots), np.eye(10), atol=1e-12)
    # rows sum to one (constants are reproduced) and beyond the knots a linear function
    x = np.array([-20.0, -10.0, 0.0, 80.0, 90.0, 100.0])
    b = basis.basis(x)
    np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-12)
    z = basis.random(x)
    np.testing.assert_allclose(z[0] - 2 * z[1] + z[2], 0.0, atol=1e-9)
    np.testing.assert_allclose(z[3] - 2 * z[4] + z[5], 0.0, atol=1e-9)


# -- fits against gamm ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_fit_equals_gamm(fits, name):
    case, m = CASES[name], fits[name]
    assert m.converged
    assert m.loglik == pytest.approx(case["reml_loglik"], rel=1e-6)
    fitted = np.array(case["fitted_lme"])
    assert np.abs(m.fitted - fitted).max() < 1e-5 * np.ptp(fitted)
    assert m.sigma**2 == pytest.approx(case["sigma2"], rel=1e-5)
    # the other variance components, in gamm's units (the smooth's is scale-free: edf)
    if case["random"]:
        vg = m.varcorr.set_index("grp").loc["(1 | g)", "vcov"]
        assert vg == pytest.approx(case["var_components"][-2], rel=1e-4)
    else:
        assert m.edf == pytest.approx(case["edf"], rel=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_smooth_curve_and_band_equal_plot_gam(fits, name):
    grid = CASES[name]["smooth_grid"]
    m = fits[name]
    cur = m.smooth(m.design.smooths[0].label, x=grid["x"])
    assert np.abs(cur["fit"] - grid["fit"]).max() < 1e-5 * np.ptp(grid["fit"])
    np.testing.assert_allclose(cur["se"], grid["se"], rtol=1e-5)
    assert np.all(cur["lower"] < cur["fit"]) and np.all(cur["fit"] < cur["upper"])


# -- the RLRT ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TESTED)
def test_rlrt_statistic_equals_rlrsims(name):
    case = CASES[name]
    term = build_design(_formula(case), _data(name)).smooths[0].label
    res = vctest.vc_test(_formula(case), _data(name), term=term, nsim=2000, seed=1)
    assert res.statistic == pytest.approx(case["rlrt"]["statistic"], rel=1e-6)
    assert res.test == "RLRT" and res.method == "exact"
    assert res.pvalue == pytest.approx(1 / 2001)  # no null draw comes near
    assert res.settings["K"] == 8 and res.settings["p"] == len(case["X"][0])
    if case["random"]:
        assert "Greven" in res.reference


def _brute_force_null(sd, nsim: int, seed: int) -> np.ndarray:
    """sup over lambda >= 0 of Crainiceanu & Ruppert's f_R, on a fine log grid (dense NumPy)."""
    mu = sd.mu / sd.mu[0]
    k, n, p = mu.size, sd.n, sd.p
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((nsim, k)) ** 2
    rest = rng.chisquare(n - p - k, nsim)
    best = np.zeros(nsim)
    for lam in np.exp(np.linspace(-15.0, 25.0, 801)):
        num = w @ (lam * mu / (1 + lam * mu))
        den = w @ (1 / (1 + lam * mu)) + rest
        np.maximum(best, (n - p) * np.log1p(num / den) - np.sum(np.log1p(lam * mu)), out=best)
    # a positive slope at lambda = 0 gives a positive supremum however near 0 it lies
    slope0 = (n - p) * (w @ mu) / (w.sum(axis=1) + rest) - mu.sum()
    best[(best <= 0) & (slope0 > 0)] = 1e-12
    return best


@pytest.mark.parametrize("name", ["mcycle_cr", "sim_tp"])
def test_null_distribution(name):
    """Upper quantiles against RLRsim (4 MC SE); the mass at zero against a brute force.

    RLRsim's P(T = 0) for these designs is ~0.008 above the exact null's (also with a
    5000-point lambda grid, ``rlrt_fine_grid``); it equals the probability that the
    restricted likelihood decreases at lambda = 0, i.e. it misses maxima beyond a first
    dip.  The brute-force supremum agrees with vctest's.
    """
    case = CASES[name]
    d = build_design(_formula(case), _data(name))
    nsim = 100_000
    res = vctest.vc_test(_formula(case), _data(name), term=d.smooths[0].label, nsim=nsim,
                         seed=7)
    sample = res.null_distribution
    ref = case["rlrt"]
    for level, q in zip(ref["probs"], ref["quantiles"], strict=True):
        if level >= 0.9:
            frac = float(np.mean(sample <= q))
            assert abs(frac - level) < 4 * se_prop(level, nsim, ref["nsim"]), level
    sd = dense_spectral_design(d.X, d.smooths[0].Z)
    brute = _brute_force_null(sd, 40_000, seed=3)
    p0, b0 = float(np.mean(sample == 0)), float(np.mean(brute == 0))
    assert abs(p0 - b0) < 4 * se_prop(p0, nsim, brute.size)
    assert abs(float(np.mean(brute <= 1.0)) - float(np.mean(sample <= 1.0))) < 4 * se_prop(
        0.9, nsim, brute.size)


def test_amm_random_intercept_and_asymptotic():
    case = CASES["amm_cr"]
    data = _data("amm_cr")
    res = vctest.vc_test(_formula(case), data, term="(1 | g)", nsim=5000, seed=2)
    full, null = res.fits["full"], res.fits["null"]
    assert null.model.labels == ("s(x)",)
    linear = vctest.vc_test(_formula(case), data, term="s(x)", method="asymptotic")
    curve = linear.fits["null"].smooth("s(x)", x=[0.0, 0.5, 1.0])["fit"]  # a straight line
    assert curve[0] - 2 * curve[1] + curve[2] == pytest.approx(0.0, abs=1e-12)
    assert res.statistic == pytest.approx(null.objective - full.objective)
    assert res.statistic > 50
    asym = vctest.vc_test(_formula(case), data, term="s(x)", method="asymptotic")
    assert asym.method == "asymptotic"
    assert asym.pvalue == pytest.approx(0.5 * math.erfc(math.sqrt(asym.statistic / 2)))


def test_term_aliases_and_ml():
    data = _data("sim_cr")
    a = vctest.vc_test('y ~ s(x, bs = "cr", k = 10)', data, term="s(x)", nsim=500, seed=1)
    b = vctest.vc_test('y ~ s(x, bs = "cr", k = 10)', data, term='s(x, bs = "cr", k = 10)',
                       nsim=500, seed=1)
    assert a.statistic == b.statistic and a.pvalue == b.pvalue
    ml = vctest.vc_test('y ~ s(x, bs = "cr", k = 10)', data, term="x", nsim=500, seed=1,
                        reml=False)
    assert ml.test == "LRT" and ml.statistic > 50


def test_statistic_under_h0_follows_the_exact_null():
    """Data sets with a linear truth: the fitted RLRT statistics follow the exact null.

    300 data sets on one design (x fixed), so one exact null applies: its mass at zero
    and its 0.9 quantile against the statistics' (4 SE of the 300 statistics).
    """
    rng = np.random.default_rng(41)
    n = 60
    x = np.sort(rng.uniform(size=n))
    stats = []
    for _ in range(300):
        d = pd.DataFrame({"x": x, "y": 1 + 2 * x + rng.normal(0, 0.5, n)})
        d0 = build_design("y ~ s(x, bs = 'cr', k = 8)", d)
        stats.append(fit_smooth(d0, drop="s(x)").objective - fit_smooth(d0).objective)
    stats = np.maximum(np.array(stats), 0.0)
    sd = dense_spectral_design(d0.X, d0.smooths[0].Z)
    null = vctest.rlrt_null(sd.mu, sd.n, sd.p, nsim=200_000, seed=5)
    p0 = float(np.mean(null == 0))
    assert abs(float(np.mean(stats < 1e-8)) - p0) < 4 * se_prop(p0, 300)
    q90 = float(np.quantile(null, 0.9))
    assert abs(float(np.mean(stats > q90)) - 0.1) < 4 * se_prop(0.1, 300)


# -- predict and plots ------------------------------------------------------------------------


def test_predict_uses_the_fits_basis(fits):
    m = fits["mcycle_cr"]
    data = _data("mcycle_cr")
    np.testing.assert_allclose(m.predict(), m.fitted, rtol=1e-12)
    sub = data.iloc[[5, 50, 100]]
    # a few rows alone: the basis is not learnt again from them
    np.testing.assert_allclose(m.predict(sub), m.fitted[[5, 50, 100]], rtol=1e-10)
    amm = fits["amm_cr"]
    new = pd.DataFrame({"x": [0.3, 0.3], "g": ["g01", "zz"]})
    with pytest.raises(ValueError, match="allow_new_levels"):
        amm.predict(new)
    pred = amm.predict(new, allow_new_levels=True)
    assert pred[0] - pred[1] == pytest.approx(amm.ranef("(1 | g)")[0])
    pop = amm.predict(new, re_form="~0")
    assert pop[0] == pytest.approx(pop[1]) == pytest.approx(pred[1])


@pytest.mark.parametrize("name", ["byd_num", "byd_fac"])
def test_by_smooths_predict_and_test(fits, name):
    m, data = fits[name], _data(name)
    rows = [3, 100, 201]
    np.testing.assert_allclose(m.predict(data.iloc[rows]), m.fitted[rows], rtol=1e-10)
    label = m.design.smooths[-1].label
    assert label == ("s(x):z" if name == "byd_num" else "s(x):fb")
    res = vctest.vc_test(_formula(CASES[name]), data, term=label, method="asymptotic")
    assert res.term == label and res.statistic > 10
    if name == "byd_fac":  # the level's smooth is zero on the other level's rows
        sm = m.design.smooths[0]
        assert np.all(sm.Z[(data["f"] == "b").to_numpy()] == 0)
        with pytest.raises(ValueError, match="names several"):
            m.smooth("x")


@pytest.mark.parametrize("name", ["mcycle_cr", "mcycle_tp", "mcycle_ps"])
def test_predict_new_x_equals_mgcv(fits, name):
    """At new x, beyond the data's range too (cr and ps continue linearly, as mgcv's)."""
    ref = CASES[name]["predict_new"]
    pred = fits[name].predict(pd.DataFrame({"times": ref["times"]}))
    fitted = np.array(CASES[name]["fitted_lme"])
    assert np.abs(pred - ref["fit"]).max() < 1e-5 * np.ptp(fitted)


def test_plot_smooth(fits):
    import matplotlib

    matplotlib.use("Agg")
    ax = fits["mcycle_tp"].plot_smooth("s(times)")
    assert ax.get_ylabel() == "s(times)"
    assert len(ax.collections) >= 2  # band and partial residuals
    with pytest.raises(ValueError, match="not a smooth term"):
        fits["mcycle_tp"].plot_smooth("s(nope)")


def test_fit_api_and_cli(tmp_path, capsys):
    m = vctest.fit('accel ~ s(times, bs="cr")', _data("mcycle_cr"))
    assert isinstance(m, SmoothFit)
    assert m.loglik == pytest.approx(CASES["mcycle_cr"]["reml_loglik"], rel=1e-6)
    path = tmp_path / "mcycle.csv"
    _data("mcycle_cr").to_csv(path, index=False)
    code = main(["test", str(path), 'accel ~ s(times, bs="cr")', "--term", "s(times)",
                 "--nsim", "1000", "--seed", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["statistic"] == pytest.approx(CASES["mcycle_cr"]["rlrt"]["statistic"], rel=1e-6)


def test_docs_page_example():
    import doctest

    import matplotlib

    matplotlib.use("Agg")
    page = Path(__file__).parents[1] / "docs" / "smooth.rst"
    out = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert out.failed == 0 and out.attempted >= 7


# -- binomial and Poisson (Laplace, against gamm4/glmer) -------------------------------------

GLMM = {c["name"]: c for c in REF["glmm_cases"]}


@pytest.fixture(scope="module")
def glmm_fits():
    data = pd.DataFrame(REF["data"]["glmd"])
    return {name: vctest.fit(_formula(c), data, family=c["family"]) for name, c in GLMM.items()}


@pytest.mark.parametrize("name", list(GLMM))
def test_glmm_fit_equals_gamm4(glmm_fits, name):
    """gamm4 run with tight glmer tolerances (validation/r/smooth_gamm.R)."""
    case, m = GLMM[name], glmm_fits[name]
    assert m.converged
    assert m.loglik == pytest.approx(case["loglik"], rel=1e-6)
    fitted = np.array(case["fitted"])
    assert np.abs(m.fitted - fitted).max() < 1e-5 * np.ptp(fitted)
    grid = case["smooth_grid"]
    cur = m.smooth("s(x)", x=grid["x"])
    assert np.abs(cur["fit"] - grid["fit"]).max() < 1e-5 * np.ptp(grid["fit"])
    np.testing.assert_allclose(cur["se"], grid["se"], rtol=1e-4)
    # the null model (the smooth's penalised part dropped) is R's glm(y ~ x): ML does not
    # depend on the scale of the fixed columns
    from vctest.model.smooth_glmm import fit_smooth_glmm

    null = fit_smooth_glmm(m.design, case["family"], drop="s(x)")
    # R's null: glm(y ~ x), or glmer(y ~ x + (1 | g)) whose own optimiser limits the match
    assert null.loglik == pytest.approx(case["null_loglik"], rel=1e-10 if not case["random"]
                                        else 1e-6)
    np.testing.assert_allclose(m.predict(), m.fitted, rtol=1e-12)
    new = pd.DataFrame({"x": [0.25, 0.75], "g": ["g01", "g01"]})
    eta = m.predict(new if case["random"] else new[["x"]], type="link")
    assert np.all(np.isfinite(eta))


def test_glmm_bootstrap_replicates_are_refits():
    data = pd.DataFrame(REF["data"]["glmd"])
    formula = GLMM["poisson_cr"]["formula"]
    res = vctest.vc_test(formula, data, term="s(x)", family="poisson", nsim=6, seed=4)
    again = vctest.vc_test(formula, data, term="s(x)", family="poisson", nsim=6, seed=4)
    assert res.method == "bootstrap" and res.test == "LRT"
    np.testing.assert_array_equal(res.null_distribution, again.null_distribution)
    assert res.statistic == pytest.approx(
        res.fits["null"].objective - res.fits["full"].objective)
    assert res.statistic > 50 and res.pvalue == pytest.approx(1 / 7)
    # replicate 1 by hand: a response simulated from the null fit, both models refitted
    from vctest._rng import seed_sequence
    from vctest.formula import build_design as bd
    from vctest.model.smooth_glmm import fit_smooth_glmm

    rng = np.random.default_rng(seed_sequence(4))
    ystar = rng.poisson(res.fits["null"].fitted).astype(float)
    d = bd(formula, data)
    by_hand = (fit_smooth_glmm(d, "poisson", drop="s(x)", y=ystar).objective
               - fit_smooth_glmm(d, "poisson", y=ystar).objective)
    assert res.null_distribution[0] == pytest.approx(max(by_hand, 0.0), abs=1e-6)
    with pytest.raises(ValueError, match="no exact null"):
        vctest.vc_test(formula, data, term="s(x)", family="poisson", method="exact")
    with pytest.raises(ValueError, match="canonical link"):
        vctest.fit(GLMM["binomial_cr"]["formula"], data, family="binomial", link="probit")


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("formula, match", [
    ("y ~ s(x, by = log(z))", "must name a column"),
    ("y ~ s(x, bs = 'ad')", "bs = 'ad' is not implemented"),
    ("y ~ s(x, z)", "one numeric column"),
    ("y ~ s(x, m = 3)", "m of mgcv"),
    ("y ~ s(x, k = 3)", "k >= 4"),
    ("y ~ s(x, k = ten)", "whole number"),
    ("y ~ s(x) + s(x, bs = 'cr')", "two smooth terms"),
])
def test_parse_refusals(formula, match):
    with pytest.raises(ValueError, match=match):
        parse_formula(formula)


def test_design_and_model_refusals():
    data = _data("amm_cr").assign(w=1.0, c=lambda d: d["g"])
    with pytest.raises(ValueError, match="fewer than the basis dimension"):
        build_design("y ~ s(x, k = 20)", data.iloc[:15])
    with pytest.raises(ValueError, match="not numeric"):
        build_design("y ~ s(c)", data)
    with pytest.raises(ValueError, match="correlated columns"):
        vctest.fit("y ~ s(x) + (1 + x | g)", data)
    with pytest.raises(ValueError, match="weights"):
        vctest.fit("y ~ s(x)", data, weights="w")
    with pytest.raises(ValueError, match="method='bootstrap' is not implemented for Gaussian"):
        vctest.vc_test("y ~ s(x)", data, term="s(x)", method="bootstrap")
    with pytest.raises(ValueError, match="is not a term of the model"):
        vctest.vc_test("y ~ s(x)", data, term="s(z)")
    with pytest.raises(ValueError, match=r"smooth terms .* are not supported"):
        vctest.ranova("y ~ s(x) + (1 | g)", data)
    with pytest.raises(ValueError, match=r"smooth terms .* are not supported in compare"):
        vctest.compare("y ~ s(x) + (1 | g)", "y ~ x + (1 | g)", data, nsim=10)
    with pytest.raises(ValueError, match="check\\(\\) does not support"):
        vctest.check(vctest.fit("y ~ s(x)", data))


def test_size_limits(monkeypatch):
    wide = pd.DataFrame({"x": np.arange(2001.0), "y": np.sin(np.arange(2001.0))})
    with pytest.raises(ValueError, match="uses at most 2000"):
        build_design("y ~ s(x, bs = 'tp')", wide)
    assert build_design("y ~ s(x, bs = 'cr')", wide).smooths[0].q == 8
    # predicting 900 new x for a tp fit on 1200 unique x builds no basis from the new rows
    m = vctest.fit("y ~ s(x, bs = 'tp')", wide.iloc[:1200])
    new = pd.DataFrame({"x": np.arange(900.0) + 0.5})
    pred = m.predict(new)
    np.testing.assert_allclose(pred, m.smooth("x", x=new["x"])["fit"] + m.beta.iloc[0],
                               rtol=1e-10, atol=1e-12)
    import vctest.model.smooth_fit as sf

    monkeypatch.setattr(sf, "MAX_DENSE_Q", 20)
    with pytest.raises(ValueError, match="dense systems of at most 20"):
        vctest.fit("y ~ s(x) + (1 | g)", _data("amm_cr"))
