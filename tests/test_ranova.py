"""ranova, anova and reduce against lmerTest / lme4 (validation/reference/ranova_reference.json,
written by validation/r/ranova_reference.R) and against exact oracles for their p-values."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2
from scipy.stats import f as f_dist

import vctest
from vctest.api.ranova import ranova_rows
from vctest.formula.design import build_design

REF = json.loads((pathlib.Path(__file__).parents[1] / "validation" / "reference"
                  / "ranova_reference.json").read_text())
RTOL = 1e-6


def _column(values):
    return np.array([np.nan if v == "NA" else v for v in values], dtype=float)


def _assert_rel(ours, theirs, rtol=RTOL):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(theirs)
    rel = np.abs(ours[ok] - theirs[ok]) / np.maximum(np.abs(theirs[ok]), 1e-12)
    assert rel.max() <= rtol, (ours, theirs, rel)


@pytest.mark.parametrize("case", REF["ranova"], ids=[c["id"] for c in REF["ranova"]])
def test_ranova_columns_equal_lmertest(case):
    tab = vctest.ranova(case["formula"], case["data"], reml=case["REML"], method="asymptotic")
    frame = tab.to_frame()
    assert list(frame.index) == case["rows"]
    for col in ("npar", "logLik", "AIC", "LRT", "Df"):
        _assert_rel(frame[col], _column(case[col]))
    # lmerTest's p column is the naive chi-square; ours is computed the same way
    _assert_rel(frame["Pr(>Chisq)"], _column(case["Pr(>Chisq)"]), rtol=1e-5)


def test_chibar_column_is_the_boundary_mixture():
    frame = vctest.ranova("Reaction ~ Days + (Days | Subject)", "sleepstudy",
                          method="asymptotic").to_frame()
    lrt, df = frame["LRT"].iloc[1], int(frame["Df"].iloc[1])
    assert df == 2
    expected = 0.5 * chi2.sf(lrt, 1) + 0.5 * chi2.sf(lrt, 2)
    assert frame["Pr(chibar)"].iloc[1] == pytest.approx(expected, rel=1e-12)
    pen = vctest.ranova("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin",
                        method="asymptotic").to_frame()
    np.testing.assert_allclose(pen["Pr(chibar)"].iloc[1:], pen["Pr(>Chisq)"].iloc[1:] / 2,
                               rtol=1e-12)


def test_exact_row_equals_the_anova_f_test():
    """Balanced one-way layout: the RLRT is monotone in the F statistic, so its exact
    p-value is the F test's (an oracle independent of the simulation)."""
    data = vctest.datasets.load("Dyestuff")
    tab = vctest.ranova("Yield ~ 1 + (1 | Batch)", data, nsim_exact=100_000, seed=11)
    row = tab.to_frame().iloc[1]
    assert row["reference"] == "exact"
    groups = data.groupby("Batch", observed=True)["Yield"]
    k, n = groups.ngroups, groups.size().iloc[0]
    msb = n * ((groups.mean() - data.Yield.mean()) ** 2).sum() / (k - 1)
    msw = groups.var(ddof=1).mean()
    p_f = f_dist.sf(msb / msw, k - 1, k * (n - 1))
    assert abs(row["Pr(ref)"] - p_f) <= 4 * row["MC.SE"], (row["Pr(ref)"], p_f)


def test_rows_use_exact_or_bootstrap_and_their_own_seed():
    formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    tab = vctest.ranova(formula, "sleepstudy", nsim=30, nsim_exact=2000, seed=5)
    assert list(tab["reference"].iloc[1:]) == ["exact", "exact"]
    again = vctest.ranova(formula, "sleepstudy", nsim=30, nsim_exact=2000, seed=5)
    pd.testing.assert_frame_equal(tab.to_frame(), again.to_frame())
    other = vctest.ranova(formula, "sleepstudy", nsim=30, nsim_exact=2000, seed=6)
    res5, res6 = (t.results["(1 | Subject)"] for t in (tab, other))
    assert not np.array_equal(res5.null_distribution, res6.null_distribution)
    # row i draws from the child spawn_key + (i,) of the one SeedSequence
    child = np.random.SeedSequence(5, spawn_key=(0,))
    alone = vctest.vc_test(formula, "sleepstudy", term="(1 | Subject)", nsim=2000,
                           seed=child)
    np.testing.assert_array_equal(alone.null_distribution, res5.null_distribution)
    child1 = np.random.SeedSequence(5, spawn_key=(1,))
    alone1 = vctest.vc_test(formula, "sleepstudy", term="(0 + Days | Subject)", nsim=2000,
                            seed=child1)
    assert alone1.pvalue == tab.results["Days in (0 + Days | Subject)"].pvalue
    # the two rows' null samples differ (different children)
    assert not np.array_equal(res5.null_distribution,
                              tab.results["Days in (0 + Days | Subject)"].null_distribution)


def test_rows_simulate_side_by_side_with_the_same_numbers_on_any_threads():
    """Rows simulate in parallel (each from its own child seed): one thread or two gives
    the same table and the same null samples, for bootstrap and exact rows."""
    for formula, data, kw in (
            ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin",
             {"method": "bootstrap", "nsim": 25}),
            ("strength ~ 1 + (1 | batch/cask)", "Pastes", {"nsim_exact": 3000})):
        one = vctest.ranova(formula, data, seed=8, threads=1, **kw)
        two = vctest.ranova(formula, data, seed=8, threads=2, **kw)
        pd.testing.assert_frame_equal(one.to_frame(), two.to_frame())
        for label, res in one.results.items():
            np.testing.assert_array_equal(res.null_distribution,
                                          two.results[label].null_distribution)


def test_run_rows_runs_rows_at_once_each_with_its_share_of_threads():
    import threading

    import numba

    from vctest.nulls.executor import run_rows, threadsafe_layer

    if not threadsafe_layer():
        pytest.skip("Numba's threading layer is not thread-safe: rows run serially")
    barrier = threading.Barrier(2, timeout=30)   # both rows must be running at once

    def work(i, row_threads):
        barrier.wait()
        return i, row_threads, numba.get_num_threads(), threading.current_thread().name

    out = run_rows(work, 2, threads=2)
    assert [o[0] for o in out] == [0, 1]
    assert all(o[1] == 1 and o[2] == 1 for o in out)
    assert all(o[3].startswith("vctest-row") for o in out)
    assert run_rows(lambda i, t: (i, t), 3, threads=1) == [(0, 1), (1, 1), (2, 1)]

    def fail(i, row_threads):
        if i == 1:
            raise ValueError("row 1 failed")
        return i

    with pytest.raises(ValueError, match="row 1 failed"):
        run_rows(fail, 3, threads=2)


def test_slope_row_is_bootstrapped_and_matches_compare():
    tab = vctest.ranova("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=False,
                        nsim=40, seed=2)
    row = tab.to_frame().iloc[1]
    assert row["reference"] == "bootstrap"
    res = tab.results["Days in (Days | Subject)"]
    assert res.method == "bootstrap" and res.nsim == 40
    direct = vctest.compare("Reaction ~ Days + (Days | Subject)",
                            "Reaction ~ Days + (1 | Subject)", "sleepstudy", nsim=40,
                            seed=np.random.SeedSequence(2, spawn_key=(0,)))
    assert direct.statistic == pytest.approx(row["LRT"], rel=1e-9)
    np.testing.assert_allclose(np.sort(direct.null_distribution),
                               np.sort(res.null_distribution), rtol=1e-6, atol=1e-8)
    assert row["Pr(ref)"] == direct.pvalue


def test_method_bootstrap_for_every_row():
    tab = vctest.ranova("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin",
                        method="bootstrap", nsim=20, seed=1)
    assert list(tab["reference"].iloc[1:]) == ["bootstrap", "bootstrap"]
    assert (tab["Pr(ref)"].iloc[1:] == 1 / 21).all()   # LRTs of 105 and 279


def test_glmm_rows_are_bootstrapped():
    tab = vctest.ranova("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
                        family="binomial", nsim=20, seed=1)
    frame = tab.to_frame()
    assert frame["reference"].iloc[1] == "bootstrap"
    direct = vctest.vc_test("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                            "cbpp", term="(1 | herd)", family="binomial",
                            method="asymptotic")
    assert frame["LRT"].iloc[1] == pytest.approx(direct.statistic, rel=1e-9)


def test_ranova_of_a_fit_uses_its_criterion():
    m = vctest.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", reml=False)
    frame = vctest.ranova(m, method="asymptotic").to_frame()
    case = next(c for c in REF["ranova"] if c["id"] == "penicillin.ml")
    _assert_rel(frame["LRT"], _column(case["LRT"]))
    with pytest.raises(TypeError, match="`data` must be omitted"):
        vctest.ranova(m, "Penicillin")


def test_table_result_is_frozen_and_serialises():
    tab = vctest.ranova("strength ~ 1 + (1 | batch/cask)", "Pastes", nsim_exact=5000, seed=3)
    frame = tab.to_frame()
    frame.loc[:, "LRT"] = 0.0
    assert tab.to_frame()["LRT"].iloc[1] > 50
    record = json.loads(tab.to_json())
    assert [r["row"] for r in record["rows"]] == ["<none>", "(1 | cask:batch)", "(1 | batch)"]
    assert record["rows"][0]["LRT"] is None
    assert record["rows"][1]["LRT"] == pytest.approx(tab["LRT"].iloc[1])
    assert set(record["tests"]) == {"(1 | cask:batch)", "(1 | batch)"}
    assert "<table" in tab._repr_html_() and "(1 | batch)" in tab.summary()
    text = tab.methods_text()
    assert "Crainiceanu & Ruppert 2004" in text and "5000 draws" in text
    assert len(tab) == 3 and "Pr(ref)" in tab.columns


def test_ranova_rows_name_lmertest_reductions():
    d = build_design("distance ~ age + (age | Subject)", vctest.datasets.load("Orthodont"))
    rows = ranova_rows(d)
    assert [label for label, _ in rows] == ["age in (age | Subject)"]
    assert rows[0][1].n_params_removed == 2 and rows[0][1].columns == (1,)


def test_ranova_errors():
    with pytest.raises(ValueError, match="`method` must be one of"):
        vctest.ranova("Yield ~ 1 + (1 | Batch)", "Dyestuff", method="exact")
    with pytest.raises(ValueError, match="no random-effects term"):
        vctest.ranova("Yield ~ 1", "Dyestuff")
    with pytest.raises(ValueError, match="`nsim_exact` must be a positive integer"):
        vctest.ranova("Yield ~ 1 + (1 | Batch)", "Dyestuff", nsim_exact=0)
    with pytest.raises(TypeError, match="`data` is required"):
        vctest.ranova("Yield ~ 1 + (1 | Batch)")


# --- anova ---------------------------------------------------------------------------------


def test_anova_equals_lme4_table():
    ref = REF["anova"]
    fits = [vctest.fit(f, "sleepstudy") for f in ref["formulas"]]   # REML fits, as lme4's
    tab = vctest.anova(*fits, names=["m0", "m1", "m2"], nsim=50, seed=4)
    frame = tab.to_frame()
    assert list(frame.index) == ref["rows"]
    for col in ("npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df"):
        _assert_rel(frame[col], _column(ref[col]))
    _assert_rel(frame["Pr(>Chisq)"], _column(ref["Pr(>Chisq)"]), rtol=1e-5)
    assert any("refitted model(s) by ML" in n for n in tab.notes)
    # m0 -> m1 adds one variance: 50:50 chi2(0):chi2(1); m1 -> m2 adds a covariance only
    assert frame["Pr(chibar)"].iloc[1] == pytest.approx(frame["Pr(>Chisq)"].iloc[1] / 2)
    assert frame["Pr(chibar)"].iloc[2] == pytest.approx(frame["Pr(>Chisq)"].iloc[2])
    assert frame["Pr(boot)"].iloc[1] == 1 / 51
    assert 0.5 < frame["Pr(boot)"].iloc[2] <= 1


def test_anova_orders_by_parameters_and_takes_formulas():
    ref = REF["anova_ml"]
    tab = vctest.anova(ref["formulas"][1], ref["formulas"][0], data="sleepstudy",
                       method="asymptotic", names=["big", "small"])
    frame = tab.to_frame()
    assert list(frame.index) == ["small", "big"]
    for col in ("npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df"):
        _assert_rel(frame[col], _column(ref[col]))
    assert any("refitted model(s) by ML" in n for n in tab.notes)   # formulas: REML first
    assert tab.settings["criterion"] == "ML"


def test_anova_errors():
    with pytest.raises(ValueError, match="two or more models"):
        vctest.anova("Reaction ~ Days + (1 | Subject)", data="sleepstudy")
    d = vctest.datasets.load("sleepstudy")
    a = vctest.fit("Reaction ~ Days + (1 | Subject)", d)
    b = vctest.fit("Reaction ~ Days + (Days | Subject)", d.iloc[10:])
    with pytest.raises(ValueError, match="different rows"):
        vctest.anova(a, b, method="asymptotic")
    with pytest.raises(ValueError, match="`names` must give one distinct label"):
        vctest.anova(a, a, names=["x", "x"], method="asymptotic")


# --- reduce --------------------------------------------------------------------------------


def test_reduce_removes_the_unneeded_term_and_warns_about_selection():
    tab = vctest.reduce("strength ~ 1 + (1 | batch/cask)", "Pastes", nsim_exact=20_000,
                        seed=1)
    frame = tab.to_frame()
    assert list(frame.index) == ["(1 | batch)", "(1 | cask:batch)"]
    assert list(frame["Eliminated"]) == [1, 0]
    assert frame["Pr(ref)"].iloc[0] > 0.05 and frame["Pr(ref)"].iloc[1] < 0.05
    assert tab.settings["final_formula"] == "strength ~ 1 + (1 | cask:batch)"
    assert any("not calibrated" in n for n in tab.notes)
    # the kept term's row is the final model's ranova row
    final = vctest.ranova("strength ~ 1 + (1 | cask:batch)", "Pastes", method="asymptotic")
    assert frame["LRT"].iloc[1] == pytest.approx(final["LRT"].iloc[1], rel=1e-9)


def test_reduce_can_remove_every_term():
    tab = vctest.reduce("Yield ~ 1 + (1 | Batch)", "Dyestuff2", method="asymptotic")
    assert list(tab["Eliminated"]) == [1]
    assert tab.settings["final_formula"] == "Yield ~ 1"
    assert any("fixed-effects model" in n for n in tab.notes)
    with pytest.raises(ValueError, match="`alpha` must be in"):
        vctest.reduce("Yield ~ 1 + (1 | Batch)", "Dyestuff2", alpha=1.5)
