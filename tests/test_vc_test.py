"""vc_test end to end: observed statistics, exact p-values, Greven's case, the CLI."""

import json
import math

import numpy as np
import pytest

import vctest
from vctest.cli import main

from .test_spectral import se_prop

REF = json.loads(
    (__import__("pathlib").Path(__file__).parents[1] / "validation/reference/rlrsim.json")
    .read_text()
)["cases"]
CASES = {c["id"]: c for c in REF}
NSIM = 100_000


def _check_null(res, case, nsim):
    """Mass at zero and quantiles against RLRsim's sample, within 4 MC SE of both samples."""
    ref = case["null"]
    p0 = ref["point_mass_zero"]
    assert abs(res.null_mass_at_zero - p0) < 4 * se_prop(p0, nsim, ref["nsim"])
    for key in ("q0.9", "q0.95", "q0.99"):
        level = float(key[1:])
        # the fraction of our draws below RLRsim's quantile estimates the level
        frac = float(np.mean(res.null_distribution <= ref["quantiles"][key]))
        assert abs(frac - level) < 4 * se_prop(level, nsim, ref["nsim"]), key


def test_dyestuff_rlrt():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=NSIM, seed=11)
    case = CASES["rlrt.dyestuff"]
    assert res.statistic == pytest.approx(case["statistic"], rel=1e-6)
    assert res.test == "RLRT" and res.method == "exact"
    # the exact p-value (prior-art: 0.0043975, the ANOVA F test's)
    assert abs(res.pvalue - 0.0043975) < 4 * res.pvalue_mc_se
    assert res.pvalue_mc_se == pytest.approx(math.sqrt(res.pvalue * (1 - res.pvalue) / NSIM),
                                             rel=0.05)
    _check_null(res, case, NSIM)
    assert res.asymptotic["50:50 mixture chi2(0):chi2(1)"] == pytest.approx(
        case["p_asymptotic_mix_50_50"], rel=1e-5)


def test_dyestuff_lrt():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=NSIM, seed=12, reml=False)
    case = CASES["lrt.dyestuff"]
    assert res.test == "LRT"
    assert res.statistic == pytest.approx(case["statistic"], rel=1e-6)
    assert abs(res.pvalue - case["p_value"]) < 4 * se_prop(case["p_value"], NSIM, case["nsim"])
    _check_null(res, case, NSIM)


def test_dyestuff2_statistic_zero_pvalue_one():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff2", term="(1 | Batch)",
                         nsim=10_000, seed=3)
    assert res.statistic == 0.0
    assert res.pvalue == 1.0
    assert res.fits["full"].singular
    assert any("boundary" in n for n in res.notes)


def test_sleepstudy_one_component_among_several():
    res = vctest.vc_test("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy",
                         term="(0 + Days | Subject)", nsim=NSIM, seed=13)
    case = CASES["rlrt.sleep_slope"]
    assert res.statistic == pytest.approx(case["statistic"], rel=1e-6)
    assert res.pvalue == pytest.approx(1 / (NSIM + 1))
    assert "Greven" in res.reference
    assert res.settings["null_formula"] == "Reaction ~ Days + (1 | Subject)"
    _check_null(res, case, NSIM)
    with pytest.raises(ValueError, match="only random-effects term"):
        res.confint()


def test_thread_count_does_not_change_a_number():
    kw = {"term": "(1 | Batch)", "nsim": 30_001, "seed": 99}
    one = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", threads=1, **kw)
    two = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", threads=2, **kw)
    assert np.array_equal(one.null_distribution, two.null_distribution)
    assert one.pvalue == two.pvalue
    other = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", **{**kw, "seed": 100})
    assert not np.array_equal(one.null_distribution, other.null_distribution)


def test_seed_none_records_entropy_and_repeats():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=2_000)
    again = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                           nsim=2_000, seed=np.random.SeedSequence(res.seed_entropy))
    assert np.array_equal(res.null_distribution, again.null_distribution)


def test_correlated_slope_points_to_bootstrap_and_asymptotic_works():
    formula = "Reaction ~ Days + (Days | Subject)"
    with pytest.raises(ValueError, match="bootstrap"):
        vctest.vc_test(formula, "sleepstudy", term="(0 + Days | Subject)", nsim=1000)
    res = vctest.vc_test(formula, "sleepstudy", term="(0 + Days | Subject)",
                         method="asymptotic")
    assert "chi2(1):chi2(2)" in res.reference
    # 0.5 chi2_1 + 0.5 chi2_2 by hand
    from scipy.stats import chi2

    t = res.statistic
    assert res.pvalue == pytest.approx(0.5 * chi2.sf(t, 1) + 0.5 * chi2.sf(t, 2), rel=1e-12)
    assert res.pvalue_mc_se is None and res.null_distribution is None


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"term": "(1 | Nope)"}, ValueError, "Nope"),
        ({"term": 3}, TypeError, "`term`"),
        ({"term": "(1 | Batch)", "method": "magic"}, ValueError, "`method`"),
        ({"term": "(1 | Batch)", "nsim": 0}, ValueError, "`nsim`"),
        ({"term": "(1 | Batch)", "reml": "yes"}, TypeError, "`reml`"),
        ({"term": "(1 | Batch)", "threads": 0}, ValueError, "`threads`"),
    ],
)
def test_input_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", **kwargs)


def test_result_to_dict_and_summary():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=5_000, seed=1)
    d = json.loads(json.dumps(res.to_dict()))
    for key in ("statistic", "pvalue", "pvalue_mc_se", "method", "nsim", "seed",
                "null_mass_at_zero", "null_quantiles", "versions"):
        assert key in d
    assert set(d["null_quantiles"]) == {"0.5", "0.9", "0.95", "0.99"}
    assert d["nsim"] == 5_000 and d["seed"] == 1
    assert "numba" in d["versions"]
    text = res.summary()
    assert "RLRT of (1 | Batch)" in text and "Monte Carlo SE" in text


def test_cli_test_json(capsys):
    code = main(["test", "Dyestuff", "Yield ~ 1 + (1 | Batch)", "--term", "(1 | Batch)",
                 "--nsim", "20000", "--seed", "5", "--json"])
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("statistic", "pvalue", "pvalue_mc_se", "method", "nsim", "seed",
                "null_mass_at_zero", "null_quantiles", "versions"):
        assert key in d
    assert d["method"] == "exact" and d["nsim"] == 20_000 and d["seed"] == 5
    direct = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                            nsim=20_000, seed=5)
    assert d["pvalue"] == direct.pvalue


def test_cli_errors_exit_2(capsys):
    code = main(["test", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "--term",
                 "(0 + Days | Subject)", "--nsim", "100"])
    assert code == 2
    assert "bootstrap" in capsys.readouterr().err
    assert main(["fit", "sleepstudy", "Reaction ~ Nope + (1 | Subject)"]) == 2
    assert "Nope" in capsys.readouterr().err


def test_cli_fit_json(capsys):
    assert main(["fit", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "--ml",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("loglik", "theta", "beta", "sigma", "singular", "converged", "diagnostics"):
        assert key in d
    assert d["loglik"] == pytest.approx(-875.9697, abs=1e-3)  # lme4 logLik, ML
    assert d["converged"] is True and d["singular"] is False


def test_cli_fit_text(capsys):
    assert main(["fit", "Dyestuff2", "Yield ~ 1 + (1 | Batch)"]) == 0
    out = capsys.readouterr().out
    assert "boundary (singular) fit" in out and "Converged." in out
