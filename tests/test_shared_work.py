"""Work a test does once for both models gives the numbers it gave when done twice.

A test of ``(1 | g)`` at 10^6 groups spends its Python time on 3M-row arrays;
vctest factorises X once (:meth:`Design.qr`, shared with the null design),
reuses the full model's engine units and response for the null model, and
takes the fixed effects from the fit's own last evaluation.  Each shortcut
must give the numbers of the long way to the last bit.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from vctest import datasets
from vctest.formula.coding import as_factor, factor_codes
from vctest.formula.design import build_design
from vctest.model.fit import fit_model
from vctest.model.lmm import LinearMixedModel
from vctest.model.reduce import drop_term, locate_term
from vctest.model.structure import kernel_array
from vctest.nulls.bootstrap import Generator


def _bits(a) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


@pytest.mark.parametrize("values", [
    pd.Series([10, 2, 10, -1, 2]),
    pd.Series(np.array([3, 1, 2, 3], dtype=np.uint32)),
    pd.Series([2.0, 1.0, 2.0]),
    pd.Series([0.5, 1.25, 0.5]),
    pd.Series(["b", "a", "c", "a"]),
    pd.Series(pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"])),
    pd.Series([True, False, True]),
], ids=["int", "uint", "whole-float", "float", "text", "categorical", "bool"])
def test_factor_codes_are_as_factor(values):
    cat = as_factor(values)
    codes, labels = factor_codes(values)
    assert codes.dtype == np.int64
    assert codes.tolist() == cat.codes.tolist()
    assert labels == tuple(str(c) for c in cat.categories)


def test_integer_grouping_levels_are_sorted_numbers_as_text():
    frame = pd.DataFrame({"y": [1.0, 2.0, 0.5, 3.0, 1.5, 2.5], "g": [10, 9, 10, -3, 9, -3]})
    blk = build_design("y ~ 1 + (1 | g)", frame).blocks[0]
    assert blk.levels == ("-3", "9", "10")
    assert blk.codes.tolist() == [2, 1, 2, 0, 1, 0]


@pytest.fixture(scope="module")
def sleep():
    return datasets.load("sleepstudy")


def test_design_qr_is_numpys_and_shared_with_the_null(sleep):
    d = build_design("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    q, r = d.qr()
    q0, r0 = np.linalg.qr(d.X)
    assert _bits(q) == _bits(q0) and _bits(r) == _bits(r0)
    null = drop_term(d, locate_term(d, "(0 + Days | Subject)"))
    assert null.X is d.X and null.qr()[0] is q  # computed once for both
    other = dataclasses.replace(d, X=d.X * 2.0)  # another X: its own factorisation
    assert _bits(other.qr()[1]) == _bits(np.linalg.qr(d.X * 2.0)[1])
    assert _bits(d.qr()[1]) == _bits(r0)
    again = pickle.loads(pickle.dumps(d))  # the memo is not pickled; recomputed alike
    assert _bits(again.qr()[0]) == _bits(q0)


@pytest.mark.parametrize("formula, term", [
    ("Reaction ~ Days + (1 | Subject)", "(1 | Subject)"),  # null: a linear model
    ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "(0 + Days | Subject)"),
])
@pytest.mark.parametrize("reml", [True, False])
def test_null_sharing_the_full_models_units_equals_a_fresh_null(sleep, formula, term, reml):
    d = build_design(formula, sleep)
    null = drop_term(d, locate_term(d, term))
    full = LinearMixedModel.from_design(d)
    if null.blocks:
        shared = fit_model(LinearMixedModel.from_design(null, like=full), reml=reml)
        fresh = fit_model(LinearMixedModel.from_design(null), reml=reml)
        assert shared.model.units is full.units
        for a in ("theta", "beta", "beta_se"):
            assert _bits(getattr(shared, a)) == _bits(getattr(fresh, a))
        got, want = (shared.objective, shared.sigma), (fresh.objective, fresh.sigma)
    else:
        shared = Generator.linear_model(null, reml, like=full)
        fresh = Generator.linear_model(null, reml)
        assert shared.model.units is full.units
        assert _bits(shared.beta) == _bits(fresh.beta)
        got, want = (shared.objective, shared.sigma), (fresh.objective, fresh.sigma)
    assert got == want
    assert _bits(shared.model.y_engine) == _bits(fresh.model.y_engine)


def test_a_model_with_another_response_is_not_shared(sleep):
    d = build_design("Reaction ~ Days + (1 | Subject)", sleep)
    full = LinearMixedModel.from_design(d)
    other = dataclasses.replace(d, y=d.y[::-1].copy())
    m = LinearMixedModel.from_design(other, like=full)
    assert m.units is not full.units and _bits(m.y) == _bits(other.y)
    assert _bits(m.y_engine) == _bits(LinearMixedModel.from_design(other).y_engine)
    assert _bits(m.y_engine) != _bits(full.y_engine)


@pytest.mark.parametrize("formula, data", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    ("Yield ~ 1 + (1 | Batch)", "Dyestuff2"),  # a boundary fit
])
@pytest.mark.parametrize("reml", [True, False])
def test_fixed_effects_from_the_fits_last_evaluation_equal_a_new_one(formula, data, reml):
    model = LinearMixedModel.from_design(build_design(formula, datasets.load(data)))
    fit = fit_model(model, reml=reml)
    beta, vcov, pwrss = model.fixed_effects(fit.theta, reml)  # a new engine evaluation
    assert _bits(fit.beta) == _bits(beta)
    sigma = np.sqrt(pwrss / (model.n - model.p if reml else model.n))
    assert fit.sigma == sigma
    assert _bits(fit.beta_se) == _bits(sigma * np.sqrt(np.diag(vcov)))


def test_the_structure_shares_the_arrays_the_kernels_only_read(sleep):
    d = build_design("Reaction ~ Days + (1 | Subject)", sleep)
    m = LinearMixedModel.from_design(d)
    st = m.structure
    assert st.x is m.units.x
    assert np.shares_memory(st.codes, d.blocks[0].codes)
    assert np.shares_memory(st.zcols, d.blocks[0].columns)
    a = np.arange(6.0).reshape(3, 2)
    assert kernel_array(a) is a
    for other in (a.T, a.astype(np.float32)):  # another layout or type: a C float64 copy
        got = kernel_array(other)
        assert got.flags.c_contiguous and got.dtype == np.float64 and np.array_equal(got, other)
    frozen = a.copy()
    frozen.flags.writeable = False
    assert kernel_array(frozen) is not frozen and kernel_array(frozen).flags.writeable
    assert kernel_array(np.arange(3, dtype=np.int32), np.int64).dtype == np.int64
