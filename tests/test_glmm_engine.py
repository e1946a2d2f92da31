"""GLMM Laplace fits against lme4 (stored in validation/reference/glmm_reference.json)."""

import json
from pathlib import Path

import numpy as np
import pytest

import vctest
from vctest.formula.design import build_design
from vctest.model.laplace import glm_fit

REF = {f["id"]: f for f in json.loads(
    (Path(__file__).parents[1] / "validation/reference/glmm_reference.json").read_text())["fits"]}
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return vctest.fit(CBPP, "cbpp", family="binomial")


def test_cbpp_matches_lme4(cbpp):
    ref = REF["cbpp"]
    # -2 logLik: vctest evaluates the Laplace log-determinant with the weights at the
    # conditional mode; lme4's value differs by 5.6e-4 at the same (theta, beta, u)
    assert cbpp.objective == pytest.approx(ref["minus2loglik"], rel=1e-5)
    assert cbpp.objective <= ref["minus2loglik"] + 1e-9
    assert cbpp.deviance == pytest.approx(ref["deviance"], rel=1e-4)
    np.testing.assert_allclose(cbpp.theta, [ref["theta"]], atol=1e-3)
    np.testing.assert_allclose(cbpp.beta.to_numpy(), ref["beta"], atol=2e-3)
    assert cbpp.converged and not cbpp.singular
    # standard errors from the Hessian in (theta, beta), as lme4's default; the Laplace
    # log-determinant difference above moves them by about 1%
    np.testing.assert_allclose(cbpp.beta_se.to_numpy(), ref["beta_se"], rtol=0.02)


def test_cbpp_lrt_against_the_glm(cbpp):
    d = build_design("cbind(incidence, size - incidence) ~ period", vctest.datasets.load("cbpp"))
    _, m2ll = glm_fit(d, "binomial")
    assert m2ll == pytest.approx(REF["cbpp"]["glm_minus2loglik"], rel=1e-9)
    assert m2ll - cbpp.objective == pytest.approx(REF["cbpp"]["lrt_vs_glm"], abs=1e-3)


def test_glm_matches_statsmodels():
    import statsmodels.api as sm

    data = vctest.datasets.load("grouseticks")
    d = build_design("TICKS ~ YEAR + cHEIGHT", data)
    beta, m2ll = glm_fit(d, "poisson")
    sm_fit = sm.GLM(d.y, d.X, family=sm.families.Poisson()).fit()
    assert -2 * sm_fit.llf == pytest.approx(m2ll, rel=1e-10)
    np.testing.assert_allclose(beta, sm_fit.params, rtol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["grouseticks", "grouseticks_centred"])
def test_grouseticks_poisson_crossed(case):
    ref = REF[case]
    fit = vctest.fit(ref["formula"], "grouseticks", family="poisson")
    assert fit.objective == pytest.approx(ref["minus2loglik"], rel=1e-7)
    np.testing.assert_allclose(fit.theta, ref["theta"], atol=1e-3)
    np.testing.assert_allclose(fit.beta.to_numpy(), ref["beta"], rtol=1e-3, atol=1e-4)


def test_glmm_bootstrap_test(cbpp):
    res = vctest.vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial",
                         method="bootstrap", nsim=40, seed=3)
    assert res.statistic == pytest.approx(cbpp_lrt(cbpp), rel=1e-9)
    assert res.pvalue == pytest.approx(1 / 41)
    again = vctest.vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial",
                           method="bootstrap", nsim=40, seed=3)
    assert np.array_equal(res.null_distribution, again.null_distribution)
    assert np.all(res.null_distribution >= 0)
    # per-replicate record: theta of every full refit, boundary counts, JSON round trip
    rs = res.replicate_summary
    assert rs["full_refits_at_boundary"] == int(np.sum(res.replicates.full_singular))
    assert res.replicates.theta_full.shape == (40, 1)
    import tempfile

    back = vctest.load_result(res.to_json(tempfile.mkdtemp() + "/glmm.json"))
    assert back.to_dict() == res.to_dict()


def cbpp_lrt(fit):
    d = build_design("cbind(incidence, size - incidence) ~ period", vctest.datasets.load("cbpp"))
    return glm_fit(d, "binomial")[1] - fit.objective


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"family": "gamma"}, "`family`"), ({"method": "exact"}, "no exact null")],
)
def test_glmm_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vctest.vc_test(CBPP, "cbpp", term="(1 | herd)", **{"family": "binomial", **kwargs})


def test_poisson_needs_counts():
    data = vctest.datasets.load("grouseticks").assign(TICKS=lambda d: d.TICKS + 0.5)
    with pytest.raises(ValueError, match="Poisson response"):
        vctest.fit("TICKS ~ YEAR + (1 | BROOD)", data, family="poisson")
