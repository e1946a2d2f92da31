"""``vc_test(term="s(x)", test="constant")``: H0 "f is constant" (issue #18).

Oracles: ``validation/reference/smooth_constant.json`` (``Rscript
validation/r/smooth_constant.R``: mgcv ``gamm(method = "ML")`` against ``lm`` without
the smooth, RLRsim ``exactLRT(m, m0)``, i.e. ``LRTSim`` with q = 1), a dense NumPy
ML fit, a dense brute-force supremum over lambda of Crainiceanu & Ruppert's LRT null
with restricted fixed effects, and :func:`vctest.exact_lrt` on the design's own matrices.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import gammaln

import vctest
from vctest.api.smooth_constant import constant_null
from vctest.api.smooth_test import dense_spectral_design
from vctest.cli import main
from vctest.formula import build_design
from vctest.model.smooth_fit import fit_smooth

from .test_spectral import se_prop

REF = json.loads((Path(__file__).parents[1] / "validation/reference/smooth_constant.json")
                 .read_text())
CASES = {c["name"]: c for c in REF["cases"]}
TERMS = {"mcycle_cr": "s(times)", "mcycle_tp": "s(times)", "flat_cr": "s(x)",
         "lin_ps": "s(x)", "byd_cr": "s(x):z"}


def _data(name: str) -> pd.DataFrame:
    return pd.DataFrame(REF["data"][name.split("_")[0]])


def _formula(name: str) -> str:
    return CASES[name]["formula"]


@pytest.mark.parametrize("name", list(CASES))
def test_statistic_and_fits_equal_rlrsims_exact_lrt(name):
    """gamm(method = "ML") against lm(): both log-likelihoods and the statistic."""
    case = CASES[name]
    res = vctest.vc_test(_formula(name), _data(name), term=TERMS[name], test="constant",
                         nsim=2000, seed=1)
    assert res.test == "LRT" and res.method == "exact" and res.term == TERMS[name]
    assert res.settings["test"] == "constant" and res.settings["reml"] is False
    assert res.settings["null_formula"].replace(" ", "") == case["null_formula"].replace(" ", "")
    assert res.settings["q"] == 1
    assert res.fits["full"].loglik == pytest.approx(case["ml_loglik"], rel=1e-9)
    assert -0.5 * res.fits["null"]["objective"] == pytest.approx(case["null_loglik"],
                                                                 rel=1e-12)
    # nlme's ML optimum is 3e-8 short of the maximum for flat_cr (vctest's is higher)
    assert res.statistic == pytest.approx(case["statistic"], rel=1e-7, abs=1e-7)
    assert res.statistic >= case["statistic"] - 1e-12
    assert "is it constant?" in res.summary()
    if case["pvalue"] == 0:
        assert res.pvalue == pytest.approx(1 / 2001)


def _dense_ml_deviance(y: np.ndarray, X: np.ndarray, Z: np.ndarray) -> float:
    """-2 max log-likelihood of y ~ N(X beta, sigma^2 (I + lam Z Z')) by brute force."""
    n = y.size

    def dev(loglam: float) -> float:
        v = np.eye(n) + math.exp(loglam) * Z @ Z.T
        c = np.linalg.cholesky(v)
        xw, yw = np.linalg.solve(c, X), np.linalg.solve(c, y)
        r = yw - xw @ np.linalg.lstsq(xw, yw, rcond=None)[0]
        return n * math.log(2 * math.pi * (r @ r) / n) + n + 2 * np.sum(np.log(np.diag(c)))

    grid = np.linspace(-20, 12, 81)
    j = int(np.argmin([dev(t) for t in grid]))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    best = minimize_scalar(dev, bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-10}).fun
    r = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    at_zero = n * math.log(2 * math.pi * (r @ r) / n) + n
    return min(best, at_zero)


@pytest.mark.parametrize("name", ["lin_ps", "byd_cr"])
def test_statistic_equals_a_dense_numpy_computation(name):
    """LRT = ML deviance of the linear model without f's non-constant part minus the
    smooth model's, each computed here from dense matrices."""
    d = build_design(_formula(name), _data(name))
    sm = d.smooths[0]
    y, X = d.y, d.X
    keep = [j for j in range(d.p) if j not in sm.fixed_columns]
    x0 = X[:, keep]
    if CASES[name]["null_formula"].endswith("z"):
        x0 = np.column_stack([x0, _data(name)["z"].to_numpy()])
    r0 = y - x0 @ np.linalg.lstsq(x0, y, rcond=None)[0]
    null_dev = d.n * math.log(2 * math.pi * (r0 @ r0) / d.n) + d.n
    stat = null_dev - _dense_ml_deviance(y, X, sm.Z)
    res = vctest.vc_test(_formula(name), _data(name), term=TERMS[name], test="constant",
                         nsim=200, seed=1)
    assert res.statistic == pytest.approx(stat, rel=1e-8)
    assert res.statistic == pytest.approx(
        res.fits["null"]["objective"] - fit_smooth(d, reml=False).objective, rel=1e-9)


@pytest.mark.parametrize("name", ["lin_ps", "byd_cr"])
def test_glue_is_exact_lrt_on_the_designs_own_matrices(name):
    """Bit for bit: the same null draws and p-value as exact_lrt given the design's X
    (the null-space columns as the design holds them) and the smooth's Z, q = 1."""
    data = _data(name)
    d = build_design(_formula(name), data)
    sm = d.smooths[0]
    if sm.term.by is None:
        X = pd.DataFrame(d.X, columns=list(d.fixed_names))
        q = [d.fixed_names[sm.fixed_columns[0]]]
    else:  # f(x) z constant = c z: the null keeps z; z x (here built by hand) is restricted
        X = pd.DataFrame({"1": 1.0, "z": data["z"], "zx": data["z"] * data["x"]})
        q = ["zx"]
    res = vctest.vc_test(_formula(name), data, term=TERMS[name], test="constant",
                         nsim=20_000, seed=5)
    ref = vctest.exact_lrt(d.y, X, sm.Z, q=q, nsim=20_000, seed=5)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)
    np.testing.assert_allclose(np.sort(res.null_distribution), np.sort(ref.null_distribution),
                               rtol=1e-10, atol=1e-12)
    assert res.pvalue == ref.pvalue and res.seed_entropy == ref.seed_entropy
    if sm.term.by is None:  # the very same matrices: the very same draws
        np.testing.assert_array_equal(res.null_distribution, ref.null_distribution)


def _brute_force_lrt_null(sd, q: int, nsim: int, seed: int) -> np.ndarray:
    """LRT null with q restricted fixed effects (Crainiceanu & Ruppert 2004, eq. 8): a
    fine log grid over lambda, dense NumPy, separate from vctest's kernels."""
    mu, xi = sd.mu, sd.xi
    k, n, p = mu.size, sd.n, sd.p
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((nsim, k)) ** 2
    rest = rng.chisquare(n - p - k, nsim)
    u = rng.chisquare(q, nsim)
    best = np.zeros(nsim)
    for lam in np.exp(np.linspace(-15.0, 25.0, 801)):
        num = w @ (lam * mu / (1 + lam * mu))
        den = w @ (1 / (1 + lam * mu)) + rest
        np.maximum(best, n * np.log1p(num / den) - np.sum(np.log1p(lam * xi)), out=best)
    return best + n * np.log1p(u / (w.sum(axis=1) + rest))


@pytest.mark.parametrize("name", ["mcycle_cr", "flat_cr"])
def test_null_distribution(name):
    """Upper quantiles against RLRsim's LRTSim (4 MC SE) and the whole body against a
    brute-force supremum.  RLRsim's quantiles sit slightly low in the body (its median
    ~0.015 below), as its RLRT mass at zero does (docs/smooth.rst): a first local maximum."""
    nsim = 100_000
    res = vctest.vc_test(_formula(name), _data(name), term=TERMS[name], test="constant",
                         nsim=nsim, seed=7)
    sample = res.null_distribution
    assert float(np.mean(sample == 0)) == 0.0  # the restricted fixed effect: T > 0 a.s.
    for level, q in CASES[name]["null_quantiles"].items():
        level = float(level)
        if level >= 0.9:
            frac = float(np.mean(sample <= q))
            assert abs(frac - level) < 4 * se_prop(level, nsim, REF["nsim"]), level
    d = build_design(_formula(name), _data(name))
    sd = dense_spectral_design(d.X, d.smooths[0].Z)
    brute = _brute_force_lrt_null(sd, 1, 40_000, seed=3)
    for level in (0.25, 0.5, 0.75, 0.9, 0.95):
        t = float(np.quantile(brute, level))
        assert abs(float(np.mean(sample <= t)) - level) < 4 * se_prop(level, nsim, brute.size)


def test_size_under_h0():
    """300 data sets with a constant truth on one design: the fitted LRT statistics
    against the exact null's 0.5 and 0.95 quantiles (4 SE of the 300)."""
    rng = np.random.default_rng(43)
    n = 60
    x = np.sort(rng.uniform(size=n))
    stats = []
    for _ in range(300):
        d = build_design("y ~ s(x, bs = 'cr', k = 8)",
                         pd.DataFrame({"x": x, "y": 3 + rng.normal(0, 0.5, n)}))
        r0 = d.y - d.y.mean()
        null_dev = n * math.log(2 * math.pi * (r0 @ r0) / n) + n
        stats.append(null_dev - fit_smooth(d, reml=False).objective)
    stats = np.array(stats)
    cn = constant_null(d, "s(x)")
    null = vctest.exact_lrt(d.y, cn.X, cn.Z, q=list(cn.restricted), nsim=200_000,
                            seed=6).null_distribution
    for level in (0.5, 0.95):
        t = float(np.quantile(null, level))
        assert abs(float(np.mean(stats > t)) - (1 - level)) < 4 * se_prop(level, 300)


# -- binomial and Poisson: the bootstrap ------------------------------------------------------


def test_poisson_bootstrap_refits_the_null_glm():
    rng = np.random.default_rng(8)
    x = rng.uniform(size=150)
    data = pd.DataFrame({"x": x, "c": rng.poisson(np.exp(0.5 + 0.8 * x))})
    formula = "c ~ s(x, bs = 'cr', k = 8)"
    res = vctest.vc_test(formula, data, term="s(x)", test="constant", family="poisson",
                         nsim=8, seed=4)
    again = vctest.vc_test(formula, data, term="s(x)", test="constant", family="poisson",
                           nsim=8, seed=4)
    np.testing.assert_array_equal(res.null_distribution, again.null_distribution)
    assert res.method == "bootstrap" and res.test == "LRT"
    assert res.settings["test"] == "constant" and res.settings["restricted"] == ["s(x)Fx1"]
    assert res.settings["null_formula"] == "c ~ 1"
    assert "50:50 mixture chi2(1):chi2(2)" in res.asymptotic
    # the null model is the intercept-only Poisson GLM: mu = mean(c), closed form
    c = data["c"].to_numpy(float)
    loglik0 = float(np.sum(c * math.log(c.mean()) - c.mean() - gammaln(c + 1)))
    assert res.fits["null"].loglik == pytest.approx(loglik0, rel=1e-10)
    assert res.statistic == pytest.approx(
        res.fits["null"].objective - res.fits["full"].objective)
    assert res.statistic > 10  # a linear trend: far from constant
    # replicate 1 by hand: a response from the null GLM, the smooth model and the GLM refitted
    from vctest._rng import seed_sequence
    from vctest.model.smooth_glmm import fit_smooth_glmm

    ystar = np.random.default_rng(seed_sequence(4)).poisson(res.fits["null"].fitted)
    d = build_design(formula, data)
    full = fit_smooth_glmm(d, "poisson", y=ystar.astype(float)).objective
    mu0 = ystar.mean()
    null = -2 * float(np.sum(ystar * math.log(mu0) - mu0 - gammaln(ystar + 1)))
    assert res.null_distribution[0] == pytest.approx(max(null - full, 0.0), abs=1e-6)
    asym = vctest.vc_test(formula, data, term="s(x)", test="constant", family="poisson",
                          method="asymptotic")
    assert asym.statistic == res.statistic
    assert asym.pvalue == pytest.approx(0.5 * math.exp(-res.statistic / 2) + 0.5 * (
        math.erfc(math.sqrt(res.statistic / 2))))   # chi2(2) and chi2(1) tails


# -- refusals ---------------------------------------------------------------------------------


def _toy() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x": rng.uniform(size=80), "y": rng.normal(size=80),
                         "g": np.repeat(list("abcd"), 20)})


@pytest.mark.parametrize("formula, kwargs, match", [
    ("y ~ s(x)", {"test": "flat"}, "`test` must be 'linear'"),
    ("y ~ s(x) + (1 | g)", {}, r"only variance component, but the model also has \(1 \| g\)"),
    ("y ~ g + s(x, by = g)", {"term": "s(x):ga"}, "also has s\\(x\\):gb"),
    ("y ~ 0 + s(x)", {}, "Add the intercept"),
    ("y ~ s(x) + (1 | g)", {"term": "(1 | g)"}, "is a random-effects term"),
    ("y ~ x + (1 | g)", {"term": "(1 | g)"}, "the model has none"),
    ("y ~ s(x)", {"method": "asymptotic"}, "method='asymptotic' is not implemented for "
                                            "test='constant'"),
    ("y ~ s(x)", {"method": "bootstrap"}, "method='bootstrap' is not implemented for "
                                           "test='constant'"),
])
def test_refusals(formula, kwargs, match):
    kwargs = {"term": "s(x)", "test": "constant", "nsim": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        vctest.vc_test(formula, _toy(), **kwargs)


def test_refused_before_any_draw(monkeypatch):
    """What a smooth model refuses (prior weights, a factor response) is refused before
    the exact null is drawn."""
    import vctest.api.smooth_constant as sc

    monkeypatch.setattr(sc, "design_test", lambda *a, **k: pytest.fail("drew the null"))
    data = _toy().assign(w=2.0, b=lambda d: np.where(d["y"] > 0, "hi", "lo"))
    with pytest.raises(ValueError, match="weights"):
        vctest.vc_test("y ~ s(x)", data, term="s(x)", test="constant", weights="w")
    with pytest.raises(ValueError, match="is a factor"):
        vctest.vc_test("b ~ s(x)", data, term="s(x)", test="constant")


def test_other_fixed_effects_stay_in_the_null_model():
    data = _toy().assign(w=lambda d: np.sin(5 * d["x"]) + np.arange(80) % 3)
    res = vctest.vc_test("y ~ w + s(x, bs = 'cr', k = 6)", data, term="s(x)",
                         test="constant", nsim=500, seed=1)
    assert res.settings["null_formula"] == "y ~ w"
    assert res.fits["null"]["columns"] == ["(Intercept)", "w"]
    assert res.settings["restricted"] == ["s(x)Fx1"]
    d = build_design("y ~ w + s(x, bs = 'cr', k = 6)", data)
    assert res.statistic == pytest.approx(
        res.fits["null"]["objective"] - fit_smooth(d, reml=False).objective, rel=1e-9)


def test_refusals_are_in_the_errors_page():
    text = (Path(__file__).parents[1] / "docs" / "errors.rst").read_text()
    for phrase in ("`test` must be 'linear'", "only variance component", "Add the intercept",
                   "is a random-effects term", "the model has none",
                   "is not implemented for test='constant'"):
        assert phrase.replace("`", "``") in text or phrase in text, phrase


# -- command line -----------------------------------------------------------------------------


def test_cli_text_json_and_errors(tmp_path, capsys):
    path = tmp_path / "lin.csv"
    _data("lin_ps").assign(g=np.repeat(np.arange(12), 10)).to_csv(path, index=False)
    formula = CASES["lin_ps"]["formula"]
    args = ["test", str(path), formula, "--term", "s(x)", "--test", "constant", "--nsim",
            "2000", "--seed", "3"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "LRT of s(x) (exact null): is it constant?" in text
    assert "null model: y ~ 1" in text
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    api = vctest.vc_test(formula, _data("lin_ps"), term="s(x)", test="constant", nsim=2000,
                         seed=3)
    assert out["statistic"] == pytest.approx(api.statistic, rel=1e-12)
    assert out["pvalue"] == api.pvalue
    assert out["settings"]["restricted"] == ["s(x)Fx1"] and out["test"] == "LRT"
    # an input error: JSON on stdout, exit status 2, no traceback
    assert main(["test", str(path), formula + " + (1 | g)", "--term", "s(x)",
                 "--test", "constant", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["type"] == "ValueError" and "only variance component" in err["message"]
    assert main([*args, "--test", "flat", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["type"] == "UsageError" and "--test" in err["message"]
