"""The engine's GLMs and GLMMs (vctest.model.glm*) against lme4 and references.

lme4's numbers are in validation/reference/glmm_fits.json (validation/r/glmm_fits.R).
For each case it holds lme4's default fit, a "tight" refit (tolPwrss = 1e-12, bobyqa
with rhoend = 1e-10) and lme4's Laplace deviance function evaluated at given points.
lme4's default fits stop early (tolPwrss = 1e-7 takes log|L|^2 one PIRLS iteration
before the mode, which moves -2 logLik by ~6e-4 for cbpp), so the tight numbers are the
ones checked closely; the default ones loosely.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import vctest
from vctest.formula.design import build_design
from vctest.kernels.engine import fit_compiled, fit_model, with_calls
from vctest.kernels.types import Data
from vctest.model.glm import GeneralizedLinearModel, fit_glm
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmSettings, fit_glmm
from vctest.model.structure import make_start
from vctest.model.terms import varcorr_rows

REF = json.loads((Path(__file__).parents[1] / "validation/reference/glmm_fits.json").read_text())
CASES = {f["id"]: f for f in REF["fits"]}
GLMS = {g["id"]: g for g in REF["glms"]}
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _data(name: str) -> pd.DataFrame:
    cbpp = vctest.datasets.load("cbpp")
    if name == "cbpp":
        return cbpp.assign(s=(cbpp["size"] - cbpp["size"].mean()) / cbpp["size"].std())
    if name == "grouseticks":
        gt = vctest.datasets.load("grouseticks")
        return gt.assign(sHEIGHT=(gt.HEIGHT - gt.HEIGHT.mean()) / gt.HEIGHT.std())  # R's scale()
    # one row per animal: incidence ones, then size - incidence zeros
    rows = np.repeat(np.arange(len(cbpp)), cbpp["size"].astype(int))
    out = cbpp.iloc[rows][["herd", "period"]].reset_index(drop=True)
    out["y"] = np.concatenate([np.r_[np.ones(int(i)), np.zeros(int(s - i))]
                               for i, s in zip(cbpp.incidence, cbpp["size"], strict=True)])
    return out


def _model(ref: dict) -> GeneralizedLinearMixedModel:
    offset = np.log(_data("cbpp")["size"].to_numpy()) if ref["offset"] else None
    design = build_design(ref["formula"], _data(ref["data"].split(" ")[0]
                                                if ref["data"] != "cbpp (one row per animal)"
                                                else "bernoulli"))
    return GeneralizedLinearMixedModel.from_design(design, ref["family"], ref["link"],
                                                   offset=offset)


def _values(v) -> np.ndarray:
    return np.array(list(v.values()) if isinstance(v, dict) else v, dtype=float)


@pytest.fixture(scope="module")
def fitted():
    cache: dict[str, object] = {}

    def get(case_id: str):
        if case_id not in cache:
            cache[case_id] = fit_glmm(_model(CASES[case_id]))
        return cache[case_id]

    return get


# -- the Laplace approximation itself ---------------------------------------------------


@pytest.mark.parametrize("case_id", list(CASES))
def test_laplace_matches_lme4_deviance_function(case_id):
    ref = CASES[case_id]
    model = _model(ref)
    for point in ref["laplace_points"]:
        value = model.objective(_values(point["theta"]), _values(point["beta"]))
        # lme4 (tolPwrss = 1e-12) still takes log|L|^2 one iteration before the mode
        assert value == pytest.approx(point["minus2loglik"], rel=2e-8)


def _mu(fam: str, link: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mu, dmu/deta, variance: written independently of the kernels."""
    if fam == "poisson":
        mu = np.exp(eta)
        return mu, mu, mu
    if link == "logit":
        mu = special.expit(eta)
        dmu = mu * (1 - mu)
    elif link == "probit":
        mu, dmu = special.ndtr(eta), stats.norm.pdf(eta)
    else:
        mu, dmu = -np.expm1(-np.exp(eta)), np.exp(eta - np.exp(eta))
    return mu, dmu, mu * (1 - mu)


def dense_laplace(model, theta, beta, joint=False):
    """-2 log-likelihood by the Laplace approximation with dense Z Lambda (test oracle).

    PIRLS (Fisher scoring with step halving) on the penalised deviance, then
    aic(mu) + ||u||^2 + log det(Lambda'Z'WZ Lambda + I), with aic from scipy.stats.
    """
    design = model.design
    blocks = []
    for b, t in zip(design.blocks, model.layout.factors(np.asarray(theta, float)), strict=True):
        z = np.zeros((design.n, b.n_levels * b.k))
        for c in range(b.k):
            z[np.arange(design.n), b.codes * b.k + c] = b.columns[:, c]
        blocks.append(z @ np.kron(np.eye(b.n_levels), t))
    a, x = np.hstack(blocks), design.X
    y, wt, off = model.y, model.weights, model.offset
    q, p = a.shape[1], x.shape[1]
    g = np.hstack([a, x]) if joint else a
    pen = np.diag(np.r_[np.ones(q), np.zeros(p if joint else 0)])
    cur = np.r_[np.zeros(q), beta] if joint else np.zeros(q)

    def state(v, full=False):
        b = v[q:] if joint else np.asarray(beta, float)
        eta = off + x @ b + a @ v[:q]
        mu, dmu, var = _mu(model.family, model.link, eta)
        if not full:  # log-likelihood up to a constant, for step halving
            ll = (y * np.log(mu) - mu if model.family == "poisson"
                  else wt * (y * np.log(mu) + (1 - y) * np.log1p(-mu)))
            return eta, mu, dmu, var, -2 * np.sum(ll) + v[:q] @ v[:q]
        if model.family == "poisson":
            return -2 * np.sum(stats.poisson.logpmf(y, mu)), mu, dmu, var
        return -2 * np.sum(stats.binom.logpmf(np.round(wt * y), wt, mu)), mu, dmu, var

    for _ in range(100):
        eta, mu, dmu, var, pdev = state(cur)
        w = wt * dmu**2 / var
        fixed = off if joint else off + x @ beta
        new = np.linalg.solve(g.T @ (w[:, None] * g) + pen,
                              g.T @ (w * (eta - fixed + (y - mu) / dmu)))
        if np.max(np.abs(new - cur)) < 1e-11:
            break
        step = 1.0
        while state(cur + step * (new - cur))[-1] > pdev + 1e-10 and step > 1e-6:
            step /= 2
        cur = cur + step * (new - cur)
    aic, mu, dmu, var = state(cur, full=True)
    w = wt * dmu**2 / var
    logdet = np.linalg.slogdet(a.T @ (w[:, None] * a) + np.eye(q))[1]
    return aic + cur[:q] @ cur[:q] + logdet, cur


DENSE_CASES = [
    ("cbpp", CBPP, "binomial", "logit"),
    ("cbpp", CBPP, "binomial", "probit"),
    ("cbpp", CBPP, "binomial", "cloglog"),
    ("cbpp", "incidence ~ period + (1 | herd)", "poisson", "log"),
    ("grouseticks", "TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson", "log"),
    # k = 2 in the block-diagonal term and in the dense "rest" term, crossed
    ("cbpp", "cbind(incidence, size - incidence) ~ 1 + (1 + s | herd) + (1 + s | period)",
     "binomial", "logit"),
]


@pytest.mark.parametrize(("data", "formula", "family", "link"), DENSE_CASES)
def test_laplace_matches_dense_numpy_reference(data, formula, family, link):
    model = GeneralizedLinearMixedModel.from_design(build_design(formula, _data(data)), family,
                                                    link)
    rng = np.random.default_rng(11)
    glm = fit_glm(model.without_random_effects()).beta.to_numpy()
    for _ in range(1 if model.q > 100 else 3):  # dense solves of order q are slow
        theta = np.where(model.layout.is_diagonal, rng.uniform(0.2, 1.2, model.layout.size),
                         rng.uniform(-0.3, 0.3, model.layout.size))
        beta = glm + rng.normal(0, 0.1, glm.size)
        want, _ = dense_laplace(model, theta, beta)
        assert model.objective(theta, beta) == pytest.approx(want, rel=1e-10)
        if model.q > 100:
            continue
        # lme4's nAGQ = 0 stage: beta profiled together with u
        joint = model.laplace(theta, beta, joint=True)
        want_joint, modes = dense_laplace(model, theta, beta, joint=True)
        assert joint.m2ll == pytest.approx(want_joint, rel=1e-10)
        np.testing.assert_allclose(joint.beta, modes[model.q:], rtol=1e-7, atol=1e-9)


# -- fits against lme4 -------------------------------------------------------------------


@pytest.mark.parametrize("case_id", list(CASES))
def test_fit_matches_lme4_tight(case_id, fitted):
    ref, fit = CASES[case_id]["tight"], fitted(case_id)
    assert fit.optimizer_ok and fit.converged, fit.diagnostics.messages
    assert fit.singular == ref["isSingular"]
    # same optimum, and never above lme4's (its log-determinant lags the mode)
    assert fit.objective == pytest.approx(ref["minus2loglik"], rel=1e-8)
    assert fit.objective <= ref["minus2loglik"] + 1e-9 * ref["minus2loglik"]
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-8)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-6)
    assert list(fit.theta_names) == list(ref["theta"])
    # a singular optimum (grouseticks_slope: correlation -1) is flat along the bound
    np.testing.assert_allclose(fit.theta, _values(ref["theta"]), rtol=1e-5,
                               atol=1e-4 if fit.singular else 0.0)
    assert list(fit.beta.index) == list(ref["beta"])
    np.testing.assert_allclose(fit.beta, _values(ref["beta"]), rtol=5e-5, atol=1e-7)
    np.testing.assert_allclose(fit.beta_se, _values(ref["beta_se"]), rtol=1e-3)
    assert fit.df == CASES[case_id]["df"]


@pytest.mark.parametrize("case_id", list(CASES))
def test_fit_matches_lme4_default(case_id, fitted):
    ref, fit = CASES[case_id], fitted(case_id)
    assert fit.objective == pytest.approx(ref["minus2loglik"], rel=1e-5)
    assert fit.objective <= ref["minus2loglik"] * (1 + 1e-9)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-4)
    vc = fit.varcorr
    assert list(vc.grp) == [name.split(".")[0] for name in ref["theta"]]
    if ref["tight"]["isSingular"]:
        # lme4's default stopped short of the singular optimum (with a gradient warning)
        assert any("failed to converge" in w for w in ref["warnings"])
        return
    np.testing.assert_allclose(fit.theta, _values(ref["theta"]), rtol=1e-3)
    np.testing.assert_allclose(fit.beta, _values(ref["beta"]), rtol=1e-3, atol=1e-5)
    want = pd.DataFrame(varcorr_rows(fit.model.layout, _values(ref["theta"]), 1.0))
    np.testing.assert_allclose(vc.vcov, want.vcov[want.grp != "Residual"], rtol=2e-3)


def test_cbpp_headline_numbers(fitted):
    fit = fitted("cbpp")
    # the numbers lme4 prints: deviance 73.47, theta 0.642, LRT against the GLM 14.005
    assert fit.deviance == pytest.approx(73.47428, abs=3e-3)
    assert fit.theta[0] == pytest.approx(0.64207, abs=3e-4)
    glm = fit_glm(fit.model.without_random_effects())
    assert glm.objective == pytest.approx(GLMS["cbpp_glm"]["minus2loglik"], rel=1e-12)
    lrt = glm.objective - fit.objective
    tight = GLMS["cbpp_glm"]["minus2loglik"] - CASES["cbpp"]["tight"]["minus2loglik"]
    assert lrt == pytest.approx(tight, abs=1e-6)
    assert lrt == pytest.approx(REF["lrt"]["cbpp_vs_glm"], abs=1e-3)  # lme4 default: 14.00527


def test_crossed_lrt_matches_lme4(fitted):
    lrt = fitted("grouseticks_brood").objective - fitted("grouseticks_scaled").objective
    want = (CASES["grouseticks_brood"]["tight"]["minus2loglik"]
            - CASES["grouseticks_scaled"]["tight"]["minus2loglik"])
    assert lrt == pytest.approx(want, abs=2e-5)
    assert lrt == pytest.approx(REF["lrt"]["grouseticks_location"], abs=1e-4)


def test_uncentred_grouseticks_is_lme4s_false_alarm(fitted):
    ref = CASES["grouseticks"]
    assert any("failed to converge" in w for w in ref["warnings"])
    raw, scaled = fitted("grouseticks"), fitted("grouseticks_scaled")
    assert raw.converged and not raw.diagnostics.messages
    # the same model in other units: same likelihood and a rescaled slope
    assert raw.objective == pytest.approx(scaled.objective, rel=1e-11)
    sd = _data("grouseticks").HEIGHT.std()
    assert raw.beta["HEIGHT"] * sd == pytest.approx(scaled.beta["sHEIGHT"], rel=1e-5)
    assert raw.beta_se["HEIGHT"] * sd == pytest.approx(scaled.beta_se["sHEIGHT"], rel=1e-3)


# -- GLMs --------------------------------------------------------------------------------


@pytest.mark.parametrize("glm_id", list(GLMS))
def test_glm_matches_r(glm_id):
    ref = GLMS[glm_id]
    data = _data(ref["data"])
    offset = np.log(data["size"].to_numpy()) if ref["offset"] else None
    model = GeneralizedLinearModel.from_design(build_design(ref["formula"], data), ref["family"],
                                               offset=offset)
    fit = fit_glm(model)
    assert fit.converged
    assert fit.objective == pytest.approx(ref["minus2loglik"], rel=1e-11)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-10)
    np.testing.assert_allclose(fit.beta, _values(ref["beta"]), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.beta_se, _values(ref["beta_se"]), rtol=1e-5)
    warm = fit_glm(model, start=fit.beta.to_numpy())  # fit_glm starts from R's mustart
    assert warm.converged and warm.objective == pytest.approx(fit.objective, rel=1e-13)
    np.testing.assert_allclose(warm.beta, fit.beta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_glm_loglik_matches_statsmodels(link):
    import statsmodels.api as sm

    data = _data("cbpp")
    design = build_design("cbind(incidence, size - incidence) ~ period", data)
    fit = fit_glm(GeneralizedLinearModel.from_design(design, "binomial", link))
    links = {"logit": sm.families.links.Logit, "probit": sm.families.links.Probit,
             "cloglog": sm.families.links.CLogLog}
    endog = np.column_stack([data.incidence, data["size"] - data.incidence])
    ref = sm.GLM(endog, design.X, family=sm.families.Binomial(links[link]())).fit(tol=1e-13)
    assert fit.loglik == pytest.approx(ref.llf, rel=1e-12)
    np.testing.assert_allclose(fit.beta, ref.params, rtol=1e-8)
    np.testing.assert_allclose(fit.beta_se, ref.bse, rtol=1e-5)


# -- refits, kernels, singular fits, optimisers ------------------------------------------


def test_refit_equals_a_fresh_fit(fitted):
    fit = fitted("cbpp")
    rng = np.random.default_rng(2024)
    for _ in range(5):
        y = fit.model.simulate(fit.theta, fit.beta, rng)
        again = fit.refit(y)
        fresh = fit_glmm(fit.model.with_response(y))
        assert again.objective == pytest.approx(fresh.objective, rel=1e-10)
        np.testing.assert_allclose(again.theta, fresh.theta, atol=2e-5)
        np.testing.assert_allclose(again.beta, fresh.beta, atol=2e-5)
        assert again.refit(y).objective == pytest.approx(again.objective, rel=1e-11)
    assert fit.refit(fit.model.y).objective == pytest.approx(fit.objective, rel=1e-12)


def test_refit_kernel_is_the_fit(fitted):
    fit = fitted("grouseticks_scaled")
    m = fit.model
    start = make_start(m.layout, m.structure, fit.theta, m.beta_to_engine(fit.beta))
    theta, beta, _, _, m2ll, _, n_evals, status = fit_compiled(m.structure, m.data(),
                                                               GlmmSettings().kernel(), start)
    assert status in (0, 1) and n_evals > 0
    assert m2ll == pytest.approx(fit.objective, rel=1e-11)
    np.testing.assert_allclose(theta, fit.theta, atol=2e-6)
    np.testing.assert_allclose(m.beta_to_user(beta), fit.beta, atol=2e-5)


def _null_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(10)], 12),
                          "x": rng.normal(size=120)})
    return frame.assign(y=rng.poisson(np.exp(0.5 + 0.3 * frame.x)))


def test_singular_fit_is_not_flagged_unconverged():
    model = GeneralizedLinearMixedModel.from_design(build_design("y ~ x + (1 | g)",
                                                                 _null_data(0)), "poisson")
    fit = fit_glmm(model)
    assert fit.theta[0] == 0.0 and fit.singular
    assert fit.converged and not fit.diagnostics.messages
    glm = fit_glm(model.without_random_effects())
    assert fit.objective == pytest.approx(glm.objective, rel=1e-12)
    np.testing.assert_allclose(fit.beta, glm.beta, rtol=1e-7)
    np.testing.assert_allclose(fit.beta_se, glm.beta_se, rtol=1e-6)
    assert "singular" in fit.summary()


@pytest.mark.parametrize("optimizer", ["L-BFGS-B", pytest.param("Nelder-Mead",
                                                                  marks=pytest.mark.slow),
                                       pytest.param("Powell", marks=pytest.mark.slow)])
def test_scipy_second_opinions_agree(optimizer, fitted):
    fit = fitted("cbpp")
    other = fit_glmm(fit.model, optimizer=optimizer)
    assert other.objective == pytest.approx(fit.objective, rel=1e-9)
    np.testing.assert_allclose(other.theta, fit.theta, atol=2e-4)


def test_edge_restart_tries_both_signs_of_a_free_column(fitted):
    # (1 + sHEIGHT | LOCATION): the optimum has correlation -1.  A search that reaches
    # T[0, 0] = 0 with T[1, 0] > 0 is stuck on the bound unless the restart flips the
    # sign of T[1, 0] (free while T[0, 0] = 0); without it the fit stopped 0.1 higher.
    fit = fitted("grouseticks_slope")
    assert fit.theta[2] < 0 and fit.objective < 1973.701
    other = fit_glmm(fit.model, optimizer="L-BFGS-B")
    assert fit.objective <= other.objective + 1e-7


@pytest.mark.slow
def test_refit_kernel_runs_in_prange(fitted):
    import numba

    fit = fitted("cbpp")
    m = fit.model
    ys = np.array([m.simulate(fit.theta, fit.beta, np.random.default_rng(s)) for s in range(8)])

    @numba.njit(parallel=True)
    def refit_all(ys, st, data, ctl, start):
        out = np.empty(ys.shape[0])
        for i in numba.prange(ys.shape[0]):
            d = Data(ys[i].copy(), data.wt, data.offset, data.fam, data.link, data.reml,
                     data.resp_scale, data.resp_shift)
            out[i] = fit_model(st, d, ctl, start)[4]
        return out

    start = make_start(m.layout, m.structure, fit.theta, m.beta_to_engine(fit.beta))
    ctl = with_calls(m.structure, m.data(), GlmmSettings().kernel(parallel=True), start)
    parallel = refit_all(ys, m.structure, m.data(), ctl, start)
    serial = [fit_compiled(m.structure, m.with_response(y).data(), ctl, start)[4] for y in ys]
    np.testing.assert_array_equal(parallel, serial)


def test_fit_record(fitted):
    fit = fitted("cbpp")
    record = fit.to_dict()
    json.dumps(record)
    assert record["theta"] == {"herd.(Intercept)": float(fit.theta[0])}
    assert record["minus2loglik"] == fit.objective and record["family"] == "binomial"
    text = fit.summary()
    assert "Family: binomial  ( logit )" in text and "Converged." in text
    assert math.isclose(fit.coef_table()["z value"].iloc[0],
                        fit.beta.iloc[0] / fit.beta_se.iloc[0])


# -- input errors ------------------------------------------------------------------------


def _cbpp_design(formula: str = CBPP):
    return build_design(formula, _data("cbpp"))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"family": "gamma"}, ValueError, "`family` must be one of"),
     ({"family": 3}, TypeError, "`family` must be a string"),
     ({"family": "binomial", "link": "log"}, ValueError, "`link` must be one of"),
     ({"family": "poisson"}, ValueError, "needs family='binomial'"),
     ({"family": "binomial", "offset": np.zeros(3)}, ValueError, "`offset` must have one value"),
     ({"family": "binomial", "offset": np.full(56, np.inf)}, ValueError, "`offset` must be fin")],
)
def test_input_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GeneralizedLinearMixedModel.from_design(_cbpp_design(), **kwargs)


def test_response_errors():
    data = _data("cbpp").assign(y=lambda d: d.incidence - 1.0, z=lambda d: d.incidence / 2)
    with pytest.raises(ValueError, match="non-negative counts"):
        GeneralizedLinearMixedModel.from_design(build_design("y ~ period + (1 | herd)", data),
                                                "poisson")
    with pytest.raises(ValueError, match=r"proportion in \[0, 1\]"):
        GeneralizedLinearMixedModel.from_design(build_design("incidence ~ period + (1 | herd)",
                                                             data), "binomial")
    with pytest.warns(UserWarning, match="non-integer"):
        GeneralizedLinearMixedModel.from_design(build_design("z ~ period + (1 | herd)", data),
                                                "poisson")
    with pytest.raises(ValueError, match="no random-effects term"):
        GeneralizedLinearMixedModel.from_design(_cbpp_design("incidence ~ period"), "poisson")
    model = GeneralizedLinearMixedModel.from_design(_cbpp_design(), "binomial")
    with pytest.raises(ValueError, match=r"`y` must have shape \(56,\)"):
        model.with_response(np.zeros(3))
    with pytest.raises(ValueError, match="`optimizer` must be one of"):
        fit_glmm(model, optimizer="newton")
    with pytest.raises(ValueError, match="`start` must hold 1 theta and 4 beta"):
        fit_glmm(model, start=([1.0], [0.0]))
    with pytest.raises(TypeError, match="`model` must be a GeneralizedLinearMixedModel"):
        fit_glmm(model.without_random_effects())
