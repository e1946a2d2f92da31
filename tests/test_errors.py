"""Hostile inputs get a clear error naming the problem (the table in docs/errors.rst)."""

import numpy as np
import pytest

import vctest

D = vctest.datasets.load("sleepstudy")

CASES = [
    ("missing ~", "Reaction Days + (1 | Subject)", D, "has no `~`"),
    ("unbalanced parenthesis", "Reaction ~ Days + (1 | Subject", D, "unbalanced parentheses"),
    ("empty random term", "Reaction ~ Days + ( | Subject)", D, "empty left-hand side"),
    ("no grouping factor", "Reaction ~ Days + (1 | )", D, "empty grouping factor"),
    ("unknown column", "Reaction ~ Dayz + (1 | Subject)", D, "Did you mean 'Days'"),
    ("non-numeric response", "Subject ~ Days + (1 | Subject)", D, "needs a numeric response"),
    ("infinite values", "Reaction ~ Days + (1 | Subject)",
     D.assign(Days=D.Days.replace(0, np.inf)), "column 'Days' has infinite values"),
    ("all-NaN column", "Reaction ~ x + (1 | Subject)", D.assign(x=np.nan),
     "no observations are left"),
    ("a single group", "Reaction ~ Days + (1 | g)", D.assign(g="one"), "only one level"),
    ("more levels than rows", "Reaction ~ Days + (1 | r)",
     D.assign(r=[f"r{i}" for i in range(len(D))]), "not identifiable"),
    ("empty frame", "Reaction ~ Days + (1 | Subject)", D.iloc[:0], "`data` has no rows"),
    ("rank-deficient X", "Reaction ~ Days + D2 + (1 | Subject)", D.assign(D2=2 * D.Days),
     "column(s) 'D2' are linear combinations"),
    ("no random effects", "Reaction ~ Days", D, "no random-effects term"),
    ("constant response", "y ~ Days + (1 | Subject)", D.assign(y=3.0), "is constant"),
]


@pytest.mark.parametrize(("name", "formula", "data", "phrase"), CASES,
                         ids=[c[0] for c in CASES])
def test_clear_error(name, formula, data, phrase):
    with pytest.raises(ValueError) as info:
        vctest.fit(formula, data)
    assert phrase in str(info.value)
    with pytest.raises(ValueError):
        vctest.vc_test(formula, data, term="(1 | Subject)", nsim=100)


def test_string_covariate_is_a_factor():
    data = D.assign(s=np.where(D.Days > 4, "late", "early"))
    fit = vctest.fit("Reaction ~ s + (1 | Subject)", data)
    assert list(fit.beta.index) == ["(Intercept)", "slate"]


def test_missing_values_are_dropped_with_a_count():
    data = D.copy()
    data.loc[[0, 5, 7], "Reaction"] = np.nan
    with pytest.warns(UserWarning, match="dropped 3 of 180 rows"):
        fit = vctest.fit("Reaction ~ Days + (1 | Subject)", data)
    assert fit.nobs == 177


def test_docs_table_lists_every_case():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "errors.rst").read_text()
    for name, *_ in CASES:
        assert name in text, name
