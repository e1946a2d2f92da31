"""The convergence doctor: verdicts on clean, boundary, unidentified and badly scaled fits."""

import json

import numpy as np
import pytest

import vctest
from vctest.cli import main
from vctest.model.doctor import scaling_advice


def test_sleepstudy_is_clean():
    report = vctest.check(vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy"))
    assert report.verdict == "converged"
    assert all(g.ok for g in report.gradient)
    assert report.loglik_spread < 1e-4
    assert len(report.runs) == 6
    assert {r.label for r in report.runs} >= {"L-BFGS-B", "Powell", "Nelder-Mead"}
    assert not report.scaling and report.notes == ()


def test_dyestuff2_is_a_boundary_without_gradient_warning():
    report = vctest.check(vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff2"))
    assert report.verdict == "boundary"
    assert bool(report.parameters["at_bound"].iloc[0])
    assert not any("failed to converge" in n for n in report.notes)
    assert "vc_test" in report.explanation


def test_slope_of_a_two_valued_group_constant_is_unidentified():
    # (1 + c | Subject) with c constant within subjects and taking two values:
    # three covariance parameters, two identifiable variances
    data = vctest.datasets.load("sleepstudy")
    data["c"] = (data["Subject"].cat.codes % 2).astype(float)
    fit = vctest.fit("Reaction ~ Days + (1 + c | Subject)", data)
    report = vctest.check(fit)
    assert report.verdict == "unidentified"
    assert report.verdict not in ("converged", "boundary")


def test_badly_scaled_predictor_is_named_and_rescaled_refit_is_clean():
    data = vctest.datasets.load("sleepstudy")
    data["minutes"] = data["Days"] * 24 * 60 + 10_000
    fit = vctest.fit("Reaction ~ minutes + (minutes | Subject)", data, reml=False)
    report = vctest.check(fit)
    assert [a.column for a in report.scaling] == ["minutes"]
    assert report.rescaled is not None and report.rescaled_clean
    # ML log-likelihood is invariant to an affine change of a predictor: the fit on
    # minutes must reach lme4's ML fit on Days (vctest searches theta in column units,
    # so the units do not derail it)
    lme4 = -875.969672244495
    assert fit.loglik == pytest.approx(lme4, abs=1e-6)
    assert report.rescaled.loglik == pytest.approx(lme4, abs=1e-6)
    assert report.verdict == "converged" and fit.converged


def test_gradient_measures_side_by_side():
    report = vctest.check(vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy"))
    names = [g.name for g in report.gradient]
    assert names == ["raw max|gradient|", "lme4's scaled max|grad|",
                     "Newton step max|H^-1 g| (relgrad)"]
    d = report.fit.diagnostics
    assert report.gradient[1].value == d.scaled_gradient
    assert report.gradient[2].value == pytest.approx(np.abs(d.newton_step).max())


def test_scaling_advice_rules():
    import pandas as pd

    frame = pd.DataFrame({"y": [1.0, 2, 3, 4], "h": [460.0, 470, 480, 490],
                          "ok": [-1.0, 0, 1, 2], "big": [1e4, 2e4, 3e4, 5e4]})
    cols = {a.column: a.reason for a in scaling_advice(frame, "y")}
    assert set(cols) == {"h", "big"}
    assert "uncentred" in cols["h"]


def test_check_type_error():
    with pytest.raises(TypeError, match="`fit`"):
        vctest.check("Reaction ~ Days + (Days | Subject)")


def test_cli_check_json(capsys):
    assert main(["check", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "boundary"
    assert {"gradient", "parameters", "runs", "scaling", "explanation"} <= set(d)
    assert main(["check", "sleepstudy", "Reaction ~ Days + (Days | Subject)"]) == 0
    assert "CONVERGED" in capsys.readouterr().out


@pytest.mark.slow
def test_grouseticks_warning_is_a_false_alarm():
    """lme4 warns max|grad| = 0.0398 with uncentred HEIGHT; the report explains it."""
    fit = vctest.fit("TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", "grouseticks",
                     family="poisson")
    report = vctest.check(fit)
    assert [a.column for a in report.scaling] == ["HEIGHT"]
    assert report.rescaled is not None and report.rescaled_clean
    lls = [r.loglik for r in report.runs] + [report.rescaled.loglik]
    assert max(lls) - min(lls) < 1e-4  # every optimiser and the rescaled refit agree
    assert report.verdict == "converged"
    assert any("false alarm" in n and "HEIGHT" in n for n in report.notes)


def test_glmm_cbpp_is_clean():
    fit = vctest.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
                     family="binomial")
    report = vctest.check(fit)
    assert report.verdict == "converged"
    assert max(r.loglik for r in report.runs) - min(r.loglik for r in report.runs) < 1e-4
