"""pandas out and notebook HTML."""

import numpy as np
import pandas as pd
import pytest

import vctest


@pytest.fixture(scope="module")
def fit():
    return vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")


def test_coef_table(fit):
    t = fit.coef_table()
    assert list(t.columns) == ["Estimate", "Std. Error", "t value"]
    assert list(t.index) == ["(Intercept)", "Days"]
    assert t.loc["Days", "t value"] == pytest.approx(fit.beta["Days"] / fit.beta_se["Days"])
    assert isinstance(fit.varcorr, pd.DataFrame)


def test_result_frame_lists_every_reference():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=5000, seed=1)
    df = res.to_frame()
    assert df.pvalue.iloc[0] == res.pvalue and df.nsim.iloc[0] == 5000
    assert set(df.reference.iloc[1:]) == set(res.asymptotic)
    assert np.isnan(df.mc_se.iloc[1])
    boot = vctest.compare("Yield ~ 1 + (1 | Batch)", "Yield ~ 1", "Dyestuff", nsim=50, seed=1)
    assert len(boot.to_frame()) == 1 + len(boot.approximations) + len(boot.asymptotic)


def test_html_views(fit):
    assert "<table" in fit._repr_html_() and "Fixed effects" in fit._repr_html_()
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=1000, seed=1)
    assert "RLRT" in res._repr_html_()
    assert "Convergence check" in vctest.check(fit)._repr_html_()
