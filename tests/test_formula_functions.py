"""R's functions inside a formula, fitted to lme4's numbers (issue #16 item 1).

Reference: validation/reference/formula_functions.json from
validation/r/formula_functions.R (lme4 1.1.31 on sleepstudy).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import vctest
from vctest.formula.design import build_design

ROOT = Path(__file__).parents[1]
REF = json.loads((ROOT / "validation/reference/formula_functions.json").read_text())["fits"]
#: formulaic writes a call's arguments with spaces around operators; R's deparse does not
SPACING = {"exp(Days / 10)": "exp(Days/10)"}


@pytest.mark.parametrize("case", REF, ids=[c["formula"] for c in REF])
def test_formula_function_equals_lme4(case):
    fit = vctest.fit(case["formula"], "sleepstudy")
    assert fit.objective == pytest.approx(case["criterion"], rel=1e-8)
    lme4_theta = np.atleast_1d(case["theta"])
    if not np.allclose(fit.theta, lme4_theta, rtol=0, atol=1e-4):
        # a flat criterion where lme4's optimiser stopped early: vctest's theta must then
        # be at least as good as lme4's on vctest's own criterion
        assert fit.objective <= fit.model.objective(lme4_theta, True) + 1e-10
    np.testing.assert_allclose(fit.beta.to_numpy(), case["fixef"], rtol=1e-6, atol=1e-8)
    assert [SPACING.get(n, n) for n in fit.beta.index] == case["names"]


def test_offset_inside_the_formula_is_refused_with_the_alternatives():
    data = vctest.datasets.load("sleepstudy")
    data["n"] = 1.0 + data["Days"] % 3
    with pytest.raises(ValueError, match=r"offset\(\) inside the formula .*`offset=`.*I\(y"):
        vctest.fit("Reaction ~ Days + offset(log(n)) + (1 | Subject)", data)


def test_a_column_named_like_a_function_is_still_a_column():
    data = vctest.datasets.load("sleepstudy")
    data["sqrt"] = data["Days"] * 2.0
    fit = vctest.fit("Reaction ~ sqrt + (1 | Subject)", data)
    assert list(fit.beta.index) == ["(Intercept)", "sqrt"]


def test_a_bootstrap_reuses_the_transformed_design():
    # the same model written with transforms and with precomputed columns: a replicate
    # that recomputed scale()/poly()/log() on simulated data would change the null sample
    data = vctest.datasets.load("sleepstudy")
    days = data["Days"].to_numpy(float)
    data["sDays"] = (days - days.mean()) / days.std(ddof=1)
    data["logR"] = np.log(data["Reaction"])
    kw = {"term": "(0 + sDays | Subject)", "method": "bootstrap", "nsim": 40, "seed": 11,
          "progress": False}
    written = vctest.vc_test("log(Reaction) ~ scale(Days) + (1 | Subject) + (0 + sDays | Subject)",
                             data, **kw)
    plain = vctest.vc_test("logR ~ sDays + (1 | Subject) + (0 + sDays | Subject)", data, **kw)
    assert written.statistic == pytest.approx(plain.statistic, rel=1e-9)
    np.testing.assert_allclose(written.null_distribution, plain.null_distribution,
                               rtol=1e-6, atol=1e-8)


def test_predict_on_new_data_refuses_a_stateful_transform():
    fit = vctest.fit("Reaction ~ scale(Days) + (1 | Subject)", "sleepstudy")
    new = vctest.datasets.load("sleepstudy").iloc[:5]
    with pytest.raises(ValueError, match=r"scale\(\) is not supported: the transform would be"):
        fit.predict(newdata=new)
    assert np.all(np.isfinite(fit.predict()))  # on the fit's own rows it is the fitted design


def test_poly_basis_equals_rs():
    basis = np.array(json.loads((ROOT / "validation/reference/formula_functions.json")
                                .read_text())["poly_basis"])
    design = build_design("Reaction ~ poly(Days, 3) + (1 | Subject)",
                          vctest.datasets.load("sleepstudy"))
    np.testing.assert_allclose(design.X[:, 1:], basis, rtol=0, atol=1e-12)


def test_a_poisson_response_of_whole_floats_is_counts():
    data = vctest.datasets.load("grouseticks")
    counts = vctest.fit("TICKS ~ YEAR + (1 | BROOD)", data, family="poisson")
    data["TICKS"] = data["TICKS"].astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole numbers stored as floats: no warning
        floats = vctest.fit("TICKS ~ YEAR + (1 | BROOD)", data, family="poisson")
    assert floats.objective == counts.objective
