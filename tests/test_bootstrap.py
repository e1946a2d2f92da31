"""Parametric bootstrap: calibration against exact nulls, reproducibility, failures."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest._rng import seed_sequence
from vctest.api.comparing import BootstrapFailureWarning
from vctest.cli import main
from vctest.formula.design import build_design
from vctest.model.fit import OptimizerSettings, fit_model
from vctest.model.lmm import LinearMixedModel
from vctest.model.nesting import nesting
from vctest.nulls.bootstrap import GeneratingModel, classify, run_bootstrap

from .test_spectral import E1, oneway_exact, se_prop

FITS = {f["id"]: f for f in json.loads(
    (Path(__file__).parents[1] / "validation/reference/fits.json").read_text())["fits"]}
SLEEP_FULL = "Reaction ~ Days + (Days | Subject)"
SLEEP_NULL = "Reaction ~ Days + (1 | Subject)"


def balanced_oneway(k, j, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(k), j)
    return pd.DataFrame({"y": rng.normal(size=k * j) + rng.normal(size=k)[g],
                         "g": pd.Categorical([f"g{i}" for i in g])})


@pytest.mark.parametrize("row", [E1[0], E1[1], E1[3]], ids=lambda r: f"K{r[0]}J{r[1]}")
@pytest.mark.parametrize("reml", [True, False])
def test_oneway_bootstrap_matches_exact_null(row, reml):
    """The one-way (R)LRT null is pivotal, so the bootstrap must reproduce table E1."""
    k, j = row[0], row[1]
    nsim = 10_000
    res = vctest.compare("y ~ 1 + (1 | g)", "y ~ 1", balanced_oneway(k, j), nsim=nsim,
                         seed=k * j, reml=reml)
    ex = oneway_exact(k, j)
    assert res.n_failed == 0
    key = "rlrt" if reml else "lrt"
    p0 = ex[f"{key}_p0"]
    assert abs(res.null_mass_at_zero - p0) < 4 * se_prop(p0, nsim)
    below = float(np.mean(res.null_distribution <= ex[f"{key}_q95"]))
    assert abs(below - 0.95) < 4 * se_prop(0.95, nsim)


def test_dyestuff_bootstrap_pvalue():
    nsim = 20_000
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         method="bootstrap", nsim=nsim, seed=7)
    assert res.method == "bootstrap" and res.test == "RLRT"
    assert abs(res.pvalue - 0.0043975) < 4 * se_prop(0.0043975, nsim)
    assert res.pvalue_mc_se == pytest.approx(math.sqrt(res.pvalue * (1 - res.pvalue) / nsim),
                                             rel=0.05)
    assert "50:50 mixture chi2(0):chi2(1)" in res.asymptotic


def test_sleepstudy_statistic_as_lme4():
    res = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=100, seed=1)
    lme4 = 2 * (FITS["fit.sleep_corr.ml"]["logLik"] - FITS["fit.sleep_int.ml"]["logLik"])
    assert res.statistic == pytest.approx(lme4, abs=1e-5)  # 42.1393
    assert res.settings["df"] == 2 and res.settings["reml"] is False
    assert res.pvalue == pytest.approx(1 / 101)
    # the same test named by its term
    by_term = vctest.vc_test(SLEEP_FULL, "sleepstudy", term="(0 + Days | Subject)",
                             method="bootstrap", nsim=100, seed=1, reml=False)
    np.testing.assert_array_equal(by_term.null_distribution, res.null_distribution)


def test_thread_count_and_batching_do_not_change_a_number():
    one = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=600, seed=5, threads=1)
    two = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=600, seed=5, threads=2)
    np.testing.assert_array_equal(one.replicates.objective, two.replicates.objective)
    np.testing.assert_array_equal(one.replicates.theta_full, two.replicates.theta_full)
    short = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=250, seed=5)
    np.testing.assert_array_equal(short.replicates.objective, one.replicates.objective[:250])
    other = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=250, seed=6)
    assert not np.array_equal(other.replicates.objective, short.replicates.objective)


def test_fitted_models_are_refitted_in_ml():
    full = vctest.fit(SLEEP_FULL, "sleepstudy")  # REML fits
    null = vctest.fit(SLEEP_NULL, "sleepstudy")
    res = vctest.compare(full, null, nsim=50, seed=1)
    assert res.statistic == pytest.approx(
        2 * (FITS["fit.sleep_corr.ml"]["logLik"] - FITS["fit.sleep_int.ml"]["logLik"]),
        abs=1e-5)


def _sleep_run(settings, nsim=200):
    data = vctest.datasets.load("sleepstudy")
    d1, d0 = build_design(SLEEP_FULL, data), build_design(SLEEP_NULL, data)
    f1 = fit_model(LinearMixedModel.from_design(d1), reml=False)
    f0 = fit_model(LinearMixedModel.from_design(d0), reml=False)
    return run_bootstrap(GeneratingModel.from_fit(f0), f1, nesting(d1, d0).embed, reml=False,
                         nsim=nsim, seed_seq=seed_sequence(3), observed=42.14,
                         settings=settings)


def test_failures_are_counted_not_fatal():
    run = _sleep_run(OptimizerSettings(maxiter=9))
    rec = run.replicates
    assert rec.failure.size == 200
    assert rec.n_failed > 0
    assert np.all(np.isnan(rec.statistic[rec.failure != 0]))
    assert np.all(np.isfinite(rec.statistic[rec.failure == 0]))
    assert sum(rec.failure_counts().values()) == rec.n_failed
    # the default settings refit every replicate
    assert _sleep_run(None).replicates.n_failed == 0


def test_failure_warning_and_bound(monkeypatch):
    import vctest.api.comparing as comparing

    real = comparing.run_bootstrap

    def hobbled(*args, **kwargs):
        return real(*args, **{**kwargs, "settings": OptimizerSettings(maxiter=9)})

    monkeypatch.setattr(comparing, "run_bootstrap", hobbled)
    with pytest.warns(BootstrapFailureWarning, match="failed"):
        res = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=200, seed=1)
    assert res.n_failed > 2
    assert res.pvalue_bound >= res.pvalue
    n_ok = 200 - res.n_failed
    assert res.nsim == n_ok
    assert res.pvalue == pytest.approx(1 / (1 + n_ok))
    assert res.pvalue_bound == pytest.approx((1 + res.n_failed) / (1 + 200))
    assert res.to_dict()["n_failed"] == res.n_failed


def test_tiny_negative_statistics_become_zero_large_ones_fail():
    obj = np.array([[100.0, 100.0 + 1e-9], [100.0, 100.1], [100.0, 99.0], [100.0, np.inf]])
    status = np.zeros((4, 2), dtype=np.int64)
    stat, failure = classify(obj, status, null_fixed=False)
    assert stat[0] == 0.0 and failure[0] == 0
    assert failure[1] == 4 and np.isnan(stat[1])
    assert stat[2] == pytest.approx(1.0) and failure[2] == 0
    assert failure[3] == 3


def test_sequential_stopping_is_a_prefix_of_the_full_run():
    seq = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=5000, seed=9,
                         stop_alpha=0.05)
    assert seq.settings["stopped_early"] and seq.settings["n_run"] < 1000
    assert any("sequential" in n for n in seq.notes)
    full = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=seq.settings["n_run"],
                          seed=9)
    np.testing.assert_array_equal(seq.null_distribution, full.null_distribution)


@pytest.mark.parametrize(
    ("full", "null", "kwargs", "match"),
    [
        (SLEEP_FULL, "Reaction ~ Days + (1 | Days)", {}, "no counterpart"),
        (SLEEP_FULL, "Reaction ~ 1 + (1 | Subject)", {"reml": True}, "REML"),
        (SLEEP_NULL, SLEEP_FULL, {}, "not nested"),
        (SLEEP_FULL, "Days ~ Days + (1 | Subject)", {}, "response"),
        (SLEEP_FULL, SLEEP_NULL, {"nsim": 0}, "`nsim`"),
        (SLEEP_FULL, SLEEP_NULL, {"stop_alpha": 2.0}, "`stop_alpha`"),
    ],
)
def test_compare_input_errors(full, null, kwargs, match):
    with pytest.raises(ValueError, match=match):
        vctest.compare(full, null, "sleepstudy", **kwargs)


def test_compare_needs_data_for_formulas():
    with pytest.raises(ValueError, match="`data`"):
        vctest.compare(SLEEP_FULL, SLEEP_NULL)
    with pytest.raises(TypeError, match="both"):
        vctest.compare(SLEEP_FULL, vctest.fit(SLEEP_NULL, "sleepstudy"), "sleepstudy")


def test_progress_bar_writes_to_stderr(capsys):
    vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=300, seed=1, progress=True)
    assert "bootstrap" in capsys.readouterr().err
    vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=300, seed=1)
    assert capsys.readouterr().err == ""


def test_cli_bootstrap_json_keys(capsys):
    assert main(["test", "Dyestuff", "Yield ~ 1 + (1 | Batch)", "--term", "(1 | Batch)",
                 "--method", "bootstrap", "--nsim", "300", "--seed", "2", "--json",
                 "--quiet"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("statistic", "pvalue", "pvalue_mc_se", "method", "nsim", "seed",
                "null_mass_at_zero", "null_quantiles", "versions", "n_failed"):
        assert key in d
    assert d["method"] == "bootstrap" and d["nsim"] == 300
    assert main(["compare", "sleepstudy", SLEEP_FULL, SLEEP_NULL, "--nsim", "100", "--seed",
                 "1", "--json", "--quiet"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_failed"] == 0 and d["settings"]["df"] == 2
    assert main(["compare", "sleepstudy", SLEEP_NULL, SLEEP_FULL, "--quiet"]) == 2
    assert "not nested" in capsys.readouterr().err


@pytest.mark.slow
def test_size_under_h0_one_way():
    """Type-I error at 0.05 of the bootstrap RLRT on a small one-way design.

    With B = 99 and a pivotal statistic a Monte Carlo test rejects with
    probability exactly 5/100; over 400 null data sets the rate must lie
    within 4 binomial standard errors of 0.05.  (The stored study with 1,000
    data sets and the asymptotic references is validation/size/size_lmm.py.)
    """
    n_data, k, j = 400, 5, 4
    g = pd.Categorical([f"g{i}" for i in np.repeat(np.arange(k), j)])
    rejections = 0
    for i, ss in enumerate(np.random.SeedSequence(77).spawn(n_data)):
        y = np.random.default_rng(ss).normal(size=k * j)
        res = vctest.compare("y ~ 1 + (1 | g)", "y ~ 1", pd.DataFrame({"y": y, "g": g}),
                             nsim=99, seed=i, reml=True)
        rejections += res.pvalue <= 0.05
    assert abs(rejections / n_data - 0.05) < 4 * se_prop(0.05, n_data)


def test_replicate_summary_reports_boundary_and_second_looks():
    res = vctest.compare("Yield ~ 1 + (1 | Batch)", "Yield ~ 1", "Dyestuff", nsim=2000, seed=3)
    rs = res.replicate_summary
    # under H0 the full refit sits on the boundary exactly when T* = 0
    assert rs["full_refits_at_boundary"] == int(np.sum(res.null_distribution == 0))
    assert rs["null_refits_at_boundary"] == 0  # a linear model has no variance to hit
    assert 0 <= rs["refits_rechecked"] < 2000
    assert rs["pvalue_without_rechecked"] == pytest.approx(res.pvalue, abs=0.01)
    assert "refits at the boundary" in res.summary()


def test_ctrl_c_keeps_the_finished_replicates(monkeypatch):
    import vctest.nulls.bootstrap as boot

    real = boot.BootstrapTask.__call__
    calls = {"n": 0}

    def interrupted(self, start, stop):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, start, stop)

    monkeypatch.setattr(boot.BootstrapTask, "__call__", interrupted)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        res = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=5000, seed=8)
    n_run = res.settings["n_run"]
    assert 0 < n_run < 5000 and res.settings["interrupted"]
    monkeypatch.setattr(boot.BootstrapTask, "__call__", real)
    full = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=n_run, seed=8)
    np.testing.assert_array_equal(res.null_distribution, full.null_distribution)


def test_bootstrap_null_matches_pbkrtest():
    """Our bootstrap reference distribution against pbkrtest's PBrefdist (stored, 2000)."""
    ref = json.loads((Path(__file__).parents[1] / "validation/reference"
                      / "pbkrtest_reference.json").read_text())
    res = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=2000, seed=2026)
    assert res.statistic == pytest.approx(ref["statistic"], abs=1e-5)
    for level in (0.5, 0.9, 0.95):
        q = ref["quantiles"][round(level * 100) - 1]
        frac = float(np.mean(res.null_distribution <= q))
        se = math.sqrt(level * (1 - level) * (1 / 2000 + 1 / ref["nsim"]))
        assert abs(frac - level) < 4 * se, level
