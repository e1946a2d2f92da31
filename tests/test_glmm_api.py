"""GLMMs through the public API: vctest.fit / vc_test / compare with family=.

lme4 references: validation/reference/glmm_fits.json (validation/r/glmm_fits.R: lme4's
default fits and the same fits with tight tolerances) and glmm_reference.json.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import vctest
from vctest.model.glm import fit_glm
from vctest.model.glmm import GlmmFit
from vctest.nulls.bootstrap import Generator as GlmmGenerator
from vctest.nulls.bootstrap import make_task as make_glmm_task

ROOT = Path(__file__).parents[1]
FITS = json.loads((ROOT / "validation/reference/glmm_fits.json").read_text())
CASES = {f["id"]: f for f in FITS["fits"]}
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
HERD = {"term": "(1 | herd)", "family": "binomial"}


@pytest.fixture(scope="module")
def cbpp():
    return vctest.fit(CBPP, "cbpp", family="binomial")


@pytest.fixture(scope="module")
def herd_test():
    return vctest.vc_test(CBPP, "cbpp", nsim=60, seed=7, **HERD)


# -- fits ---------------------------------------------------------------------------------


def test_cbpp_fit_matches_lme4(cbpp):
    ref = CASES["cbpp"]
    assert isinstance(cbpp, GlmmFit) and cbpp.converged and not cbpp.singular
    # lme4's printed deviance (default settings) to 1e-4 relative
    assert cbpp.deviance == pytest.approx(73.47428, rel=1e-4)
    # the optimum: lme4 with tight tolerances, to 1e-8 (-2 logLik) and 1e-5 (theta)
    assert cbpp.objective == pytest.approx(ref["tight"]["minus2loglik"], rel=1e-8)
    assert cbpp.theta[0] == pytest.approx(ref["tight"]["theta"]["herd.(Intercept)"], rel=1e-5)
    np.testing.assert_allclose(cbpp.beta, list(ref["tight"]["beta"].values()), rtol=5e-5)
    # lme4's default stops short of that optimum: its -2 logLik is higher and its theta
    # (0.64207) 3e-4 below (docs/glmm.rst, "Agreement with lme4")
    assert cbpp.objective < ref["minus2loglik"]
    assert cbpp.theta[0] == pytest.approx(0.64207, rel=5e-4)


def test_lrt_against_the_glm_matches_lme4_and_statsmodels(herd_test):
    import statsmodels.api as sm

    null = herd_test.fits["null"]
    d = null.model.design
    sm_fit = sm.GLM(np.column_stack([d.y * d.weights, (1 - d.y) * d.weights]), d.X,
                    family=sm.families.Binomial()).fit()
    assert null.objective == pytest.approx(-2 * sm_fit.llf, rel=1e-10)
    assert herd_test.statistic == pytest.approx(FITS["lrt"]["cbpp_vs_glm"], abs=1e-3)
    tight = (next(g for g in FITS["glms"] if g["id"] == "cbpp_glm")["minus2loglik"]
             - CASES["cbpp"]["tight"]["minus2loglik"])
    assert herd_test.statistic == pytest.approx(tight, abs=1e-6)


@pytest.mark.slow
def test_poisson_with_two_crossed_intercepts_matches_lme4():
    ref = CASES["grouseticks_scaled"]
    data = vctest.datasets.load("grouseticks")
    data["sHEIGHT"] = (data.HEIGHT - data.HEIGHT.mean()) / data.HEIGHT.std()
    fit = vctest.fit(ref["formula"], data, family="poisson")
    assert fit.converged
    assert fit.objective == pytest.approx(ref["tight"]["minus2loglik"], rel=1e-8)
    np.testing.assert_allclose(fit.theta, list(ref["tight"]["theta"].values()), rtol=1e-5)
    res = vctest.vc_test(ref["formula"], data, term="(1 | LOCATION)", family="poisson",
                         method="asymptotic")
    assert res.statistic == pytest.approx(FITS["lrt"]["grouseticks_location"], abs=1e-4)


def test_offset_column_or_values_and_intercept_shift():
    ref = CASES["cbpp_poisson_offset"]
    data = vctest.datasets.load("cbpp").assign(logsize=lambda d: np.log(d["size"]))
    by_name = vctest.fit(ref["formula"], data, family="poisson", offset="logsize")
    by_value = vctest.fit(ref["formula"], data, family="poisson", offset=np.log(data["size"]))
    assert by_name.objective == by_value.objective
    assert by_name.objective == pytest.approx(ref["tight"]["minus2loglik"], rel=1e-8)
    # a constant offset c moves only the intercept, by -c
    shifted = vctest.fit(ref["formula"], data, family="poisson", offset=data.logsize + 2.0)
    assert shifted.objective == pytest.approx(by_name.objective, rel=1e-9)
    assert shifted.beta["(Intercept)"] == pytest.approx(by_name.beta["(Intercept)"] - 2, abs=1e-5)


def test_links_reach_the_fit():
    fit = vctest.fit(CBPP, "cbpp", family="binomial", link="probit")
    ref = CASES["cbpp_probit"]["tight"]
    assert fit.model.link == "probit"
    assert fit.objective == pytest.approx(ref["minus2loglik"], rel=1e-8)


def test_check_gives_a_verdict_for_a_glmm(cbpp):
    assert vctest.check(cbpp).verdict == "converged"


# -- the bootstrap --------------------------------------------------------------------------


def test_bootstrap_result(herd_test, cbpp):
    res = herd_test
    assert res.method == "bootstrap" and res.test == "LRT"
    assert res.n_failed == 0 and res.failures == {}
    sample = res.null_distribution
    assert sample.size == 60 and np.all(sample >= 0)
    k = int(np.sum(sample >= res.statistic - 1e-9 * max(1.0, res.statistic)))
    assert res.pvalue == (1 + k) / 61
    assert res.pvalue_mc_se == pytest.approx(math.sqrt(res.pvalue * (1 - res.pvalue) / 60))
    assert res.replicates.theta_full.shape == (60, 1)
    assert res.replicate_summary["full_refits_at_boundary"] == int(
        np.sum(res.replicates.full_singular))
    assert res.settings["family"] == "binomial" and res.settings["link"] == "logit"
    assert res.fits["full"].objective == cbpp.objective


def test_bootstrap_is_reproducible_and_thread_invariant(herd_test):
    one = vctest.vc_test(CBPP, "cbpp", nsim=60, seed=7, threads=1, **HERD)
    np.testing.assert_array_equal(one.replicates.objective, herd_test.replicates.objective)
    np.testing.assert_array_equal(one.replicates.theta_full, herd_test.replicates.theta_full)
    other = vctest.vc_test(CBPP, "cbpp", nsim=60, seed=8, **HERD)
    assert not np.array_equal(other.null_distribution, herd_test.null_distribution)


def test_bootstrap_does_not_depend_on_batches(cbpp):
    glm = fit_glm(cbpp.model.without_random_effects())
    task = make_glmm_task(GlmmGenerator.from_fit(glm), cbpp, np.array([-2]),
                          seed_seq=np.random.SeedSequence(3), threads=None)
    whole = task(0, 30)
    parts = [task(0, 11), task(11, 30)]
    for a, b0, b1 in zip(whole, *parts, strict=True):
        np.testing.assert_array_equal(a, np.concatenate([b0, b1]))
    # the refit of replicate i is a fit of the response replicate i draws
    y = task.simulate(4)
    assert cbpp.refit(y).objective == pytest.approx(whole[0][4, 1], rel=1e-8)


def test_bootstrap_json_round_trip(herd_test, tmp_path):
    back = vctest.load_result(herd_test.to_json(tmp_path / "glmm.json"))
    assert back.to_dict() == herd_test.to_dict()


def test_sequential_stopping_and_glmm_null_with_random_effects():
    data = vctest.datasets.load("grouseticks")
    res = vctest.vc_test("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", data,
                         term="(1 | LOCATION)", family="poisson", nsim=2000, seed=2,
                         stop_alpha=0.05)
    assert res.settings["stopped_early"] and res.settings["n_run"] < 2000
    assert res.replicates.theta_null.shape[1] == 1  # the null GLMM's theta
    assert res.n_failed <= 0.01 * res.settings["n_run"]


def test_simulated_responses_have_the_model_moments():
    # Poisson null with a random intercept of relative sd theta: y | b ~ Poisson(exp(eta + b)),
    # so E y = exp(eta + theta^2 / 2), Var y = E y + (exp(theta^2) - 1) (E y)^2 (lognormal mix)
    data = vctest.datasets.load("grouseticks")
    full = vctest.fit("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", data, family="poisson")
    null = vctest.fit("TICKS ~ YEAR + (1 | BROOD)", data, family="poisson")
    task = make_glmm_task(GlmmGenerator.from_fit(null), full, np.array([0]),
                          seed_seq=np.random.SeedSequence(11), threads=None)
    ys = np.array([task.simulate(i) for i in range(4000)])
    eta = null.model.design.X @ null.beta.to_numpy()
    mean = np.exp(eta + null.theta[0] ** 2 / 2)
    var = mean + np.expm1(null.theta[0] ** 2) * mean**2
    rows = np.unique(null.model.design.blocks[0].codes, return_index=True)[1][:25]
    z = (ys[:, rows].mean(axis=0) - mean[rows]) / np.sqrt(var[rows] / ys.shape[0])
    assert np.max(np.abs(z)) < 4.5  # 25 rows of distinct broods: independent
    # a GLM null: binomial successes out of each row's trials, mean mu, variance mu(1-mu)/n
    cbpp = vctest.fit(CBPP, "cbpp", family="binomial")
    glm = fit_glm(cbpp.model.without_random_effects())
    task = make_glmm_task(GlmmGenerator.from_fit(glm), cbpp, np.array([-2]),
                          seed_seq=np.random.SeedSequence(12), threads=None)
    ys = np.array([task.simulate(i) for i in range(4000)])
    n = cbpp.model.weights
    assert np.allclose(ys * n, np.round(ys * n))
    mu = 1 / (1 + np.exp(-(glm.model.design.X @ glm.beta.to_numpy())))
    z = (ys.mean(axis=0) - mu) / np.sqrt(mu * (1 - mu) / n / ys.shape[0])
    assert stats.chi2.sf(np.sum(z**2), z.size) > 1e-4


def test_compare_glmms_with_a_random_slope():
    # lme4's fits of both models: validation/r/glmm_slope_compare.R
    ref = json.loads((ROOT / "validation/reference/glmm_slope_compare.json").read_text())
    data = vctest.datasets.load("grouseticks")
    data["sHEIGHT"] = (data.HEIGHT - data.HEIGHT.mean()) / data.HEIGHT.std()
    res = vctest.compare(ref["full_formula"], ref["null_formula"], data, family="poisson",
                         nsim=30, seed=1)
    assert res.test == "LRT" and res.null_distribution.size + res.n_failed == 30
    # each fit at lme4's tight optimum to 1e-8 relative (never above it: lme4's
    # log-determinant lags the mode), so the statistic to 2 * 1e-8 * 1978 = 4e-5
    for name in ("full", "null"):
        fit, want = res.fits[name], ref[name]["tight"]
        assert fit.objective == pytest.approx(want["minus2loglik"], rel=1e-8)
        assert fit.objective <= want["minus2loglik"] * (1 + 1e-12)
        np.testing.assert_allclose(fit.theta, list(want["theta"].values()), rtol=1e-5)
    assert res.statistic == pytest.approx(ref["statistic"]["tight"], abs=4e-5)
    assert res.statistic == pytest.approx(ref["statistic"]["default"], abs=4e-5)


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"family": "gamma"}, ValueError, "`family`"),
     ({"method": "exact"}, ValueError, "no exact null"),
     ({"link": "identity"}, ValueError, "`link`"),
     ({"offset": "nope"}, ValueError, "`offset` column 'nope'"),
     ({"offset": [1.0, 2.0]}, ValueError, "one value per row"),
     ({"family": "gaussian", "offset": "size"}, ValueError, "`offset` applies")],
)
def test_glmm_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        vctest.vc_test(CBPP, "cbpp", **{**HERD, **kwargs})


def test_offset_with_missing_values_is_an_error():
    data = vctest.datasets.load("cbpp").assign(off=np.nan)
    with pytest.raises(ValueError, match="`offset` column 'off' has missing"):
        vctest.fit(CBPP, data, family="binomial", offset="off")


def test_default_method_of_a_glmm_is_the_bootstrap():
    res = vctest.vc_test(CBPP, "cbpp", nsim=5, seed=1, **HERD)
    assert res.method == "bootstrap"


def test_glmm_without_random_effects_is_an_error():
    with pytest.raises(ValueError, match="no random-effects term"):
        vctest.fit("cbind(incidence, size - incidence) ~ period", "cbpp", family="binomial")


def test_cli_family(tmp_path, capsys):
    from vctest.cli import main

    assert main(["test", "cbpp", CBPP, "--term", "(1 | herd)", "--family", "binomial",
                 "--nsim", "20", "--seed", "1", "--quiet", "--save",
                 str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "LRT of (1 | herd) (parametric bootstrap, Laplace)" in out
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["family"] == "binomial"


def test_bootstrap_of_bernoulli_responses():
    data = vctest.datasets.load("cbpp")
    rows = data.loc[data.index.repeat(data["size"])]
    rows = rows.assign(y=(rows.groupby(level=0).cumcount() < rows["incidence"]).astype(int))
    rows = rows.reset_index(drop=True)
    res = vctest.vc_test("y ~ period + (1 | herd)", rows, term="(1 | herd)",
                         family="binomial", nsim=20, seed=1)
    # 0/1 rows and cbind() counts differ by binomial coefficients in both models: same LRT
    grouped = vctest.vc_test(CBPP, "cbpp", method="asymptotic", **HERD)
    assert res.statistic == pytest.approx(grouped.statistic, abs=1e-5)
    assert res.n_failed == 0


def test_methods_paragraph_of_a_glmm_test(herd_test):
    text = herd_test.methods_text()
    assert "generalized linear mixed model" in text and "binomial family, logit link" in text
    assert "Laplace approximation" in text and "(a generalized linear model)" in text
    assert "the linear mixed model" not in text
    assert "60 replicates (0 failed refits, excluded)" in text


def test_flagged_glmm_refits_get_a_second_look():
    # tolerances no optimiser can meet: refits stop on the iteration limit or a failed line
    # search at the optimum; the boundary-aware check recognises them (status RECHECKED)
    # and their statistics are those of a run with the default settings.  (xtol < 0: with
    # the analytic gradient, exactly 0 at a variance on its bound, the projected step there
    # can be exactly 0, which xtol = 0 would accept.)
    from vctest.model.glmm import GlmmSettings
    from vctest.nulls.bootstrap import RECHECKED
    from vctest.nulls.bootstrap import run_bootstrap as run_glmm_bootstrap

    data = vctest.datasets.load("grouseticks")
    full = vctest.fit("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", data, family="poisson")
    null = GlmmGenerator.from_fit(vctest.fit("TICKS ~ YEAR + (1 | BROOD)", data,
                                             family="poisson"))
    kw = {"nsim": 40, "seed_seq": np.random.SeedSequence(1), "observed": 1.0}
    default = run_glmm_bootstrap(null, full, np.array([0]), **kw).replicates
    strict = run_glmm_bootstrap(null, full, np.array([0]), **kw, settings=GlmmSettings(
        gtol=1e-16, ftol=0.0, xtol=-1.0, maxiter=60)).replicates
    rechecked = np.any(strict.status == RECHECKED, axis=1)
    assert rechecked.sum() >= 5 and strict.n_failed == 0 and default.n_failed == 0
    np.testing.assert_allclose(strict.statistic, default.statistic, atol=1e-6)
    assert strict.summary(1.0)["refits_rechecked"] == int(rechecked.sum())


def test_glmm_power_is_reproducible_and_rises_with_the_effect():
    kw = {"term": "(1 | herd)", "family": "binomial", "effect_sizes": [0.0, 1.0], "nsim": 30,
          "nsim_bootstrap": 19, "methods": ("bootstrap", "naive"), "seed": 4}
    pw = vctest.power(CBPP, "cbpp", **kw)
    again = vctest.power(CBPP, "cbpp", **kw)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(pw.table, again.table)
    rate = pw.table.set_index(["effect_size", "method"]).rate
    # sd 1 on the logit scale across 15 herds is detected nearly always; under H0 the
    # bootstrap rejects at about alpha (30 data sets: a loose 4-SE bound)
    assert rate[(1.0, "bootstrap")] >= 0.8
    assert rate[(0.0, "bootstrap")] <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / 30)
    assert pw.settings["family"] == "binomial" and pw.settings["link"] == "logit"
    with pytest.raises(ValueError, match="no exact null"):
        vctest.power(CBPP, "cbpp", **{**kw, "methods": ("exact",)})


def test_separation_in_the_fixed_effects_is_named():
    data = vctest.datasets.load("cbpp")
    data.loc[data.period == "4", "incidence"] = 0  # no case in period 4: beta diverges
    with pytest.warns(UserWarning, match="separation in the fixed effects"):
        fit = vctest.fit(CBPP, data, family="binomial")
    assert fit.beta["period4"] < -20
    with pytest.warns(UserWarning, match="separation"):  # check() refits too
        assert vctest.check(fit).verdict == "unidentified"


def test_compare_keeps_the_offset_on_its_rows_when_rows_are_dropped():
    # x is missing on the first rows: both models are fitted to the complete rows, and
    # the offset must follow them (it used to be read from the first rows instead)
    data = vctest.datasets.load("cbpp").assign(logsize=lambda d: np.log(d["size"]))
    data["x"] = np.arange(len(data), dtype=float)
    data.loc[[0, 1, 2], "x"] = np.nan
    full, null = "incidence ~ period + x + (1 | herd)", "incidence ~ period + (1 | herd)"
    kw = {"family": "poisson", "nsim": 5, "seed": 1}
    with pytest.warns(UserWarning, match="dropped 3 of 56 rows"):
        res = vctest.compare(full, null, data, offset="logsize", **kw)
    complete = data.dropna().reset_index(drop=True)
    want = vctest.compare(full, null, complete, offset="logsize", **kw)
    assert res.statistic == pytest.approx(want.statistic, rel=1e-9)
    assert res.fits["null"].objective == pytest.approx(want.fits["null"].objective, rel=1e-12)
    with pytest.warns(UserWarning, match="dropped 3 of 56 rows"):
        by_value = vctest.compare(full, null, data, offset=np.log(data["size"]), **kw)
    assert by_value.statistic == pytest.approx(want.statistic, rel=1e-9)
