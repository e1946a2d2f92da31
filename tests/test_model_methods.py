"""fitted, residuals, ranef (condVar), predict, rePCA, AIC/BIC, simulate against lme4
(validation/reference/ranova_reference.json, from validation/r/ranova_reference.R).

The linear algebra is checked at lme4's own estimates (theta, beta, sigma), where it
must agree to 1e-6; vctest's optimum differs from lme4's by the optimisers'
tolerance, which is checked separately (loosely) end to end.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import vctest

REF = json.loads((pathlib.Path(__file__).parents[1] / "validation" / "reference"
                  / "ranova_reference.json").read_text())
CASES = REF["methods"]
RE_FORMS = {"full": None, "none": "~0", "intercept_only": "~ (1 | Subject)",
            "plate_only": "~ (1 | plate)"}


def _at_lme4(case):
    m = vctest.fit(case["formula"], case["data"], reml=case["REML"])
    return dataclasses.replace(m, theta=np.atleast_1d(np.array(case["theta"], float)),
                               beta=pd.Series(np.atleast_1d(case["fixef"]), index=m.beta.index),
                               sigma=float(case["sigma"]))


def _close(ours, theirs, rtol=1e-6):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    scale = max(np.abs(theirs).max(), 1e-12)
    assert np.abs(ours - theirs).max() <= rtol * scale, np.abs(ours - theirs).max() / scale


def _newdata(case):
    nd = pd.DataFrame(case["newdata"])
    if "Days" in nd:
        nd["Days"] = nd["Days"].astype(float)
    return nd


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_methods_equal_lme4_at_its_estimates(case):
    m = _at_lme4(case)
    _close(m.fitted(), case["fitted"])
    _close(m.residuals(), case["residuals"])
    re = m.ranef()
    assert set(re) == set(case["ranef"])
    for group, want in case["ranef"].items():
        frame = re[group]
        assert list(frame.index) == want["levels"]
        assert list(frame.columns) == list(want["columns"])
        _close(frame.to_numpy(), want["values"])
        assert len(frame.attrs["condvar"]) == len(want["condvar"])
        for ours, theirs in zip(frame.attrs["condvar"], want["condvar"], strict=True):
            _close(ours, np.asarray(theirs, float).reshape(ours.shape))
    pca = m.rePCA()
    for group, sdev in case["rePCA_sdev"].items():
        _close(pca[group]["sdev"], sdev)
        v = np.asarray(sdev) ** 2
        _close(pca[group]["proportion"], v / v.sum())
    if "newdata" in case:
        nd = _newdata(case)
        for name, want in case["predict"].items():
            _close(m.predict(nd, re_form=RE_FORMS[name], allow_new_levels=True), want)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_information_criteria_equal_lme4(case):
    m = vctest.fit(case["formula"], case["data"], reml=case["REML"])
    assert m.nobs == case["nobs"] and m.df == case["df"]
    assert m.aic == pytest.approx(case["AIC"], rel=1e-6)
    assert m.bic == pytest.approx(case["BIC"], rel=1e-6)
    # end to end (vctest's own optimum): the fitted values agree to the optimisers' tolerance
    _close(m.fitted(), case["fitted"], rtol=1e-5)


def test_predict_defaults_and_new_levels():
    m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    np.testing.assert_allclose(m.predict(), m.fitted(), rtol=1e-12)
    np.testing.assert_allclose(m.fitted() + m.residuals(), m.model.design.y, rtol=1e-12)
    new = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "999"]})
    with pytest.raises(ValueError, match="allow_new_levels=True"):
        m.predict(new)
    pop = m.predict(new, re_form=False)
    got = m.predict(new, allow_new_levels=True)
    assert got[1] == pytest.approx(pop[1], rel=1e-12)          # a new level: no random effect
    assert got[0] != pytest.approx(pop[0], rel=1e-3)
    with pytest.raises(ValueError, match="has no column 'Days'"):
        m.predict(pd.DataFrame({"Subject": ["308"]}))
    missing = m.predict(pd.DataFrame({"Days": [np.nan, 3.0], "Subject": ["308", "308"]}))
    assert np.isnan(missing[0]) and np.isfinite(missing[1])


def test_simulate_has_the_model_moments():
    m = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    sims = m.simulate(20_000, seed=1)
    assert sims.shape == (m.nobs, 20_000)
    np.testing.assert_array_equal(sims, m.simulate(20_000, seed=1))
    var_b = (m.sigma * m.theta[0]) ** 2
    total = var_b + m.sigma ** 2
    se_mean = np.sqrt(total / 20_000)
    assert np.abs(sims.mean(axis=1) - m.beta.iloc[0]).max() <= 5 * se_mean
    # same batch: covariance var_b; different batches: 0; variance var_b + sigma^2
    c = np.cov(sims[[0, 1, 5]])
    se_var = total * np.sqrt(2 / 20_000)
    assert abs(c[0, 0] - total) <= 5 * se_var
    assert abs(c[0, 1] - var_b) <= 5 * se_var
    assert abs(c[0, 2]) <= 5 * se_var
    with pytest.raises(ValueError, match="`nsim` must be a positive integer"):
        m.simulate(0)


GLMM = REF["glmm_methods"]


def test_glmm_methods_equal_lme4_at_its_estimates():
    g = vctest.fit(GLMM["formula"], GLMM["data"], family=GLMM["family"])
    theta, beta = np.atleast_1d(np.array(GLMM["theta"], float)), np.array(GLMM["fixef"])
    at = dataclasses.replace(g, theta=theta, beta=pd.Series(beta, index=g.beta.index),
                             u=g.model.laplace(theta, beta).u)   # lme4's modes at its estimates
    _close(at.fitted(), GLMM["fitted"])
    _close(at.residuals(), GLMM["residuals_deviance"])
    _close(at.residuals("pearson"), GLMM["residuals_pearson"])
    _close(at.residuals("response"), GLMM["residuals_response"])
    _close(at.predict(), GLMM["predict_fit_link"])
    nd = pd.DataFrame(GLMM["newdata"])
    _close(at.predict(nd, allow_new_levels=True), GLMM["predict_link"])
    _close(at.predict(nd, allow_new_levels=True, type="response"), GLMM["predict_response"])
    re = at.ranef()["herd"]
    assert list(re.index) == GLMM["ranef"]["herd"]["levels"]
    _close(re["(Intercept)"], GLMM["ranef"]["herd"]["values"])
    # lme4's postVar comes from the factor of its last PIRLS evaluation; ours is evaluated
    # at the modes themselves: they agree to 1e-4 (measured 4.8e-5), not 1e-6
    _close(re.attrs["condvar"][0][:, 0, 0], GLMM["ranef"]["herd"]["condvar"], rtol=1e-4)


def test_glmm_information_criteria():
    g = vctest.fit(GLMM["formula"], GLMM["data"], family=GLMM["family"])
    assert g.nobs == GLMM["nobs"] and g.df == GLMM["df"]
    assert g.aic == pytest.approx(-2 * g.loglik + 2 * 5, rel=1e-12)
    assert g.bic == pytest.approx(-2 * g.loglik + np.log(56) * 5, rel=1e-12)
    # vctest's optimum has a slightly higher likelihood than lme4's (AIC lower by 5.7e-4)
    assert GLMM["AIC"] - 1e-3 < g.aic <= GLMM["AIC"]
    assert g.bic == pytest.approx(GLMM["BIC"], rel=1e-5)


def test_glmm_simulate_and_errors():
    g = vctest.fit(GLMM["formula"], GLMM["data"], family=GLMM["family"])
    sims = g.simulate(2000, seed=3)
    assert sims.shape == (56, 2000)
    np.testing.assert_array_equal(sims, g.simulate(2000, seed=3))
    trials = g.model.weights
    assert np.allclose(np.round(sims * trials[:, None]), sims * trials[:, None])
    # the simulated mean proportion is the model's marginal mean (about 0.1 for cbpp)
    assert abs(sims.mean() - g.model.y.mean()) < 0.03
    with pytest.raises(ValueError, match="`type` must be 'link' or 'response'"):
        g.predict(type="probability")
    with pytest.raises(ValueError, match="`type` must be 'deviance'"):
        g.residuals("working")


OFFSET = json.loads((pathlib.Path(__file__).parents[1] / "validation" / "reference"
                     / "glmm_predict_offset.json").read_text())


def _offset_fit():
    cb = vctest.datasets.load("cbpp").assign(logsize=lambda d: np.log(d["size"]))
    g = vctest.fit(OFFSET["formula"], cb, family=OFFSET["family"], offset=OFFSET["offset"])
    theta, beta = np.atleast_1d(np.array(OFFSET["theta"], float)), np.array(OFFSET["fixef"])
    at = dataclasses.replace(g, theta=theta, beta=pd.Series(beta, index=g.beta.index),
                             u=g.model.laplace(theta, beta).u)   # lme4's modes at its estimates
    return cb, at


def test_glmm_predict_newdata_evaluates_the_offset_on_the_new_rows_as_lme4():
    """validation/r/glmm_predict_offset.R: glmer(y ~ ... + offset(logsize)), predict(newdata).

    lme4 evaluates a formula offset on the new rows; glmer's ``offset =`` argument is
    dropped from predict(newdata) (lme4 issue #447): vctest's ``offset=`` is the former."""
    cb, at = _offset_fit()
    nd = pd.DataFrame(OFFSET["newdata"])
    _close(at.predict(), OFFSET["predict_fit_link"])
    _close(at.predict(nd, allow_new_levels=True), OFFSET["predict_link"])
    _close(at.predict(nd, allow_new_levels=True, type="response"), OFFSET["predict_response"])
    _close(at.predict(nd, re_form=False), OFFSET["predict_population"])
    gap = np.array(OFFSET["predict_link"]) - np.array(OFFSET["predict_link_offset_argument"])
    _close(gap, nd["logsize"])   # what lme4 drops with its offset argument
    # the same offset given here, as a column or as values, gives the same numbers
    renamed = nd.rename(columns={"logsize": "lsz"})
    _close(at.predict(renamed, re_form=False, offset="lsz"), OFFSET["predict_population"])
    _close(at.predict(nd.drop(columns="logsize"), re_form=False,
                      offset=nd["logsize"].to_numpy()), OFFSET["predict_population"])
    # predict on the fit's own rows through newdata equals predict()
    _close(at.predict(cb), at.predict(), rtol=1e-12)


def test_glmm_predict_offset_errors():
    cb, at = _offset_fit()
    nd = pd.DataFrame(OFFSET["newdata"])
    with pytest.raises(ValueError, match="no column 'logsize', the model's offset"):
        at.predict(nd.drop(columns="logsize"), allow_new_levels=True)
    with pytest.raises(ValueError, match="one value per row of `newdata` \\(5\\); got 2"):
        at.predict(nd, allow_new_levels=True, offset=[1.0, 2.0])
    with pytest.raises(ValueError, match="`offset` applies to `newdata`"):
        at.predict(offset="logsize")
    by_values = vctest.fit(OFFSET["formula"], cb, family="poisson", offset=cb["logsize"])
    np.testing.assert_allclose(by_values.predict(), vctest.fit(
        OFFSET["formula"], cb, family="poisson", offset="logsize").predict(), rtol=1e-10)
    with pytest.raises(ValueError, match=r"offset was given as values.*pass `offset=`"):
        by_values.predict(nd, allow_new_levels=True)
    plain = vctest.fit(GLMM["formula"], GLMM["data"], family=GLMM["family"])
    with pytest.raises(ValueError, match="fitted without one"):
        plain.predict(nd, allow_new_levels=True, offset="logsize")


# --- confint ---------------------------------------------------------------------------------

CONFINT = {c["id"]: c for c in REF["confint"]}


def _ci_ref(case):
    lo = np.array([np.nan if v == "NA" else v for v in case["lower"]], float)
    hi = np.array([np.nan if v == "NA" else v for v in case["upper"]], float)
    return lo, hi


@pytest.mark.parametrize("name", [
    "dyestuff", "dyestuff2",
    pytest.param("penicillin", marks=pytest.mark.slow),
    pytest.param("sleep_corr", marks=pytest.mark.slow)])
def test_profile_confint_within_1e3_of_lme4(name):
    """lme4 interpolates a spline through profile points; vctest finds the roots, so the two
    differ by lme4's interpolation error (largest here 1.7e-4 relative, Dyestuff .sig01)."""
    case = CONFINT[name]
    ci = vctest.fit(case["formula"], case["data"]).confint("profile")
    assert list(ci.index) == case["rows"]
    lo, hi = _ci_ref(case)
    for ours, theirs in ((ci.iloc[:, 0], lo), (ci.iloc[:, 1], hi)):
        rel = np.abs(ours.to_numpy() - theirs) / np.maximum(np.abs(theirs), 1e-3)
        assert rel.max() <= 1e-3, rel


def test_profile_endpoints_are_roots_of_zeta():
    from scipy.stats import norm

    from vctest.model.profile import Profiler

    m = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    ci = m.confint("profile")
    ml = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff", reml=False)
    prof = Profiler.of(ml)
    z2 = norm.ppf(0.975) ** 2
    for i in range(len(ci)):
        for v in ci.iloc[i]:
            dev, _ = prof.profile(i, float(v), prof.nat_hat.copy())
            assert dev - prof.dev_min == pytest.approx(z2, abs=1e-6)


def test_profile_confint_at_the_boundary():
    ci = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff2").confint()
    assert ci.iloc[0, 0] == 0.0        # the batch SD's profile never reaches the quantile


def test_wald_confint_equals_lme4():
    case = CONFINT["sleep_corr_wald"]
    ci = vctest.fit(case["formula"], case["data"]).confint("wald")
    lo, hi = _ci_ref(case)
    assert list(ci.index) == case["rows"]
    _assert_nan_close(ci.iloc[:, 0], lo)
    _assert_nan_close(ci.iloc[:, 1], hi)


def _assert_nan_close(ours, theirs):
    ours = ours.to_numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], rtol=1e-6)


def test_bootstrap_confint():
    m = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    ci = m.confint("bootstrap", nsim=60, seed=2)
    pd.testing.assert_frame_equal(ci, m.confint("bootstrap", nsim=60, seed=2))
    assert ci.attrs["n_failed"] == 0
    est = [m.sigma * m.theta[0], m.sigma, m.beta.iloc[0]]
    assert np.all(ci.iloc[:, 0].to_numpy() < est) and np.all(ci.iloc[:, 1].to_numpy() > est)
    with pytest.raises(ValueError, match="`method` must be 'profile', 'wald' or 'bootstrap'"):
        m.confint("boot")
    with pytest.raises(ValueError, match="`level` must be a float in"):
        m.confint(level=95)


def test_doctor_names_unsupported_directions():
    m0 = vctest.fit("Reaction ~ Days + (1 | Subject)", "sleepstudy")
    d = vctest.datasets.load("sleepstudy")
    d["Reaction"] = m0.simulate(5, seed=3)[:, 1]   # no slope variance in the truth
    m = vctest.fit("Reaction ~ Days + (Days | Subject)", d)
    assert m.rePCA()["Subject"]["proportion"].min() < 1e-4
    notes = [n for n in vctest.check(m).notes if n.startswith("rePCA")]
    assert len(notes) == 1 and "span 1 of 2 dimensions" in notes[0]
    full = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert not any(n.startswith("rePCA") for n in vctest.check(full).notes)
