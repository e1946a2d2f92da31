"""Prior weights (``weights=``) and factor responses, against lme4 (issue #16).

References: validation/reference/weights_fits.json, made by
validation/r/weights_fits.R (lme4 1.1.31, RLRsim 3.1.8): weighted ``lmer`` fits of
sleepstudy, a weighted exact RLRT, a binomial proportion response with
``weights = size`` and VerbAgg's factor response ``r2`` (first level = failure).

RLRsim's ``exactRLRT`` assumes iid errors (its null model is an unweighted ``lm``),
so the exact-test oracle is the whitened model: the statistic 2(l_R(weighted lmer)
- l_R(weighted lm)) and RLRsim's ``RLRTSim`` on W^(1/2) X and W^(1/2) Z.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest.formula.design import build_design
from vctest.nulls.bootstrap import Generator, make_task

ROOT = Path(__file__).parents[1]
REF = json.loads((ROOT / "validation/reference/weights_fits.json").read_text())


def _sleep() -> pd.DataFrame:
    d = vctest.datasets.load("sleepstudy")
    d["w"] = 1.0 + d["Days"] % 3
    d["w2"] = np.exp(np.linspace(-1.0, 1.0, len(d)))
    return d


@pytest.mark.parametrize("case", REF["lmms"], ids=lambda c: c["id"])
def test_weighted_lmm_equals_lme4(case):
    fit = vctest.fit(case["formula"], _sleep(), weights=case["weights"], reml=case["REML"])
    assert fit.objective == pytest.approx(case["criterion"], rel=1e-8)
    assert fit.objective <= case["criterion"] + 1e-7  # never worse than lme4's optimum
    np.testing.assert_allclose(fit.theta, np.atleast_1d(case["theta"]), atol=1e-4)
    np.testing.assert_allclose(fit.beta, case["fixef"], rtol=1e-6)
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-5)


def test_weights_as_values_equal_weights_as_a_column():
    d = _sleep()
    by_name = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights="w")
    by_values = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights=d["w"].to_numpy())
    assert by_values.objective == by_name.objective
    unweighted = vctest.fit("Reaction ~ Days + (Days | Subject)", d)
    assert abs(unweighted.objective - by_name.objective) > 1.0  # weights change the model


def test_scaling_the_weights_changes_only_sigma():
    # w -> c w with sigma^2 -> c sigma^2 is the same model (the same likelihood, as lme4's
    # criterion includes -sum(log w)): beta unchanged, theta = sd_b / sigma over sqrt(c)
    d = _sleep()
    a = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights="w")
    d["w10"] = 10.0 * d["w"]
    b = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights="w10")
    np.testing.assert_allclose(b.theta * math.sqrt(10.0), a.theta, atol=1e-5)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-7)
    assert b.sigma == pytest.approx(a.sigma * math.sqrt(10.0), rel=1e-6)
    assert b.objective == pytest.approx(a.objective, abs=1e-6)


def test_rows_with_missing_weights_are_dropped_with_a_warning():
    d = _sleep()
    d.loc[[3, 50], "w"] = np.nan
    with pytest.warns(UserWarning, match=r"dropped 2 of 180 rows .*'w' \(2\)"):
        fit = vctest.fit("Reaction ~ Days + (1 | Subject)", d, weights="w")
    assert fit.model.n == 178


@pytest.mark.parametrize("bad, message", [
    (0.0, "`weights` column 'w' has 1 zero, negative or infinite"),
    (-1.0, "`weights` column 'w' has 1 zero, negative or infinite"),
    (np.inf, "column 'w' has infinite values"),
])
def test_bad_weights_are_refused_naming_the_column(bad, message):
    d = _sleep()
    d.loc[7, "w"] = bad
    with pytest.raises(ValueError, match=message):
        vctest.fit("Reaction ~ Days + (1 | Subject)", d, weights="w")


@pytest.mark.parametrize("weights, error, message", [
    ("nope", ValueError, "nope"),
    (np.ones(5), ValueError, "one value per row of the data \\(180\\)"),
    ("Subject", TypeError, "`weights` column 'Subject' must be numeric"),
])
def test_weights_argument_errors(weights, error, message):
    with pytest.raises(error, match=message):
        vctest.fit("Reaction ~ Days + (1 | Subject)", _sleep(), weights=weights)


def test_weighted_exact_rlrt_is_the_whitened_models():
    ref = REF["exact"]
    res = vctest.vc_test(ref["formula"], _sleep(), term="(1 | Subject)", weights="w",
                         nsim=100_000, seed=1)
    assert res.statistic == pytest.approx(ref["statistic"], rel=1e-7)
    assert abs(res.statistic - ref["rlrsim_naive"]["statistic"]) > 1.0  # RLRsim ignores w
    null = np.asarray(res.null_distribution)
    n_r, n_v = ref["nsim"], null.size
    # the point mass at zero and the CDF at RLRTSim's quantiles, within 4 Monte Carlo SE
    pairs = [(ref["p_zero"], float(np.mean(null < 1e-8)))]
    pairs += [(p, float(np.mean(null <= q))) for p, q in zip(ref["probs"], ref["quantiles"],
                                                            strict=True) if q > 0]
    for p, f in pairs:
        assert abs(f - p) <= 4 * math.sqrt(p * (1 - p) * (1 / n_r + 1 / n_v)), (p, f)


def test_bootstrap_simulates_with_the_weights():
    # the Gaussian null draws e_i ~ N(0, sigma^2 / w_i): variances scale as 1 / w
    d = _sleep()
    d["w3"] = np.where(d["Days"] % 2 == 0, 0.25, 4.0)
    full = vctest.fit("Reaction ~ Days + (1 | Subject)", d, weights="w3", reml=False)
    null = Generator.linear_model(build_design("Reaction ~ Days", d, weights="w3"), reml=False)
    task = make_task(null, full, np.array([-2]), seed_seq=np.random.SeedSequence(5),
                     threads=None)
    ys = np.array([task.simulate(i) for i in range(2000)])
    resid = ys - ys.mean(axis=0)
    light = resid[:, d["w3"].to_numpy() == 0.25].var()
    heavy = resid[:, d["w3"].to_numpy() == 4.0].var()
    # ratio 16 expected; each variance pools ~90 x 2000 draws (SE of the log ratio ~0.005)
    assert light / heavy == pytest.approx(16.0, rel=0.05)
    assert heavy == pytest.approx(null.sigma**2 / 4.0, rel=0.05)


def test_binomial_proportion_with_weights_equals_glmer():
    cbpp = vctest.datasets.load("cbpp")
    cbpp["prop"] = cbpp["incidence"] / cbpp["size"]
    for case in REF["glmms"][:2]:
        kw = {"weights": case["weights"]} if case["weights"] else {}
        fit = vctest.fit(case["formula"], cbpp, family="binomial", **kw)
        assert -2 * fit.loglik == pytest.approx(case["m2loglik"], rel=1e-8)
        np.testing.assert_allclose(fit.theta, case["theta"], atol=1e-4)


def _verbagg() -> tuple[pd.DataFrame, dict]:
    case = REF["glmms"][2]
    va = pd.read_csv(ROOT / "validation/reference/verbagg.csv.gz")
    for col, levels in case["levels"].items():
        va[col] = pd.Categorical(va[col], categories=levels)
    return va, case


@pytest.mark.parametrize("as_type", ["categorical", "text", "bool"])
def test_factor_response_equals_glmer(as_type):
    va, case = _verbagg()
    if as_type == "text":
        va["r2"] = va["r2"].astype(str)  # two values; sorted, "N" first = failure
    elif as_type == "bool":
        va["r2"] = va["r2"] == "Y"
    fit = vctest.fit(case["formula"], va, family="binomial")
    assert -2 * fit.loglik == pytest.approx(case["m2loglik"], rel=1e-8)
    np.testing.assert_allclose(fit.theta, case["theta"], atol=1e-4)
    np.testing.assert_allclose(fit.beta, case["fixef"], atol=1e-4)


@pytest.mark.parametrize("frame, family, message", [
    (pd.DataFrame({"y": ["a", "b", "c"] * 10, "g": list("uvwxy") * 6}), "binomial",
     "text with 3 distinct values"),
    (pd.DataFrame({"y": ["a", 1] * 15, "g": list("uvwxy") * 6}), "binomial",
     "mixes numbers and text"),
    (pd.DataFrame({"y": pd.Categorical(["N", "Y"] * 15), "g": list("uvwxy") * 6}),
     "gaussian", "is a factor .* needs a numeric response"),
    (pd.DataFrame({"y": pd.Categorical(["N", "Y"] * 15), "g": list("uvwxy") * 6}),
     "poisson", "is a factor .* needs counts"),
])
def test_responses_that_cannot_be_modelled_are_refused(frame, family, message):
    with pytest.raises(ValueError, match=message):
        vctest.fit("y ~ 1 + (1 | g)", frame, family=family)


def test_poisson_weights_are_refused_with_the_alternative():
    d = vctest.datasets.load("grouseticks")
    d["w"] = 2.0
    with pytest.raises(ValueError, match=r"not supported for a Poisson model.*offset"):
        vctest.fit("TICKS ~ YEAR + (1 | BROOD)", d, family="poisson", weights="w")


def test_compare_refuses_models_with_different_weights():
    d = _sleep()
    full = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights="w", reml=False)
    null = vctest.fit("Reaction ~ Days + (1 | Subject)", d, reml=False)
    with pytest.raises(ValueError, match="different prior weights"):
        vctest.compare(full, null, nsim=10, seed=1)


def test_cli_weights(tmp_path, capsys):
    from vctest.cli import main

    path = tmp_path / "sleep.csv"
    _sleep().to_csv(path, index=False)
    assert main(["fit", str(path), "Reaction ~ Days + (Days | Subject)", "--weights", "w",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    case = next(c for c in REF["lmms"] if c["id"] == "sleep_corr.w.reml")
    assert out["objective"] == pytest.approx(case["criterion"], rel=1e-8)


def test_check_and_power_keep_the_weights():
    d = _sleep()
    fit = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights="w")
    report = vctest.check(fit)
    # every optimiser and a rescaled covariate reach the same (weighted) likelihood
    assert report.runs and all(r.loglik == pytest.approx(fit.loglik, rel=1e-6)
                               for r in report.runs)
    res = vctest.power("Reaction ~ Days + (1 | Subject)", d, term="(1 | Subject)",
                       effect_sizes=[0.0], nsim=10, methods=("exact",), nsim_exact=500,
                       seed=3, weights="w")
    assert res.settings["formula"] == "Reaction ~ Days + (1 | Subject)"


def test_the_weights_page_runs_and_shows_its_numbers():
    text = (ROOT / "docs/weights.rst").read_text()
    blocks = []
    for chunk in text.split("::\n\n")[1:]:
        lines = []
        for line in chunk.splitlines():
            if line and not line.startswith("   "):
                break
            lines.append(line[3:])
        blocks.append("\n".join(lines))
    ns: dict = {}
    for block in blocks:
        exec(block, ns)
    assert round(ns["m"].objective, 4) == 1733.5435
    np.testing.assert_allclose(np.round(ns["m"].theta, 4), [0.8277, -0.0205, 0.2050])
    assert round(ns["m"].sigma, 3) == 31.806
    assert round(ns["res"].statistic, 3) == 118.372
    assert round(-2 * ns["g"].loglik, 4) == 184.0526


def test_fit_methods_of_a_weighted_lmm():
    # conditional modes of the weighted model solve (L'Z'WZL + I) u = L'Z'W r: with every
    # weight c and sigma^2 c, the same model as unweighted, the modes are unchanged
    d = _sleep()
    d["c"] = 4.0
    plain = vctest.fit("Reaction ~ Days + (Days | Subject)", d)
    weighted = vctest.fit("Reaction ~ Days + (Days | Subject)", d, weights="c")
    for a, b in zip(plain.ranef().values(), weighted.ranef().values(), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weighted.fitted(), plain.fitted(), rtol=1e-7)
    # simulated residual variance scales as 1 / w
    d["w3"] = np.where(d["Days"] % 2 == 0, 0.25, 4.0)
    fit = vctest.fit("Reaction ~ Days + (1 | Subject)", d, weights="w3")
    ys = fit.simulate(nsim=2000, seed=4)
    ys = np.asarray(ys)
    ys = ys if ys.shape[0] == len(d) else ys.T
    resid = ys - ys.mean(axis=1, keepdims=True)
    light = resid[d["w3"].to_numpy() == 0.25].var()
    heavy = resid[d["w3"].to_numpy() == 4.0].var()
    # the random intercept adds its variance to both; the residual parts differ 16-fold
    tau2 = (fit.sigma * fit.theta[0]) ** 2
    assert (light - tau2) / (heavy - tau2) == pytest.approx(16.0, rel=0.1)
