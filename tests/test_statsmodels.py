"""statsmodels MixedLM models and results translated into vctest (vctest.api.statsmodels).

The referee is statsmodels itself: the translated model's log-likelihood at
statsmodels' estimates must equal ``result.llf`` (REML and ML), and
statsmodels' ``loglike`` at vctest's estimates must equal vctest's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.regression.mixed_linear_model import MixedLMParams, VCSpec
from statsmodels.tools.sm_exceptions import ConvergenceWarning, SingularMatrixWarning

import vctest
from vctest.api._sm_params import theta_from_sm
from vctest.api.statsmodels import (
    StatsmodelsFit,
    Translation,
    from_statsmodels,
    term_from_statsmodels,
    translate,
)
from vctest.formula.design import build_design

SLEEP = vctest.datasets.load("sleepstudy")
DYE = vctest.datasets.load("Dyestuff")
PASTES = vctest.datasets.load("Pastes")


def _sleep(re_formula):
    return smf.mixedlm("Reaction ~ Days", SLEEP, groups="Subject", re_formula=re_formula)


def _pastes(re_formula):
    return smf.mixedlm("strength ~ 1", PASTES, groups="batch", re_formula=re_formula,
                       vc_formula={"cask": "0 + C(cask)"})


def _arrays():
    X = sm.add_constant(SLEEP["Days"].to_numpy())
    return sm.MixedLM(SLEEP["Reaction"].to_numpy(), X, SLEEP["Subject"].to_numpy(), exog_re=X)


# (label, model factory, expected formula, statsmodels name -> lme4 term)
CASES = [
    ("sleep-default", lambda: _sleep(None), "Reaction ~ Days + (1 | Subject)",
     {"Subject Var": "(1 | Subject)"}),
    ("sleep-1", lambda: _sleep("1"), "Reaction ~ Days + (1 | Subject)",
     {"Subject Var": "(1 | Subject)"}),
    ("sleep-Days", lambda: _sleep("~Days"), "Reaction ~ Days + (1 + Days | Subject)",
     {"Subject Var": "(1 | Subject)", "Subject x Days Cov": "(1 + Days | Subject)",
      "Days Var": "(0 + Days | Subject)"}),
    ("sleep-0+Days", lambda: _sleep("0 + Days"), "Reaction ~ Days + (0 + Days | Subject)",
     {"Days Var": "(0 + Days | Subject)"}),
    ("dyestuff", lambda: smf.mixedlm("Yield ~ 1", DYE, groups="Batch"),
     "Yield ~ 1 + (1 | Batch)", {"Batch Var": "(1 | Batch)"}),
    ("pastes-vc", lambda: _pastes(None), "strength ~ 1 + (1 | cask:batch)",
     {"cask Var": "(1 | cask:batch)"}),
    ("pastes-re+vc", lambda: _pastes("1"), "strength ~ 1 + (1 | batch) + (1 | cask:batch)",
     {"batch Var": "(1 | batch)", "cask Var": "(1 | cask:batch)"}),
    ("arrays", _arrays, "y ~ 1 + x1 + (1 + x1 | group)",
     {"x_re1 Var": "(1 | group)", "x_re1 x x_re2 Cov": "(1 + x1 | group)",
      "x_re2 Var": "(0 + x1 | group)"}),
]


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize(("label", "make", "formula", "terms"), CASES, ids=[c[0] for c in CASES])
def test_loglik_agrees_with_statsmodels(label, make, formula, terms, reml):
    model = make()
    result = model.fit(reml=reml)
    res = from_statsmodels(result)
    t = res.translation
    assert t.formula == formula
    assert t.terms == terms
    assert t.reml is reml and res.fit.reml is reml
    assert t.reml_offset == 0.0
    # vctest's objective at statsmodels' estimates is statsmodels' llf (1e-6 is enforced;
    # the agreement seen is ~1e-13 relative)
    assert res.sm_loglik == result.llf
    assert res.vctest_loglik_at_sm_estimates == pytest.approx(result.llf, rel=1e-10)
    # ... and statsmodels' loglike at vctest's optimum is vctest's log-likelihood
    assert res.sm_loglik_at_vctest_estimates == pytest.approx(res.fit.loglik, rel=1e-10)
    # vctest's optimum is at least as high as statsmodels'
    assert res.fit.loglik >= result.llf - 1e-9 * abs(result.llf)
    assert res.fit.converged
    # the data is accepted by build_design and uses statsmodels' rows
    assert build_design(t.formula, t.data).n == model.nobs
    assert not [n for n in res.notes if "not the maximum" in n or "boundary" in n]


def test_pastes_vc_formula_is_nested_random_intercepts():
    """re_formula='1' plus vc_formula is (1 | batch/cask); vc_formula alone drops (1 | batch)."""
    nested = vctest.fit("strength ~ 1 + (1 | batch/cask)", "Pastes")
    with_re = _pastes("1").fit()
    assert with_re.llf == pytest.approx(nested.loglik, rel=1e-8)
    only_vc = _pastes(None).fit()
    cask_only = vctest.fit("strength ~ 1 + (1 | cask:batch)", "Pastes")
    assert only_vc.llf == pytest.approx(cask_only.loglik, rel=1e-8)
    assert only_vc.llf < nested.loglik - 0.3
    note = from_statsmodels(only_vc).notes
    assert any("no random intercept" in n for n in note)


def test_theta_at_statsmodels_estimates_is_vctest_theta():
    result = _sleep("~Days").fit()
    res = from_statsmodels(result)
    t = res.translation
    po = result.params_object  # cov_re / scale: statsmodels' relative covariance
    theta_sm = theta_from_sm(t._re_map, t._sources, po.cov_re, po.vcomp)
    np.testing.assert_allclose(theta_sm, res.fit.theta, atol=2e-4)
    low = np.array([[theta_sm[0], 0.0], [theta_sm[1], theta_sm[2]]])
    np.testing.assert_allclose(low @ low.T, po.cov_re, rtol=1e-12)
    assert res.fit.theta_names == ("Subject.(Intercept)", "Subject.Days.(Intercept)",
                                   "Subject.Days")
    lme4_theta = [0.966742, 0.015169, 0.230910]  # lme4 REML, sleepstudy (Days | Subject)
    np.testing.assert_allclose(res.fit.theta, lme4_theta, atol=1e-4)
    assert res.loglik == res.fit.loglik  # attribute access falls through to the fit


@pytest.mark.parametrize(
    ("make", "name", "direct_formula", "direct_data", "direct_term"),
    [
        (lambda: smf.mixedlm("Yield ~ 1", DYE, groups="Batch"), "Batch Var",
         "Yield ~ 1 + (1 | Batch)", "Dyestuff", "(1 | Batch)"),
        (lambda: _sleep("1"), "Subject Var", "Reaction ~ Days + (1 | Subject)", "sleepstudy",
         "(1 | Subject)"),
        (lambda: _pastes("1"), "cask Var", "strength ~ 1 + (1 | batch/cask)", "Pastes",
         "(1 | cask:batch)"),
        (lambda: sm.MixedLM(DYE["Yield"].to_numpy(), np.ones((30, 1)), DYE["Batch"].to_numpy()),
         "Group Var", "Yield ~ 1 + (1 | Batch)", "Dyestuff", "(1 | Batch)"),
    ],
    ids=["dyestuff", "sleep", "pastes", "dyestuff-arrays"],
)
def test_vc_test_on_translation_equals_formula_route(make, name, direct_formula, direct_data,
                                                     direct_term):
    t = translate(make().fit())
    term = term_from_statsmodels(t, name)
    via = vctest.vc_test(t.formula, t.data, term=term, seed=1, nsim=2000)
    direct = vctest.vc_test(direct_formula, direct_data, term=direct_term, seed=1, nsim=2000)
    assert via.statistic == pytest.approx(direct.statistic, rel=1e-9, abs=1e-9)
    assert via.pvalue == direct.pvalue


def test_unfitted_model_is_checked_at_vctest_estimates():
    res = from_statsmodels(_sleep("~Days"))
    assert res.sm_loglik is None and res.vctest_loglik_at_sm_estimates is None
    assert res.sm_loglik_at_vctest_estimates == pytest.approx(res.fit.loglik, rel=1e-10)
    assert res.fit.objective == pytest.approx(1743.628, abs=1e-3)  # lme4's REMLcrit


def test_reml_argument_overrides_the_criterion():
    result = _sleep(None).fit(reml=True)
    res = from_statsmodels(result, reml=False)
    assert not res.fit.reml
    assert res.vctest_loglik_at_sm_estimates == pytest.approx(res.sm_loglik, rel=1e-10)
    assert any("fitted by REML; vctest fits by ML" in n for n in res.notes)
    assert not any("not the maximum" in n for n in res.notes)


def test_free_diagonal_pattern_is_double_bar():
    free = MixedLMParams.from_components(fe_params=np.ones(2), cov_re=np.eye(2))
    result = _sleep("~Days").fit(free=free)
    res = from_statsmodels(result)
    assert res.translation.formula == "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    direct = vctest.fit("Reaction ~ Days + (1 + Days || Subject)", "sleepstudy")
    assert res.fit.loglik == pytest.approx(direct.loglik, rel=1e-10)
    assert result.llf == pytest.approx(direct.loglik, rel=1e-8)


def test_reml_offset_for_differently_coded_fixed_effects():
    """An ordered factor: vctest codes it by contr.poly (R), patsy by treatment contrasts."""
    levels = np.where(SLEEP["Days"] > 6, "hi", np.where(SLEEP["Days"] > 2, "mid", "lo"))
    data = SLEEP.assign(w=pd.Categorical(levels, categories=["lo", "mid", "hi"], ordered=True))
    for reml in (True, False):
        result = smf.mixedlm("Reaction ~ w", data, groups="Subject").fit(reml=reml)
        res = from_statsmodels(result)
        t = res.translation
        # X_statsmodels = X_vctest B; statsmodels' REML llf is lower by log|det B|
        b = np.linalg.lstsq(t.design.X, result.model.exog, rcond=None)[0]
        assert t.reml_offset == pytest.approx(-np.linalg.slogdet(b)[1], rel=1e-12)
        assert t.reml_offset == pytest.approx(np.log(np.sqrt(3)), rel=1e-9)
        shift = t.reml_offset if reml else 0.0
        assert res.vctest_loglik_at_sm_estimates + shift == pytest.approx(result.llf, rel=1e-10)


def _shifted(x):
    return (x - 4.5) / 2.0


def test_fixed_part_vctest_cannot_read_is_copied_from_arrays():
    # a function of the caller's namespace: patsy sees it, vctest's formula cannot
    result = smf.mixedlm("Reaction ~ _shifted(Days)", SLEEP, groups="Subject").fit()
    res = from_statsmodels(result)
    assert res.translation.formula == "Reaction ~ 1 + shifted_Days + (1 | Subject)"
    assert any("columns copied" in n for n in res.notes)
    assert res.vctest_loglik_at_sm_estimates == pytest.approx(result.llf, rel=1e-10)


def test_stateful_transform_in_the_fixed_part_is_read_as_written():
    # scale()/standardize() are evaluated by vctest's formula (issue #22, item 6)
    result = smf.mixedlm("Reaction ~ standardize(Days)", SLEEP, groups="Subject").fit()
    res = from_statsmodels(result)
    assert res.translation.formula == "Reaction ~ standardize(Days) + (1 | Subject)"
    assert res.vctest_loglik_at_sm_estimates == pytest.approx(result.llf, rel=1e-10)


def test_arrays_with_variance_components():
    groups = PASTES["batch"].astype(str).to_numpy()
    casks = PASTES["cask"].astype(str).to_numpy()
    colnames, mats = [], []
    for g in sorted(set(groups)):
        here = casks[groups == g]
        levels = sorted(set(here))
        colnames.append(levels)
        mats.append((here[:, None] == np.array(levels)[None, :]).astype(float))
    y = PASTES["strength"].to_numpy()
    model = sm.MixedLM(y, np.ones((y.size, 1)), groups, exog_re=np.ones((y.size, 1)),
                       exog_vc=VCSpec(["cask"], [colnames], [mats]))
    res = from_statsmodels(model.fit())
    assert res.translation.formula == "y ~ 1 + (1 | group) + (1 | cask)"
    assert res.translation.source == "arrays"
    nested = vctest.fit("strength ~ 1 + (1 | batch/cask)", "Pastes")
    assert res.fit.loglik == pytest.approx(nested.loglik, rel=1e-10)


def test_boundary_fit_gets_a_note():
    dye2 = vctest.datasets.load("Dyestuff2")
    with pytest.warns(ConvergenceWarning, match="boundary"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularMatrixWarning)
        result = smf.mixedlm("Yield ~ 1", dye2, groups="Batch").fit()
    res = from_statsmodels(result)
    assert res.fit.singular
    assert any("may be on the boundary" in n and "Batch Var" in n for n in res.notes)


def test_statsmodels_short_of_the_optimum_gets_a_note():
    data = SLEEP.assign(half=np.where(SLEEP["Days"] < 5, "a", "b"))
    model = smf.mixedlm("Reaction ~ Days", data, groups="Subject", re_formula="1",
                        vc_formula={"h": "0 + C(half)", "d": "0 + Days"})
    with pytest.warns(ConvergenceWarning):
        result = model.fit()
    res = from_statsmodels(result)
    assert res.translation.formula == (
        "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + (1 | half:Subject)")
    assert res.vctest_loglik_at_sm_estimates == pytest.approx(result.llf, rel=1e-10)
    assert res.fit.loglik > result.llf + 1
    assert any("converged=False" in n for n in res.notes)
    assert any("not the maximum" in n for n in res.notes)


def test_refitting_the_model_changes_an_older_results_llf():
    """statsmodels evaluates result.llf lazily with the model's current criterion."""
    model = _sleep(None)
    first = model.fit(reml=True)
    model.fit(reml=False)
    res = from_statsmodels(first)
    assert any("lazily" in n for n in res.notes)
    reml_fit = vctest.fit("Reaction ~ Days + (1 | Subject)", "sleepstudy")
    assert res.sm_loglik == pytest.approx(reml_fit.loglik, rel=1e-10)
    assert first.llf != pytest.approx(reml_fit.loglik, rel=1e-6)  # statsmodels' stale value


def test_term_names_resolve():
    t = translate(_sleep("~Days").fit())
    assert isinstance(t, Translation)
    assert term_from_statsmodels(t, "Days Var") == "(0 + Days | Subject)"
    assert term_from_statsmodels(t, "Subject x Days Cov") == "(1 + Days | Subject)"
    assert term_from_statsmodels(t, "Group Var") == "(1 | Subject)"
    assert term_from_statsmodels(t, "(Days | Subject)") == "(1 + Days | Subject)"
    assert term_from_statsmodels(t, " (0 + Days | Subject) ") == "(0 + Days | Subject)"


def test_bad_inputs():
    with pytest.raises(TypeError, match=r"`model_or_result`.*got DataFrame"):
        translate(SLEEP)
    ols = smf.ols("Reaction ~ Days", SLEEP).fit()
    with pytest.raises(TypeError, match=r"`model_or_result`.*RegressionResultsWrapper"):
        from_statsmodels(ols)
    with pytest.raises(TypeError, match="`model_or_result`"):
        from_statsmodels(smf.ols("Reaction ~ Days", SLEEP))
    result = _sleep("~Days").fit()
    with pytest.raises(TypeError, match="`reml`"):
        from_statsmodels(result, reml="yes")
    t = translate(result)
    with pytest.raises(ValueError, match="'Subject Var', 'Subject x Days Cov', 'Days Var'"):
        term_from_statsmodels(t, "Days var")
    with pytest.raises(ValueError, match=r"lme4 terms: \(1 \+ Days \| Subject\)"):
        term_from_statsmodels(t, "(1 | Days)")
    with pytest.raises(TypeError, match="`translation`"):
        term_from_statsmodels("Reaction ~ Days", "Days Var")
    with pytest.raises(TypeError, match="`name`"):
        term_from_statsmodels(t, 3)


def test_untranslatable_models_raise():
    shared = smf.mixedlm("Reaction ~ Days", SLEEP, groups="Subject",
                         vc_formula={"d": "0 + Days + I(Days ** 2)"})
    with pytest.raises(ValueError, match="share one variance"):
        translate(shared)
    free = MixedLMParams.from_components(fe_params=np.array([1.0, 0.0]), cov_re=np.eye(2))
    result = _sleep("~Days").fit(free=free)  # fixes the slope's fixed effect
    with pytest.raises(ValueError, match="`free` pattern"):
        translate(result)


def test_result_types():
    res = from_statsmodels(smf.mixedlm("Yield ~ 1", DYE, groups="Batch").fit())
    assert isinstance(res, StatsmodelsFit)
    assert isinstance(res.fit, vctest.LmmFit)
    assert res.notes == ()
    with pytest.raises(AttributeError):
        res._no_such_attribute


def test_vc_test_accepts_a_statsmodels_result_directly():
    import warnings

    import statsmodels.formula.api as smf

    import vctest

    data = vctest.datasets.load("Dyestuff")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = smf.mixedlm("Yield ~ 1", data, groups="Batch").fit(reml=True)
    direct = vctest.vc_test("Yield ~ 1 + (1 | Batch)", data, term="(1 | Batch)",
                            nsim=5000, seed=1)
    via_sm = vctest.vc_test(result, term="Group Var", nsim=5000, seed=1)
    assert via_sm.statistic == direct.statistic and via_sm.pvalue == direct.pvalue
    import pytest

    with pytest.raises(TypeError, match="`data` must be omitted"):
        vctest.vc_test(result, data, term="Group Var")
