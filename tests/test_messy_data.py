"""Messy data gives lme4's numbers or a clear message, never a silently different model.

Issue #22, items 1-7, 13 and 14.  Each table row is an input and what must come
out: lme4's numbers from ``validation/reference/messy_data.json`` (written by
``validation/r/messy_data.R``), or the message (the table in docs/errors.rst,
section "Messy data").
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest.formula import build_design
from vctest.formula.rsemantics import grouping_values, lme4_term_order
from vctest.model.doctor import OptimizerRun, check_fit, scaling_advice
from vctest.model.reduce import drop_term, locate_term

ROOT = Path(__file__).parents[1]
REF = json.loads((ROOT / "validation" / "reference" / "messy_data.json").read_text())
LME4 = REF["cases"]


def _list(x):
    return x if isinstance(x, list) else [x]


def _sleep() -> pd.DataFrame:
    return vctest.datasets.load("sleepstudy").copy()


def _intercept_column() -> pd.DataFrame:
    d = _sleep()
    d["Intercept"] = d["Days"]
    return d


def _mixed_group() -> pd.DataFrame:
    """Subject IDs as text in even rows, as integers in odd rows (as after pd.concat):
    every subject appears as both 308 and '308'."""
    d = _sleep()
    ids = d["Subject"].astype(str).to_numpy().astype(object)
    ids[1::2] = [int(v) for v in ids[1::2]]
    d["S"] = ids
    return d


def _missing(days: bool) -> pd.DataFrame:
    """The rule of validation/r/messy_data.R: 0-based rows i % 7 == 3 lose Reaction,
    and with ``days`` rows i % 11 == 5 lose Days."""
    d = _sleep()
    i = np.arange(len(d))
    d.loc[i % 7 == 3, "Reaction"] = np.nan
    if days:
        d.loc[i % 11 == 5, "Days"] = np.nan
    return d


def _order_data() -> pd.DataFrame:
    return pd.DataFrame(REF["order_data"])


def _phase() -> pd.DataFrame:
    d = _sleep()
    d["Phase"] = np.where(d["Days"] >= 5, "late", "early")
    return d


# -- fits that must give lme4's numbers ------------------------------------------------------
# (fixture case, data, warning the fit must give or None)
FITS = [
    ("intercept_column", _intercept_column, None),
    ("character_group", _mixed_group, "mixes numbers and text"),
    ("in_operator", lambda: vctest.datasets.load("Orthodont"), None),
    ("in_operator_colon", lambda: vctest.datasets.load("Orthodont"), None),
    ("model_frame_scale", lambda: _missing(False), "dropped 26 of 180 rows"),
    ("model_frame_poly", lambda: _missing(False), "dropped 26 of 180 rows"),
    ("model_frame_center", lambda: _missing(False), "dropped 26 of 180 rows"),
    ("model_frame_plain", lambda: _missing(False), "dropped 26 of 180 rows"),
    ("model_frame_scale_slope", lambda: _missing(True), "dropped 40 of 180 rows"),
    ("theta_order_tie_then_more", _order_data, None),
    ("theta_order_tie_only", _order_data, None),
    ("theta_order_decreasing", _order_data, None),
    ("theta_order_middle", _order_data, None),
    ("theta_order_double_bar", _order_data, None),
    ("factor_slope_full", _phase, None),
    ("factor_slope_null", _phase, None),
]


@pytest.mark.parametrize(("case", "make", "warning"), FITS, ids=[f[0] for f in FITS])
def test_fit_matches_lme4(case, make, warning):
    ref = LME4[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = vctest.fit(ref["formula"], make())
    messages = [str(w.message) for w in caught]
    if warning is None:
        assert messages == []
    else:
        assert any(warning in m for m in messages), messages
    assert fit.nobs == ref["n"]
    assert list(fit.beta.index) == _list(ref["fixef_names"])
    assert list(fit.theta_names) == _list(ref["theta_names"])
    assert fit.objective == pytest.approx(ref["criterion"], abs=1e-6)
    np.testing.assert_allclose(fit.theta, _list(ref["theta"]), atol=1e-5)
    np.testing.assert_allclose(fit.beta.to_numpy(), _list(ref["fixef"]), rtol=1e-6, atol=1e-6)
    vc = fit.varcorr
    assert list(vc["grp"]) == _list(ref["varcorr_grp"])
    np.testing.assert_allclose(vc["vcov"], _list(ref["varcorr_vcov"]), rtol=1e-4, atol=1e-6)


def test_model_frame_order_changes_the_fit():
    """Control: scale() on the complete rows only is a different model (REML differs)."""
    data = _missing(False)
    complete = data.dropna().reset_index(drop=True)
    fit = vctest.fit("Reaction ~ scale(Days) + (1 | Subject)", complete)
    assert abs(fit.objective - LME4["model_frame_scale"]["criterion"]) > 1e-3


# -- the order of terms (item 7) -------------------------------------------------------------
ORDERS = [([6, 6, 12], [2, 1, 0]), ([6, 6], [0, 1]), ([12, 6, 6], [0, 1, 2]),
          ([6, 12, 6], [1, 2, 0]), ([6, 6, 12, 12], [3, 2, 1, 0])]


@pytest.mark.parametrize(("levels", "order"), ORDERS)
def test_lme4_term_order(levels, order):
    assert lme4_term_order(levels) == order


def test_null_design_has_lme4s_order_of_the_null_formula():
    """Dropping (1 | c) from (1|a) + (1|b) + (1|c) leaves lme4's order of (1|a) + (1|b)."""
    design = build_design(LME4["theta_order_tie_then_more"]["formula"], _order_data())
    assert [b.name for b in design.blocks] == ["c", "b", "a"]
    null = drop_term(design, locate_term(design, "(1 | c)"))
    assert [f"{b.name}.(Intercept)" for b in null.blocks] == _list(
        LME4["theta_order_tie_only"]["theta_names"])
    assert null.formula.text == "y ~ 1 + (1 | a) + (1 | b)"


# -- naming a term by meaning (item 13) ------------------------------------------------------
FACTOR_SLOPE = "Reaction ~ Days + Phase + (1 + Phase | Subject)"
# (term as written, canonical label, whole block?)
SPELLINGS = [
    ("(0 + Phase | Subject)", "(0 + Phase | Subject)", False),
    ("(0+Phase|Subject)", "(0 + Phase | Subject)", False),
    ("  ( 0 +  Phase |Subject ) ", "(0 + Phase | Subject)", False),
    ("(0 + Phaselate | Subject)", "(0 + Phaselate | Subject)", False),
    ("(1 + Phase | Subject)", "(1 + Phase | Subject)", True),
    ("(Phase + 1 | Subject)", "(1 + Phase | Subject)", True),
    ("(Phase | Subject)", "(1 + Phase | Subject)", True),
]


@pytest.mark.parametrize(("text", "label", "whole"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_factor_slope_found_by_meaning(text, label, whole):
    design = build_design(FACTOR_SLOPE, _phase())
    loc = locate_term(design, text)
    assert (loc.label, loc.whole_block) == (label, whole)
    assert loc.columns == ((0, 1) if whole else (1,))


def test_factor_slope_statistic_is_lme4s():
    res = vctest.vc_test(FACTOR_SLOPE, _phase(), term="(0 + Phase | Subject)",
                         method="asymptotic")
    lme4 = LME4["factor_slope_null"]["criterion"] - LME4["factor_slope_full"]["criterion"]
    assert res.statistic == pytest.approx(lme4, abs=1e-6)
    assert res.settings["null_formula"] == "Reaction ~ Days + Phase + (1 | Subject)"


def test_numeric_interaction_that_stays_is_coded_the_same():
    """Removing x from (1 + x + x:z | g) is allowed when z is numeric: R codes x:z alike."""
    data = _phase().assign(z=lambda d: (d["Days"] % 3).astype(float))
    design = build_design("Reaction ~ Days + (1 + Days + Days:z | Subject)", data)
    null = drop_term(design, locate_term(design, "(0 + Days | Subject)"))
    assert null.blocks[0].column_names == ("(Intercept)", "Days:z")
    assert null.blocks[0].term.label == "(1 + Days:z | Subject)"


def test_interaction_written_either_way_is_one_term():
    data = _phase().assign(z=lambda d: (d["Days"] % 3).astype(float))
    design = build_design("Reaction ~ Days + (1 + z:Days | Subject)", data)
    assert locate_term(design, "(0 + Days:z | Subject)").columns == (1,)
    design = build_design("Reaction ~ Days + (1 + Days + z:Days | Subject)", data)
    null = drop_term(design, locate_term(design, "(0 + Days | Subject)"))
    assert null.blocks[0].term.label == "(1 + z:Days | Subject)"


def test_terms_in_another_order_inside_the_bar():
    design = build_design("Reaction ~ Days + (1 + Days + Phase | Subject)", _phase())
    loc = locate_term(design, "(0 + Phase + Days | Subject)")
    assert loc.columns == (1, 2) and not loc.whole_block
    null = drop_term(design, loc)
    assert null.blocks[0].term.label == "(1 | Subject)"


# -- messages ----------------------------------------------------------------------------
# (name in docs/errors.rst, call, exception, phrase the message must contain)
ERRORS = [
    ("cbind response with the gaussian family",
     lambda: vctest.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp"),
     ValueError, "pass family='binomial'"),
    ("%in% with a sum on its right",
     lambda: vctest.fit("Reaction ~ Days %in% (Subject + Days) + (1 | Subject)", _sleep()),
     ValueError, "`%in%` with a parenthesised sum"),
    ("intercept of a factor slope",
     lambda: vctest.vc_test(FACTOR_SLOPE, _phase(), term="(1 | Subject)", method="bootstrap",
                            nsim=19),
     ValueError, "R codes the rest, (0 + Phase | Subject), with the columns Phaseearly, "
                 "Phaselate, as many as (1 + Phase | Subject) has"),
    ("a term the grouping factor does not have",
     lambda: vctest.vc_test(FACTOR_SLOPE, _phase(), term="(0 + Days | Subject)",
                            method="bootstrap", nsim=19),
     ValueError, "names effects that the model's terms for Subject do not have: "
                 "(1 + Phase | Subject) with columns (Intercept), Phaselate"),
    ("a grouping factor the model does not have",
     lambda: vctest.vc_test(FACTOR_SLOPE, _phase(), term="(1 | Days)", method="bootstrap",
                            nsim=19),
     ValueError, "no term has the grouping factor Days"),
    ("a term an interaction that stays contains",
     lambda: vctest.vc_test("Reaction ~ Days * Phase + (1 + Days + Days:Phase | Subject)",
                            _phase(), term="(0 + Days | Subject)", method="bootstrap",
                            nsim=19),
     ValueError, "R codes the rest, (1 + Days:Phase | Subject), with the columns "
                 "(Intercept), Days:Phaseearly, Days:Phaselate"),
]


@pytest.mark.parametrize(("name", "call", "exc", "phrase"), ERRORS, ids=[e[0] for e in ERRORS])
def test_clear_message(name, call, exc, phrase):
    with pytest.raises(exc) as info:
        call()
    assert phrase in str(info.value)


def test_lmer_refuses_cbind_too():
    assert LME4["cbind_gaussian"]["error"]  # lmer stops (with "updateMu: Size mismatch")


def test_term_message_does_not_contradict_itself():
    """The message for a term that is not found never lists that same term as present."""
    design = build_design(FACTOR_SLOPE, _phase())
    for text in ("(0 + Days | Subject)", "(1 | Days)"):
        with pytest.raises(ValueError) as info:
            locate_term(design, text)
        assert str(info.value).count(text) == 1


# -- warnings ------------------------------------------------------------------------------
def _cbpp_proportions() -> pd.DataFrame:
    d = vctest.datasets.load("cbpp").copy()
    d["prop"] = d["incidence"] / d["size"]
    return d


# (name in docs/errors.rst, call, phrases the warning must contain)
WARNINGS = [
    ("grouping column mixing numbers and text",
     lambda: build_design("Reaction ~ Days + (1 | S)", _mixed_group()),
     ["grouping column 'S' mixes numbers and text", "308 and '308' are one group",
      "18 numbers have a text twin", "astype(str)"]),

]


@pytest.mark.parametrize(("name", "call", "phrases"), WARNINGS, ids=[w[0] for w in WARNINGS])
def test_clear_warning(name, call, phrases):
    with pytest.warns(UserWarning) as record:
        call()
    text = " ".join(str(w.message) for w in record)
    for phrase in phrases:
        assert phrase in text


def test_binomial_proportions_without_trials_are_refused():
    with pytest.raises(ValueError, match=r"no numbers of trials. Give them: weights='n'.*"
                                         r"cbind\(successes, n - successes\)"):
        vctest.fit("prop ~ period + (1 | herd)", _cbpp_proportions(), family="binomial")
    fit = vctest.fit("prop ~ period + (1 | herd)", _cbpp_proportions(), family="binomial",
                     weights="size")
    assert np.isfinite(fit.loglik)


def test_glmer_warns_about_proportions_and_rounds_them():
    """The fixture behind the warning's words: glmer warns, and its log-likelihood is the
    one of the rounded successes."""
    ref = LME4["proportion_no_weights"]
    assert "non-integer #successes" in _list(ref["warnings"])[0]
    assert ref["minus2loglik"] == pytest.approx(ref["minus2loglik_rounded"], abs=1e-6)


def test_mixed_grouping_is_one_level_per_value_as_in_r():
    ref = LME4["character_group"]
    with pytest.warns(UserWarning, match="mixes numbers and text"):
        design = build_design("Reaction ~ Days + (1 | S)", _mixed_group())
    assert design.blocks[0].n_levels == ref["n_levels"] == 18
    with pytest.warns(UserWarning, match="mixes numbers and text"):
        values = grouping_values(pd.Series([3, "3", 10], dtype=object), "g")
    assert sorted(set(values)) == _list(ref["levels_mixed_example"])  # R: "10" < "3"


def test_mixed_column_in_the_fixed_part_is_refused():
    """A fixed-part column mixing 308 and '308' is refused with how to convert it (a
    grouping column is read as R's text instead): as a covariate the mix is more often a
    stray text value in numbers, which as text would make a factor of every value."""
    data = _mixed_group()
    with pytest.raises(ValueError, match=r"column 'S' used in .* mixes numbers and text"):
        build_design("Reaction ~ S + (1 | Days)", data)
    text = build_design("Reaction ~ S + (1 | Days)", data.assign(S=data["S"].astype(str)))
    assert len(text.fixed_names) == 18


def test_text_or_number_only_grouping_is_left_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for series in (pd.Series(["a", "b"], dtype=object), pd.Series([3, 4], dtype=object),
                       pd.Series([3, 4])):
            assert grouping_values(series, "g") is series


# -- vctest check (item 14) --------------------------------------------------------------
def test_check_does_not_advise_rescaling_subject_ids():
    data = _sleep()
    data["Subject"] = data["Subject"].astype(str).astype(int)  # 308 .. 372
    data["Days100"] = data["Days"] + 100.0  # a covariate that should be flagged
    report = vctest.check(vctest.fit("Reaction ~ Days100 + (1 | Subject)", data))
    assert [a.column for a in report.scaling] == ["Days100"]
    advice = scaling_advice(data[["Subject", "Days100"]], "Reaction", frozenset({"Subject"}))
    assert [a.column for a in advice] == ["Days100"]
    # the same column is flagged when nothing says it is a grouping factor
    assert "Subject" in [a.column for a in scaling_advice(data[["Subject"]], "Reaction")]


class _Diagnostics:
    """Finite-difference results of a fit whose objective fails a step from the estimate."""

    names = ("g.(Intercept)", "(Intercept)", "x")
    theta = np.array([0.42, 11.96, 0.30])
    lower = np.array([0.0, -np.inf, -np.inf])
    at_bound = np.zeros(3, dtype=bool)
    gradient = np.array([np.inf, np.inf, -420.0])
    hessian = np.full((3, 3), np.nan)
    newton_step = np.full(3, np.nan)
    scaled_gradient = float("nan")
    reduced_hessian_eigenvalues = np.full(3, np.nan)
    tolerances: ClassVar[dict[str, float]] = {"grad_tol": 2e-3, "step": 1e-4}
    converged = False
    singular = False
    messages = ("unable to evaluate the derivatives: the objective is not finite near the "
                "estimate",)


class _Fit:
    diagnostics = _Diagnostics()
    loglik = -1606.29
    theta = np.array([0.42])
    beta = np.array([11.96, 0.30])
    converged = False
    singular = False

    class model:  # the attribute path check_fit reads
        class layout:
            lower = np.array([0.0])

        design = None


def test_check_never_says_converged_next_to_infinite_gradients():
    calls = []

    def refit(optimizer, start):
        calls.append(optimizer)  # every optimiser "agrees": the old verdict was CONVERGED
        return OptimizerRun(optimizer, _Fit.loglik, _Fit.theta, _Fit.beta, True, "")

    report = check_fit(_Fit(), refit_with=refit, refit_rescaled=None, response="y")
    assert report.verdict == "unchecked"
    text = report.summary()
    assert "CONVERGED" not in text and "converged" not in report.explanation.lower()
    assert "gradient of g.(Intercept), (Intercept)" in " ".join(text.split())  # lines wrap
    assert calls == []  # refits skipped: they cannot make the fit checkable


# -- power() with a transformed response (item 1) ------------------------------------------
def _dyestuff_transformed() -> pd.DataFrame:
    d = vctest.datasets.load("Dyestuff").copy()
    d["Y2"] = np.exp(d["Yield"] / 1000)
    return d


POWER_FORMULAS = ["Yield ~ 1 + (1 | Batch)", "log(Y2) ~ 1 + (1 | Batch)",
                  "I(Yield / 1000) ~ 1 + (1 | Batch)"]
METHODS = ("exact", "bootstrap", "asymptotic", "naive")


def _power(formula: str, sizes: list[float], nsim: int, seed: int) -> pd.DataFrame:
    return vctest.power(formula, _dyestuff_transformed(), term="(1 | Batch)",
                        effect_sizes=sizes, nsim=nsim, methods=METHODS, nsim_exact=500,
                        nsim_bootstrap=19, seed=seed).table


def test_power_same_curve_for_a_transformed_response():
    tables = [_power(f, [0.0, 1.0], nsim=8, seed=7) for f in POWER_FORMULAS]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])
    at_one = tables[0][tables[0].effect_size == 1.0]
    assert at_one.rejections.sum() > 0  # the alternative is not the null in disguise


def test_power_size_at_effect_zero_within_monte_carlo_error():
    """Rate at effect 0 within 4 binomial SE of each method's size: alpha for the exact,
    bootstrap and asymptotic tests, alpha/2 for the naive chi2(1) at the boundary."""
    nsim, alpha = 200, 0.05
    table = _power("log(Y2) ~ 1 + (1 | Batch)", [0.0], nsim=nsim, seed=11)
    for row in table.itertuples():
        size = alpha / 2 if row.method == "naive" else alpha
        se = np.sqrt(size * (1 - size) / nsim)
        assert abs(row.rate - size) <= 4 * se, (row.method, row.rate)


def test_docs_list_every_message():
    text = (ROOT / "docs" / "errors.rst").read_text()
    section = text[text.index("Messy data: formulas, terms"):]
    for name, *_ in ERRORS:
        assert f"   * - {name}\n" in section
    for name, *_ in WARNINGS:
        assert f"   * - {name} (warning)\n" in section
