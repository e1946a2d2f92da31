"""power_curve (issue 20): study designs, power along a size axis, against exact oracles.

The oracle: in a balanced one-way layout (K groups of J, X = 1) the RLRT is an
increasing function of the ANOVA F statistic, RLRT = (n-1) log((aF + b)/(n-1)) - a log F
for F > 1 (0 otherwise; a = K - 1, b = n - K), and F / (1 + J lambda) ~ F(a, b) with
lambda = sigma_b^2 / sigma^2.  So every method's rejection rate has a closed form:
the naive chi-square and the chi-bar-square mixture reject above a fixed RLRT,
hence above a fixed F; a Monte Carlo test with B draws of the exact null (or of
the parametric bootstrap: the null is pivotal) rejects when at most
alpha (B + 1) - 1 of its B draws reach the observed statistic, each with
probability u = P(F(a, b) >= F_obs).  Tolerances are 4 binomial standard errors.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, chi2, f

import vctest
from vctest.api.power_curve import _pair, _task
from vctest.api.study import extend_frame
from vctest.nulls.approximations import decision_bounds, decision_is_clear

ALPHA = 0.05
J = 4


def one_way(lam: float, K: int = 6) -> vctest.StudyModel:
    d = vctest.design_frame({"g": K, "rep": J})
    return vctest.make_model("y ~ 1 + (1 | g)", d, fixef=[3.0], varcorr={"g": lam * 4.0},
                             sigma=2.0)


def rlrt_of_f(x: np.ndarray, K: int) -> np.ndarray:
    n = K * J
    a, b = K - 1, n - K
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (n - 1) * np.log((a * x + b) / (n - 1)) - a * np.log(x)
    return np.where(x > 1, t, 0.0)


def oracle(method: str, K: int, lam: float, B: int) -> float:
    """The exact rejection rate of ``method`` (B draws for the Monte Carlo tests)."""
    a, b = K - 1, K * J - K
    q = (np.arange(100_000) + 0.5) / 100_000  # midpoint rule over the quantiles of F_obs
    x = (1 + J * lam) * f.ppf(q, a, b)
    if method == "naive":
        return float(np.mean(rlrt_of_f(x, K) > chi2.ppf(1 - ALPHA, 1)))
    if method == "asymptotic":
        return float(np.mean(rlrt_of_f(x, K) > chi2.ppf(1 - 2 * ALPHA, 1)))
    u = np.where(x > 1, f.sf(x, a, b), 1.0)
    kmax = math.floor(ALPHA * (B + 1) - 1 + 1e-12)
    return float(np.mean(binom.cdf(kmax, B, u)))


def within_mc_error(rate: float, expected: float, n: int) -> bool:
    se = math.sqrt(max(expected * (1 - expected), 1e-4) / n)
    return abs(rate - expected) <= 4 * se


@pytest.mark.slow
@pytest.mark.parametrize("lam", [0.0, 0.4])
def test_exact_and_closed_form_methods_match_the_f_oracle(lam):
    sizes, nsim, B = [3, 6, 10], 600, 2000
    pc = vctest.power_curve(one_way(lam), term="(1 | g)", along="g", sizes=sizes, nsim=nsim,
                            methods=("exact", "asymptotic", "naive"), nsim_exact=B,
                            sequential=False, seed=2020, progress=False)
    assert pc.table["failed"].sum() == 0
    for K in sizes:
        for method in ("exact", "asymptotic", "naive"):
            expected = oracle(method, K, lam, B)
            rate = pc.rate(method)[K]
            assert within_mc_error(rate, expected, nsim), (K, method, rate, expected)
            if lam == 0.0 and method == "exact":
                assert within_mc_error(rate, ALPHA, nsim)
            if lam == 0.0 and method == "naive":  # conservative: below its nominal level
                assert expected < ALPHA and rate < ALPHA
    if lam > 0:  # power rises with the number of groups
        assert pc.rate("exact")[10] > pc.rate("exact")[3] + 0.15


@pytest.mark.slow
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_bootstrap_matches_the_f_oracle(lam):
    sizes, nsim, B = ([6] if lam == 0 else [4, 8]), 200, 99
    pc = vctest.power_curve(one_way(lam), term="(1 | g)", along="g", sizes=sizes, nsim=nsim,
                            methods=("bootstrap",), nsim_bootstrap=B, sequential=False,
                            seed=31, progress=False)
    for K in sizes:
        expected = oracle("bootstrap", K, lam, B)
        rate = pc.rate("bootstrap")[K]
        assert within_mc_error(rate, expected, nsim), (K, rate, expected)
        if lam == 0.0:
            assert abs(expected - ALPHA) < 1e-3  # floor(alpha (B + 1)) / (B + 1) = 0.05


def test_sequential_stopping_keeps_the_exact_power():
    # sequential decisions differ from unlimited draws with probability <= stop_error
    nsim, K = 600, 6
    pc = vctest.power_curve(one_way(0.4), term="(1 | g)", along="g", sizes=[K], nsim=nsim,
                            methods=("exact",), seed=5, progress=False)
    a, b = K - 1, K * J - K
    expected = float(f.sf(f.ppf(1 - ALPHA, a, b) / (1 + J * 0.4), a, b))  # the F-test's
    assert within_mc_error(pc.rate("exact")[K], expected, nsim)
    assert pc.table["mean_draws"].iloc[0] < 5000  # most decisions settle early


@pytest.mark.slow
def test_random_slope_with_correlation_bootstrap_size():
    d = vctest.design_frame({"Subject": 10, "Days": range(6)})
    m = vctest.make_model("y ~ Days + (Days | Subject)", d, fixef=[0.0, 0.5],
                          theta=[1.0, 0.0, 0.0], sigma=1.0)
    nsim = 120
    pc = vctest.power_curve(m, term="(0 + Days | Subject)", along="Subject", sizes=[10],
                            nsim=nsim, nsim_bootstrap=99, seed=8, progress=False)
    assert pc.methods == ("bootstrap", "asymptotic", "naive")
    assert pc.settings["df"] == 2
    assert within_mc_error(pc.rate("bootstrap")[10], ALPHA, nsim)
    assert pc.rate("naive")[10] <= pc.rate("asymptotic")[10]  # chi2(2) is the larger cut


@pytest.mark.slow
def test_glmm_power_curve_size_and_rise():
    g = vctest.design_frame({"herd": 20, "period": 4})
    make = lambda var: vctest.make_model("y ~ 1 + (1 | herd)", g, fixef=[-0.5],  # noqa: E731
                                         varcorr={"herd": var}, family="binomial")
    nsim = 120
    null = vctest.power_curve(make(0.0), term="(1 | herd)", along="herd", sizes=[20],
                              nsim=nsim, methods=("bootstrap",), nsim_bootstrap=99, seed=9,
                              progress=False)
    assert within_mc_error(null.rate("bootstrap")[20], ALPHA, nsim)
    alt = vctest.power_curve(make(1.0), term="(1 | herd)", along="herd", sizes=[8, 30],
                             nsim=60, methods=("asymptotic", "naive"), seed=9, progress=False)
    assert alt.rate("asymptotic")[30] > alt.rate("asymptotic")[8]
    assert alt.settings["family"] == "binomial" and alt.settings["reml"] is False


def test_null_formula_for_any_nested_pair():
    d = vctest.design_frame({"Subject": 8, "Days": range(5)})
    m = vctest.make_model("y ~ Days + (1 | Subject) + (0 + Days | Subject)", d,
                          fixef=[0.0, 1.0], varcorr={"(1 | Subject)": 1.0,
                                                     "(0 + Days | Subject)": 0.5})
    pc = vctest.power_curve(m, null="y ~ Days", along="Subject", sizes=[8], nsim=30,
                            methods=("bootstrap", "naive"), nsim_bootstrap=49, seed=1,
                            progress=False)
    assert pc.settings["df"] == 2 and pc.settings["null_formula"] == "y ~ Days"
    assert pc.rate("naive")[8] > 0.8  # both variances are large


def test_two_seeds_give_different_inner_draws_and_one_seed_the_same():
    model = one_way(0.3)
    frame = extend_frame(model.frame, along="g", n=6)
    design = model.design(frame)
    pair = _pair(model, design, frame, "(1 | g)", None, True)
    task = _task(model, design, pair, ("exact",), ALPHA, 2000, 99, False, 1e-3,
                 np.random.SeedSequence(1), None)
    stat = np.full(3, 2.0)  # three data sets with the same statistic
    p1, _ = task._exact(stat, 0)
    again, _ = dataclasses.replace(task, seed=np.random.SeedSequence(1))._exact(stat, 0)
    p2, _ = dataclasses.replace(task, seed=np.random.SeedSequence(2))._exact(stat, 0)
    assert np.array_equal(p1, again)
    assert not np.array_equal(p1, p2)  # another user seed: other null draws
    assert len(set(p1)) > 1  # each data set draws its own null
    later, _ = task._exact(stat, 5)  # data sets 5..7: yet other streams
    assert not np.array_equal(p1, later)


def test_power_inner_tests_follow_the_user_seed(monkeypatch):
    power_module = importlib.import_module("vctest.api.power")  # the module, not the function
    seen: list[tuple] = []
    real = power_module.test_term

    def spy(design, term, method, draws, **kw):
        ss = draws.seed
        seen.append((tuple(np.atleast_1d(ss.entropy)), ss.spawn_key))
        return real(design, term, method, draws, **kw)

    monkeypatch.setattr(power_module, "test_term", spy)
    kw = {"term": "(1 | Batch)", "effect_sizes": [0.5], "nsim": 2, "methods": ("exact",),
          "nsim_exact": 200}
    vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", seed=1, **kw)
    first = list(seen)
    seen.clear()
    vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", seed=2, **kw)
    assert len(first) == 2 and len(set(first)) == 2  # data sets 0 and 1: own streams
    assert set(first).isdisjoint(seen)  # was seed=i: the same draws for every seed


def test_same_curve_on_one_or_two_threads_and_on_dask(client):
    kw = {"term": "(1 | g)", "along": "g", "sizes": [4, 7], "nsim": 24,
          "methods": ("exact", "bootstrap", "asymptotic"), "nsim_bootstrap": 49, "seed": 77,
          "progress": False}
    one = vctest.power_curve(one_way(0.5), threads=1, **kw)
    two = vctest.power_curve(one_way(0.5), threads=2, **kw)
    dask = vctest.power_curve(one_way(0.5), backend="dask", client=client, **kw)
    for other in (two, dask):
        pd.testing.assert_frame_equal(one.table, other.table)
        for size in (4, 7):
            np.testing.assert_array_equal(one.statistics[size], other.statistics[size])
            np.testing.assert_array_equal(one.pvalues[size], other.pvalues[size])


def test_result_views_and_plot():
    pc = vctest.power_curve(one_way(0.5), term="(1 | g)", along="g", sizes=[4, 8], nsim=30,
                            methods=("exact", "naive"), seed=4, progress=False)
    frame = pc.to_frame()
    assert list(frame.columns) == ["size", "method", "rejections", "datasets", "failed",
                                   "rate", "ci_low", "ci_high", "mean_draws"]
    assert np.all((frame.ci_low <= frame.rate) & (frame.rate <= frame.ci_high))
    data = json.loads(pc.to_json())
    assert data["kind"] == "power_curve" and data["settings"]["sizes"] == [4, 8]
    assert data["table"][0]["datasets"] == 30
    assert "Power curve of (1 | g)" in pc.summary() and "Power curve" in repr(pc)
    assert "<table" in pc._repr_html_()
    text = pc.methods_text()
    assert "Crainiceanu & Ruppert, 2004" in text and "seed entropy 4" in text
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = pc.plot()
    assert len(ax.containers) == 2  # one errorbar per method
    assert ax.get_xlabel() == "numbers of levels of g"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_progress_bar_on_request(capsys):
    vctest.power_curve(one_way(0.5), term="(1 | g)", along="g", sizes=[4], nsim=40,
                       methods=("naive",), seed=4, progress=True)
    assert "power curve" in capsys.readouterr().err
    vctest.power_curve(one_way(0.5), term="(1 | g)", along="g", sizes=[4], nsim=40,
                       methods=("naive",), seed=4, progress=False)
    assert "power curve" not in capsys.readouterr().err


def test_make_model_from_fit_reproduces_its_theta_and_extends():
    fit = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    m = vctest.make_model(fit)
    np.testing.assert_allclose(m.theta, fit.theta)
    t = np.array([[fit.theta[0], 0.0], [fit.theta[1], fit.theta[2]]]) * fit.sigma
    again = vctest.make_model(fit.model.design.formula.text, m.frame,
                              fixef=dict(zip(fit.model.design.fixed_names, fit.beta,
                                             strict=True)),
                              varcorr={"Subject": t @ t.T}, sigma=fit.sigma)
    np.testing.assert_allclose(again.theta, fit.theta, rtol=1e-10)
    big = vctest.extend(m, along="Subject", n=30)
    assert big.frame.Subject.nunique() == 30 and len(big.frame) == 300
    more = vctest.extend(m, within="Subject", n=14)
    assert len(more.frame) == 18 * 14
    pc = vctest.power_curve(fit, term="(0 + Days | Subject)", along="Subject",
                            sizes=[6, 12], nsim=10, methods=("asymptotic",), seed=1,
                            progress=False)
    assert list(pc.table["size"]) == [6, 12]


def test_design_frame_crossed_nested_and_covariates():
    d = vctest.design_frame({"school": 3, "class": 2, "pupil": 4}, nested=("class",),
                            covariates={"x": lambda rng, fr: rng.normal(size=len(fr)),
                                        "c": 1.0}, seed=3)
    assert len(d) == 24 and d["class"].nunique() == 6
    assert d["class"].iloc[0] == "school1:class1"
    again = vctest.design_frame({"school": 3, "class": 2, "pupil": 4}, nested=("class",),
                                covariates={"x": lambda rng, fr: rng.normal(size=len(fr)),
                                            "c": 1.0}, seed=3)
    pd.testing.assert_frame_equal(d, again)


def test_decision_bounds_agree_with_decision_is_clear():
    for n in (100, 199, 400, 800):
        for alpha in (0.01, 0.05):
            err = 1e-3 / 7
            below, above = decision_bounds(n, alpha, err)
            clear = [decision_is_clear(k, n, alpha, err) for k in range(n + 1)]
            assert clear == [k <= below or k >= above for k in range(n + 1)]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sizes": [0, 4]}, "`sizes` must be a non-empty sequence of positive integers"),
    ({"sizes": [4, 4]}, "must not repeat"),
    ({"null": "y ~ 1"}, "exactly one of `term`"),
    ({"along": None}, "exactly one of `along`"),
    ({"along": "nope"}, "`along` names 'nope', not a column"),
    ({"methods": ("exact", "magic")}, "`methods` must be distinct names"),
    ({"nsim": 0}, "`nsim` must be a positive integer"),
    ({"alpha": 1.5}, "`alpha` must be in"),
])
def test_power_curve_input_errors(kwargs, match):
    args = {"term": "(1 | g)", "along": "g", "sizes": [4], "nsim": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        vctest.power_curve(one_way(0.1), **args)


def test_exact_refused_for_a_glmm_and_a_slope():
    g = vctest.design_frame({"herd": 6, "period": 4})
    mg = vctest.make_model("y ~ 1 + (1 | herd)", g, fixef=[0.0], varcorr={"herd": 1.0},
                           family="poisson")
    with pytest.raises(ValueError, match="cannot include 'exact' for a GLMM"):
        vctest.power_curve(mg, term="(1 | herd)", along="herd", sizes=[6], methods=("exact",))
    d = vctest.design_frame({"Subject": 6, "Days": range(4)})
    m = vctest.make_model("y ~ Days + (Days | Subject)", d, fixef=[0.0, 0.5],
                          theta=[1.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="not a single variance component"):
        vctest.power_curve(m, term="(0 + Days | Subject)", along="Subject", sizes=[6],
                           methods=("exact",))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"fixef": {"(Intercept)": 1.0}}, "`fixef` must name exactly the fixed-effect columns"),
    ({"fixef": [1.0]}, "`fixef` must have 2 values"),
    ({"varcorr": {"Batch": 1.0}}, "`varcorr` has no entry for the term"),
    ({"varcorr": {"g": [[1.0, 0.0], [0.0, 1.0]]}}, "must be a symmetric 1 x 1"),
    ({"varcorr": {"g": -1.0}}, "it must be >= 0"),
    ({"varcorr": None, "theta": [1.0, 2.0]}, "`theta` must have 1 values"),
    ({"theta": [1.0]}, "exactly one of `varcorr`"),
    ({"sigma": 0.0}, "`sigma` must be a positive number"),
])
def test_make_model_input_errors(kwargs, match):
    d = vctest.design_frame({"g": 4, "x": [0.0, 1.0]})
    args = {"fixef": [1.0, 0.5], "varcorr": {"g": 1.0}, **kwargs}
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vctest.make_model("y ~ x + (1 | g)", d, **args)
