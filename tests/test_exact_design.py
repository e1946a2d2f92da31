"""Tests of the design-matrix entry points ``vctest.exact_rlrt`` / ``vctest.exact_lrt``.

Oracles:

* lme4 and RLRsim numbers in validation/reference/exact_design.json (made by
  validation/r/exact_design.R): observed statistics and criteria from lme4's
  own deviance function (1e-6 relative), RLRsim's exactRLRT/exactLRT on nlme
  fits, and RLRTSim/LRTSim null samples (P(T = 0) and quantiles within 4 Monte
  Carlo SE);
* where RLRsim's grid search (stop at the first decrease of the profile,
  lambda in {0} U exp(seq(-10, 8, length = 199)) on the normalised scale) is
  not the global maximum -- the truncated-linear spline -- its rule is
  reproduced below on independent chi-square draws and matched to RLRsim,
  while vctest's global maximum is checked against prior-art E4;
* vctest's own formula path (``vc_test``) on the same data;
* closed forms: the restricted fixed effects add n log(1 + chi2_q/chi2_(n-p)),
  i.e. n log(1 + q F(q, n-p)/(n-p)), to the q = 0 statistic draw by draw.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import f as fdist
from scipy.stats import kstest

import vctest
from vctest.model.one_component import OneComponentModel
from vctest.nulls.exact import linear_model_objective
from vctest.nulls.spectral import group_eigenvalues, lrt_null

REF = json.loads((Path(__file__).parents[1] / "validation" / "reference"
                  / "exact_design.json").read_text())
CASES = {c["id"]: c for c in REF["cases"]}
NSIM = 200_000


def se_prop(p: float, *ns: int) -> float:
    return math.sqrt(p * (1 - p) * sum(1.0 / n for n in ns))


def case_arrays(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(case["observed"]["y"], float), np.asarray(case["X"], float),
            np.asarray(case["Z"], float), np.asarray(case["sqrt_sigma"], float))


def spline_design(n: int = 100, k: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prior-art E4: x = (i - 0.5)/n, k knots at type-7 quantiles, truncated-linear basis."""
    x = (np.arange(1, n + 1) - 0.5) / n
    knots = np.quantile(x, np.linspace(0, 1, k + 2)[1:-1])
    return x, np.column_stack([np.ones(n), x]), np.maximum(x[:, None] - knots, 0)


# ----------------------------------------------------------------------------- lme4 / RLRsim


@pytest.mark.parametrize("cid", list(CASES))
def test_observed_statistics_match_lme4(cid):
    case = CASES[cid]
    y, X, Z, R = case_arrays(case)
    ref = case["observed"]["lme4"]
    q_cols = case["observed"]["q_cols"]
    rl = vctest.exact_rlrt(y, X, Z, sqrt_sigma=R, nsim=200, seed=1)
    lr = vctest.exact_lrt(y, X, Z, sqrt_sigma=R, nsim=200, seed=1)
    lq = vctest.exact_lrt(y, X, Z, q=q_cols, sqrt_sigma=R, nsim=200, seed=1)
    assert rl.fits["full"].objective == pytest.approx(ref["reml_criterion"], rel=1e-9)
    assert lr.fits["full"].objective == pytest.approx(ref["ml_deviance"], rel=1e-9)
    assert rl.statistic == pytest.approx(ref["rlrt"], rel=1e-6)
    assert lq.statistic == pytest.approx(ref["lrt_q"], rel=1e-6)
    assert lr.statistic == pytest.approx(ref["lrt"], rel=1e-6, abs=1e-8)
    # the variance ratio (theta^2 in lme4) sits at a flat optimum: 1e-5
    assert rl.fits["full"].lam == pytest.approx(ref["reml_theta"] ** 2, rel=1e-5, abs=1e-12)
    assert lr.fits["full"].lam == pytest.approx(ref["ml_theta"] ** 2, rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("cid", list(CASES))
def test_observed_statistics_match_rlrsim_exact_functions(cid):
    """exactRLRT / exactLRT on nlme fits agree, except where nlme's ML fit stalls."""
    case = CASES[cid]
    y, X, Z, R = case_arrays(case)
    ref = case["observed"]["rlrsim"]
    q_cols = case["observed"]["q_cols"]
    assert vctest.exact_rlrt(y, X, Z, sqrt_sigma=R, nsim=200, seed=1).statistic == \
        pytest.approx(ref["rlrt"], rel=1e-6)
    lq = vctest.exact_lrt(y, X, Z, q=q_cols, sqrt_sigma=R, nsim=200, seed=1).statistic
    if cid == "spline_tpl":
        # the ML optimum is lambda = 0 (lme4 agrees); nlme's ML fit stops at a worse point,
        # so exactLRT reports a smaller statistic (and 0 instead of a tiny one for q = 0)
        assert lq == pytest.approx(case["observed"]["lme4"]["lrt_q"], rel=1e-6)
        assert ref["lrt_q"] < lq - 1.0
    else:
        assert lq == pytest.approx(ref["lrt_q"], rel=1e-6)
        assert vctest.exact_lrt(y, X, Z, sqrt_sigma=R, nsim=200, seed=1).statistic == \
            pytest.approx(ref["lrt"], rel=1e-6)


def _null_sample(case: dict, which: str, seed: int) -> np.ndarray:
    y, X, Z, R = case_arrays(case)
    if which == "RLRTSim":
        res = vctest.exact_rlrt(y, X, Z, sqrt_sigma=R, nsim=NSIM, seed=seed)
    else:
        res = vctest.exact_lrt(y, X, Z, q=int(which[-1]), sqrt_sigma=R, nsim=NSIM, seed=seed)
    return res.null_distribution


def _assert_matches(sample: np.ndarray, ref: dict) -> None:
    n_ref = ref["nsim"]
    p0 = ref["p0"]
    assert abs(np.mean(sample == 0) - p0) <= 4 * se_prop(p0, sample.size, n_ref) + 1e-12
    for lv, qv in zip(ref["probs"], ref["quantiles"], strict=True):
        if qv > 0:  # a quantile inside the point mass says nothing more than p0
            assert abs(np.mean(sample <= qv) - lv) < 4 * se_prop(lv, sample.size, n_ref)


@pytest.mark.parametrize(("cid", "which"), [("groups_ar1", "RLRTSim"), ("groups_ar1", "LRTSim_q1"),
                                            ("sleepstudy_slope", "RLRTSim")])
def test_null_matches_rlrsim(cid, which):
    case = CASES[cid]
    _assert_matches(_null_sample(case, which, seed=7100 + len(which)), case["null"][which])


def rlrsim_rule(mu: np.ndarray, xi: np.ndarray | None, n: int, p: int, q: int, nsim: int,
                seed: int) -> np.ndarray:
    """RLRsim's search, from its documented algorithm (prior-art notes, section b1).

    Eigenvalues normalised by their maximum; lambda on {0} U exp(seq(-10, 8, length = 199));
    the running maximum starts at 0 and the walk stops at the first decrease.  ML: penalty
    with xi (normalised by the same maximum) and n instead of n - p, plus the q term.
    """
    vals, mult = group_eigenvalues(mu)
    k = int(mult.sum())
    scale = vals.max() if xi is None else max(vals.max(), xi.max())
    v = vals / scale
    pen = np.repeat(v, mult) if xi is None else xi[xi > 1e-10 * xi.max()] / scale
    n_eff = n - p if xi is None else n
    grid = np.r_[0.0, np.exp(np.linspace(-10.0, 8.0, 199))]
    rng = np.random.default_rng(seed)
    out = np.empty(nsim)
    pen_term = np.log1p(grid[:, None] * pen).sum(axis=1)
    w = 1.0 / (1.0 + grid[:, None] * v)  # grid x groups
    for s0 in range(0, nsim, 20_000):
        m = min(20_000, nsim - s0)
        a = rng.chisquare(mult, size=(m, mult.size))
        r = rng.chisquare(n - p - k, size=m) if n - p - k > 0 else np.zeros(m)
        t = a.sum(axis=1) + r
        d = a @ w.T + r[:, None]
        f = n_eff * np.log(t[:, None] / d) - pen_term
        f[:, 0] = 0.0  # exactly (not a rounding of t / t)
        dec = np.diff(f, axis=1) < 0
        first = np.where(dec.any(axis=1), dec.argmax(axis=1) + 1, grid.size)
        upto = np.arange(grid.size)[None, :] < first[:, None]
        stat = np.maximum(np.where(upto, f, -np.inf).max(axis=1), 0.0)
        if q:
            stat += n_eff * np.log1p(rng.chisquare(q, size=m) / t)
        out[s0:s0 + m] = stat
    return out


@pytest.mark.parametrize("which", ["RLRTSim", "LRTSim_q0", "LRTSim_q1"])
def test_spline_null_is_rlrsim_rule_not_rlrsim_defect(which):
    """On the spline basis RLRsim stops at the first decrease of a bimodal profile.

    Its rule, re-run here on the design's eigenvalues, reproduces RLRsim's
    numbers (so the fixture and the design are right), and vctest's global
    maximum differs from it: P(RLRT = 0) is 0.665 (prior-art E4), not 0.675.
    """
    case = CASES["spline_tpl"]
    y, X, Z, _ = case_arrays(case)
    m = OneComponentModel.from_arrays(y, X, Z)
    q = 0 if which == "RLRTSim" else int(which[-1])
    rule = rlrsim_rule(m.mu, None if which == "RLRTSim" else m.xi, m.n, m.p, q, NSIM,
                       seed=7200 + q)
    ref = case["null"][which]
    _assert_matches(rule, ref)
    if which == "RLRTSim":
        ours = _null_sample(case, which, seed=7300)
        assert np.mean(ours == 0) < ref["p0"] - 4 * se_prop(ref["p0"], NSIM, ref["nsim"])


# ----------------------------------------------------------------------------- prior-art E4


def test_e4_anchors_through_the_design_entry():
    """P(RLRT = 0) = 0.665, q95 = 1.794; P(LRT = 0) = 0.994 (200k draws, 3 decimals)."""
    x, X, Z = spline_design()
    y = np.random.default_rng(0).normal(size=x.size)
    rl = vctest.exact_rlrt(y, X, Z, nsim=NSIM, seed=4401).null_distribution
    lr = vctest.exact_lrt(y, X, Z, nsim=NSIM, seed=4402).null_distribution
    ref_n, rounding = 200_000, 5e-4
    assert abs(np.mean(rl == 0) - 0.665) < 4 * se_prop(0.665, NSIM, ref_n) + rounding
    assert abs(np.mean(lr == 0) - 0.994) < 4 * se_prop(0.994, NSIM, ref_n) + rounding
    # q95 printed to 3 decimals: the CDF moves by at most density (< 0.1) * 5e-4
    assert abs(np.mean(rl <= 1.794) - 0.95) < 4 * se_prop(0.95, NSIM, ref_n) + 0.1 * rounding


# ------------------------------------------------------------------ restricted fixed effects


def test_restricted_term_is_n_log_1_plus_scaled_f():
    """Same seed: LRT(q) - LRT(0) = n log(1 + chi2_q / chi2_(n-p)) draw by draw -> F law."""
    _, X, Z = spline_design(60, 8)
    m = OneComponentModel.from_arrays(np.arange(60.0) ** 1.5, X, Z)
    n, p = m.n, m.p
    for q in (1, 2):
        d = (lrt_null(m.mu, m.xi, n, p, q=q, nsim=20_000, seed=3)
             - lrt_null(m.mu, m.xi, n, p, q=0, nsim=20_000, seed=3))
        assert np.all(d > 0)
        fstat = np.expm1(d / n) * (n - p) / q
        assert kstest(fstat, fdist(q, n - p).cdf).pvalue > 1e-3


def test_lrt_with_restricted_columns_has_its_exact_null_under_h0():
    """Data under H0 "the mean is constant": observed LRT(q = 1) follows the simulated null."""
    _, X, Z = spline_design(40, 6)
    rng = np.random.default_rng(11)
    null = vctest.exact_lrt(rng.normal(size=40), X, Z, q=1, nsim=100_000,
                            seed=5).null_distribution
    m = 1500

    def observed(y):  # what exact_lrt computes, without assembling a result
        full = OneComponentModel.from_arrays(y, X, Z).fit(reml=False).objective
        return max(linear_model_objective(X[:, :1], y, reml=False) - full, 0.0)

    first = 3.0 + rng.normal(size=40)
    assert observed(first) == pytest.approx(
        vctest.exact_lrt(first, X, Z, q=1, nsim=1, seed=1).statistic, rel=1e-12, abs=1e-12)
    obs = np.array([observed(3.0 + rng.normal(size=40)) for _ in range(m)])
    for lv in (0.5, 0.9, 0.95):
        qv = np.quantile(null, lv)
        assert abs(np.mean(obs <= qv) - lv) < 4 * se_prop(lv, m, null.size)


def test_q_forms_select_the_same_columns():
    x, X, Z = spline_design(50, 5)
    y = np.cos(3 * x) + np.random.default_rng(4).normal(0, 0.2, 50)
    frame = pd.DataFrame(X, columns=["(Intercept)", "x"])
    by_count = vctest.exact_lrt(y, X, Z, q=1, nsim=500, seed=2)
    by_name = vctest.exact_lrt(y, frame, Z, q=["x"], nsim=500, seed=2)
    by_index = vctest.exact_lrt(y, X, Z, q=[-1], nsim=500, seed=2)
    assert by_count.statistic == by_name.statistic == by_index.statistic
    assert np.array_equal(by_count.null_distribution, by_name.null_distribution)
    assert by_name.settings["restricted"] == ["x"]
    assert by_name.fits["null"]["columns"] == ["(Intercept)"]
    both = vctest.exact_lrt(y, X, Z, q=2, nsim=500, seed=2)
    assert both.fits["null"]["columns"] == [] and both.statistic > by_count.statistic


# ----------------------------------------------------------------------------- consistency


def test_equals_vc_test_on_sleepstudy():
    case = CASES["sleepstudy_slope"]
    y, X, Z, _ = case_arrays(case)
    frame = vctest.datasets.load("sleepstudy")
    res = vctest.vc_test("Reaction ~ Days + (0 + Days | Subject)", frame,
                         term="(0 + Days | Subject)", nsim=20_000, seed=9)
    mine = vctest.exact_rlrt(y, X, Z, nsim=20_000, seed=9)
    assert mine.statistic == pytest.approx(res.statistic, rel=1e-9)
    assert abs(mine.null_mass_at_zero - res.null_mass_at_zero) < 4 * se_prop(0.54, 20_000, 20_000)


def test_sqrt_sigma_is_z_times_its_transpose():
    y, X, Z, R = case_arrays(CASES["groups_ar1"])
    a = vctest.exact_rlrt(y, X, Z, sqrt_sigma=R, nsim=2000, seed=3)
    b = vctest.exact_rlrt(y, X, Z @ R.T, nsim=2000, seed=3)
    assert a.statistic == pytest.approx(b.statistic, rel=1e-12)
    assert np.array_equal(a.null_distribution, b.null_distribution)
    assert a.settings["sqrt_sigma"] and not b.settings["sqrt_sigma"]


def test_result_is_complete_and_serialises(tmp_path):
    y, X, Z, _ = case_arrays(CASES["spline_tpl"])
    res = vctest.exact_rlrt(y, X, Z, nsim=5000, seed=12)
    assert res.method == "exact" and res.test == "RLRT" and res.seed == 12
    assert 0 < res.pvalue < 1 and res.pvalue_mc_se > 0
    text = res.summary()
    assert "exact null" in text and "statistic = 3.5956" in text
    d = res.to_dict()
    assert d["settings"]["K"] == 20 and d["settings"]["input"] == "design matrices"
    assert "naive chi2(1)" in d["asymptotic"] and "50:50 mixture chi2(0):chi2(1)" in d["asymptotic"]
    back = vctest.load_result(res.to_json(tmp_path / "r.json"))
    assert back.pvalue == res.pvalue and back.fits["full"]["k_eff"] == 20
    ci = res.confint(nsim=2000)
    assert ci.lower < res.fits["full"].lam < ci.upper
    lq = vctest.exact_lrt(y, X, Z, q=1, nsim=500, seed=1)
    assert "chi2(1):chi2(2)" in " ".join(lq.asymptotic) and "restricted" in lq.reference
    with pytest.raises(ValueError, match="confint"):
        lq.confint()


def test_boundary_fit_is_reported():
    x, X, Z = spline_design(50, 5)
    y = 1 + 2 * x + np.tile([0.01, -0.01], 25)  # residuals that no smooth basis can follow
    res = vctest.exact_rlrt(y, X, Z, nsim=200, seed=1)
    assert res.statistic == 0.0 and res.pvalue == 1.0 and res.fits["full"].singular
    assert any("boundary" in note for note in res.notes)


# ----------------------------------------------------------------------------- validation


def _ok():
    x, X, Z = spline_design(30, 4)
    return np.sin(5 * x), X, Z


@pytest.mark.parametrize(("change", "exc", "match"), [
    ({"y": "abc"}, TypeError, "`y` must be a numeric array"),
    ({"y": np.ones((30, 2))}, ValueError, "`y` must be a vector"),
    ({"X": np.ones((29, 2))}, ValueError, "`X` has 29 rows but `y` has 30"),
    ({"Z": np.ones((30, 0))}, ValueError, "`Z` has no columns"),
    ({"Z": np.full((30, 2), np.inf)}, ValueError, "`Z` contains infinite"),
    ({"X": [["a", "b"]] * 30}, TypeError, "`X` must be a numeric array"),
    ({"X": np.column_stack([np.ones(30), np.ones(30)])}, ValueError,
     "`X` is rank deficient .*x1"),
    ({"Z": np.column_stack([np.ones(30), np.arange(30.0)])}, ValueError,
     "`Z` lies in the column space of `X`"),
    ({"Z": np.eye(30)[:, :28]}, ValueError, "n - p - K"),
    ({"sqrt_sigma": np.eye(3)}, ValueError, "`sqrt_sigma` must be a 4 x 4"),
    ({"nsim": 0}, ValueError, "`nsim` must be a positive integer"),
    ({"threads": 0}, ValueError, "threads"),
    ({"keep_null": "yes"}, TypeError, "keep_null"),
])
def test_rlrt_validation(change, exc, match):
    y, X, Z = _ok()
    kwargs = {"y": y, "X": X, "Z": Z, "nsim": 100, "seed": 1, **change}
    with pytest.raises(exc, match=match):
        vctest.exact_rlrt(kwargs.pop("y"), kwargs.pop("X"), kwargs.pop("Z"), **kwargs)


@pytest.mark.parametrize(("q", "exc", "match"), [
    (3, ValueError, "`q` must be between 0 and the 2 columns"),
    ([2], ValueError, "X has 2 columns"),
    (["z"], ValueError, "'z', which is not a column of X"),
    ([1, 1], ValueError, "twice"),
    ("x1", TypeError, "`q` must be an integer"),
    (True, TypeError, "bool"),
    ([1.5], TypeError, "positions"),
])
def test_q_validation(q, exc, match):
    y, X, Z = _ok()
    with pytest.raises(exc, match=match):
        vctest.exact_lrt(y, X, Z, q=q, nsim=100)


def test_restricted_columns_with_reml_are_refused():
    from vctest.api._pipeline import Draws
    from vctest.api.exact_design import design_test

    y, X, Z = _ok()
    with pytest.raises(ValueError, match="need the ML likelihood-ratio test"):
        design_test(y, X, Z, reml=True, restricted=[1], draws=Draws(nsim=10))
    with pytest.raises(TypeError, match="`y` must be a numeric array; got NoneType"):
        vctest.exact_rlrt(None, X, Z, nsim=10)


def test_y_in_column_space_of_x_is_refused():
    _, X, Z = _ok()
    with pytest.raises(ValueError, match="fitted exactly by `X`"):
        vctest.exact_rlrt(1 + 2 * X[:, 1], X, Z, nsim=100)


def test_missing_rows_are_dropped_with_a_warning():
    y, X, Z = _ok()
    y2, Z2 = y.copy(), Z.copy()
    y2[3] = np.nan
    Z2[7, 1] = np.nan
    with pytest.warns(UserWarning, match="dropped 2 of 30 rows") as record:
        res = vctest.exact_rlrt(y2, X, Z2, nsim=300, seed=1)
    assert record[0].filename == __file__  # points at the caller's line
    keep = np.setdiff1d(np.arange(30), [3, 7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = vctest.exact_rlrt(y[keep], X[keep], Z[keep], nsim=300, seed=1)
    assert res.statistic == ref.statistic and res.settings["n_dropped"] == 2


def test_docs_page_examples_run():
    import doctest

    page = Path(__file__).parents[1] / "docs" / "exact_design.rst"
    result = doctest.testfile(str(page), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0


def test_pandas_input_no_fixed_effects_and_a_sketched_null():
    y, X, Z = _ok()
    frame_z = pd.DataFrame(Z, columns=[f"k{j}" for j in range(Z.shape[1])])
    res = vctest.exact_rlrt(pd.Series(y), X[:, 1], frame_z, nsim=3000, seed=5, keep_null=False)
    full = OneComponentModel.from_arrays(y, X[:, 1:], Z).fit(reml=True).objective
    assert res.statistic == pytest.approx(
        max(linear_model_objective(X[:, 1:], y, reml=True) - full, 0.0), rel=1e-12)
    assert res.null_distribution is None and res.null_summary["n"] == 3000
    assert "q0.95" in res.summary() or "0.95" in str(res.to_dict()["null_quantiles"])
    none = vctest.exact_lrt(y, np.empty((30, 0)), Z, nsim=500, seed=5)
    assert none.settings["p"] == 0 and none.statistic > 0


def test_null_of_exact_lrt_is_lrt_null_with_q_draw_by_draw():
    """SpectralTask(q=...) in chunks == lrt_null(..., q=...) in one call, same seed."""
    y, X, Z, R = case_arrays(CASES["groups_ar1"])
    res = vctest.exact_lrt(y, X, Z, q=1, sqrt_sigma=R, nsim=9000, seed=77)
    m = OneComponentModel.from_arrays(y, X, Z @ R.T)
    direct = lrt_null(m.mu, m.xi, m.n, m.p, q=1, nsim=9000, seed=77)
    np.testing.assert_array_equal(res.null_distribution, direct)
    assert res.settings["q"] == 1 and res.settings["k_eff"] == 11  # 1 lies in span(Z)


def test_stored_size_study_is_within_monte_carlo_error():
    """validation/size/size_exact_design.json: exact tests at their attainable size (4 SE);
    the naive chi-square and the 50:50 mixture below it (conservative)."""
    stored = json.loads((Path(__file__).parents[1] / "validation" / "size"
                         / "size_exact_design.json").read_text())
    assert set(stored["studies"]) == {"50", "200"} and stored["datasets"] >= 2000
    for study in stored["studies"].values():
        for name, cols in study["tests"].items():
            target = cols["attainable"]["size"]
            exact = cols["exact"]
            se = math.sqrt(target * (1 - target) / exact["n"] + cols["attainable"]["mc_se"] ** 2)
            assert abs(exact["rejection_rate"] - target) < 4 * se, name
            if name != "LRT q=0 (H0 linear)":
                assert target == stored["alpha"]
            for key in [k for k in cols if k.startswith(("naive", "50:50"))]:
                assert cols[key]["rejection_rate"] < exact["rejection_rate"], (name, key)
