"""The lean path around a small fit (issue #21): same numbers, caches that never go stale,
lazy parts computed on access and equal to what was computed eagerly before."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest import datasets
from vctest.formula.design import _formula_frame, build_design
from vctest.formula.evaluate import _formulaic_columns, _plain_columns, evaluate
from vctest.formula.used import columns_hash

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _odd_frame() -> pd.DataFrame:
    """Numbers, integers, text, booleans, odd level labels, an ordered factor, missing values."""
    rng = np.random.default_rng(21)
    n = 60
    frame = pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "k": rng.integers(0, 9, n),
        "txt": rng.choice(["b", "a", "c d"], n),
        "flag": rng.random(n) > 0.5,
        "odd": pd.Categorical(rng.choice(["x[1]", "1.5", "é", "T.z"], n),
                              categories=["x[1]", "1.5", "é", "T.z", "unused"]),
        "lvl": pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "hi"],
                              ordered=True),
        "g": np.repeat(np.arange(6), n // 6),
    })
    frame.loc[[3, 17], "x"] = np.nan
    frame.loc[[5], "txt"] = None
    return frame


PLAIN = ["x", "1 + x + k", "0 + x", "x - 1", "txt", "x + txt + flag", "odd + k", "1",
         "flag + odd + txt"]
NOT_PLAIN = ["0 + txt", "lvl", "x:txt", "log(k + 1)", "scale(x)", "x * flag", "poly(k, 2)"]


@pytest.mark.parametrize("rhs", PLAIN + NOT_PLAIN)
def test_plain_terms_equal_formulaic(rhs):
    """Where the NumPy path applies, its values, names and terms are formulaic's exactly;
    elsewhere it declines and formulaic evaluates."""
    frame = _odd_frame()
    rows = np.flatnonzero(frame[["x", "txt"]].notna().all(axis=1).to_numpy())
    columns, ordered = _formula_frame(frame, rows)
    plain = _plain_columns(rhs, columns, ordered, rows)
    assert (plain is not None) == (rhs in PLAIN)
    ref_values, ref_names, ref_terms = _formulaic_columns(rhs, columns, ordered, "test", rows)
    values, names, terms = evaluate(rhs, columns, ordered, "test", rows)
    np.testing.assert_array_equal(values, ref_values)
    assert values.dtype == ref_values.dtype and values.shape == ref_values.shape
    assert (names, terms) == (ref_names, tuple(ref_terms))


def test_fit_again_on_changed_data_gives_new_numbers():
    """Nothing cached serves a stale design: changed data, changed fit; same data, same fit."""
    data = datasets.load("sleepstudy")
    first = vctest.fit(SLEEP, data)
    changed = data.copy()
    changed["Reaction"] = changed["Reaction"] + np.random.default_rng(1).normal(0, 30, 180)
    other = vctest.fit(SLEEP, changed)
    assert other.objective != first.objective
    assert not np.array_equal(other.beta.to_numpy(), first.beta.to_numpy())
    np.testing.assert_array_equal(other.model.design.y, changed["Reaction"].to_numpy())
    again = vctest.fit(SLEEP, "sleepstudy")
    assert again.objective == first.objective
    np.testing.assert_array_equal(again.theta, first.theta)
    np.testing.assert_array_equal(again.beta.to_numpy(), first.beta.to_numpy())


def test_two_formulas_two_designs():
    data = datasets.load("sleepstudy")
    for _ in range(2):  # the second round reads the parse cache
        a = build_design(SLEEP, data)
        b = build_design("Reaction ~ 1 + (1 | Subject)", data)
        assert a.fixed_names == ("(Intercept)", "Days") and a.blocks[0].k == 2
        assert b.fixed_names == ("(Intercept)",) and b.blocks[0].k == 1
        assert a.formula.text != b.formula.text


def test_bundled_data_set_is_a_new_copy_each_time():
    data = vctest.datasets.load("sleepstudy")
    data.loc[0, "Reaction"] = -1.0
    data["Days"] = 0.0
    fresh = vctest.datasets.load("sleepstudy")
    assert fresh.loc[0, "Reaction"] == pytest.approx(249.56)
    assert fresh["Days"].max() == 9.0
    assert vctest.fit(SLEEP, "sleepstudy").objective == pytest.approx(1743.6283, abs=1e-4)


def test_design_frame_and_hash_are_taken_when_the_design_is_built():
    """``frame`` and ``data_hash`` are made on first access, from the columns as they were
    when the design was built: changing the data afterwards changes neither."""
    data = datasets.load("sleepstudy")
    data.index = np.arange(180)[::-1] + 1000  # any index: rows are read by position
    original = data.reset_index(drop=True).copy()
    design = build_design(SLEEP, data)
    assert "frame" not in design.__dict__ and "data_hash" not in design.__dict__
    data.loc[1179, "Reaction"] = 0.0  # the first row
    data["Days"] = data["Days"] * 2.0
    frame = design.frame
    pd.testing.assert_frame_equal(frame, original[["Reaction", "Days", "Subject"]])
    assert design.data_hash == columns_hash(dict(original[["Reaction", "Days", "Subject"]]
                                                 .items()))
    assert design.data_hash == build_design(SLEEP, original).data_hash
    assert design.data_hash != build_design(SLEEP, data).data_hash
    frame.loc[0, "Reaction"] = 1.0  # the frame is the caller's: the design keeps its own
    assert design.frame is frame  # cached
    assert dataclasses.replace(design).frame.loc[0, "Reaction"] == original.loc[0, "Reaction"]


def test_dropped_rows_warn_and_keep_positions():
    data = datasets.load("sleepstudy")
    data.loc[[4, 90], "Reaction"] = np.nan
    with pytest.warns(UserWarning, match=r"dropped 2 of 180 rows .* 'Reaction' \(2\)") as rec:
        design = build_design(SLEEP, data)
    assert rec[0].filename == __file__
    assert design.n == 178 and design.n_dropped == 2
    assert 4 not in design.row_index and 90 not in design.row_index
    pd.testing.assert_frame_equal(
        design.frame, data[["Reaction", "Days", "Subject"]].dropna().reset_index(drop=True))


def test_lazy_standard_errors_and_diagnostics_equal_eager_ones():
    fit = vctest.fit(SLEEP, "sleepstudy")
    assert "beta_se" not in fit.__dict__ and "diagnostics" not in fit.__dict__
    model = fit.model
    _, vcov, _ = model.fixed_effects(fit.theta, fit.reml)  # a new evaluation at theta
    np.testing.assert_allclose(fit.beta_se.to_numpy(), fit.sigma * np.sqrt(np.diag(vcov)),
                               rtol=1e-12)
    assert fit.beta_se.round(4).tolist() == [6.8246, 1.5458]  # lme4: 6.8246, 1.5458
    assert list(fit.beta_se.index) == ["(Intercept)", "Days"] and fit.beta_se.name == "se"
    eager = model.diagnostics_at(fit.theta, fit.reml)
    lazy = fit.diagnostics
    assert "diagnostics" in fit.__dict__
    np.testing.assert_array_equal(lazy.gradient, eager.gradient)
    np.testing.assert_array_equal(lazy.hessian, eager.hessian)
    assert lazy.converged == eager.converged and lazy.messages == eager.messages


def test_lazy_parts_survive_replace_and_pickle():
    fit = vctest.fit(SLEEP, "sleepstudy")
    clone = pickle.loads(pickle.dumps(fit))
    pd.testing.assert_series_equal(clone.beta_se, fit.beta_se, check_exact=True)
    assert clone.summary() == fit.summary() and clone.to_dict() == fit.to_dict()
    moved = dataclasses.replace(fit, beta=fit.beta * 2.0, sigma=1.0)
    pd.testing.assert_series_equal(moved.beta_se, fit.beta_se, check_exact=True)  # as fitted
    design = pickle.loads(pickle.dumps(fit.model.design))
    assert design.data_hash == fit.model.design.data_hash
    pd.testing.assert_frame_equal(design.frame, fit.model.design.frame)
