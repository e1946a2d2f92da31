"""lme4 formula syntax -> frozen specification."""

from __future__ import annotations

import dataclasses

import pytest

from vctest.formula.parse import (
    ParsedFormula,
    RandomTerm,
    parse_formula,
    random_term_from_text,
)


def labels(f: ParsedFormula) -> list[str]:
    return [t.label for t in f.random]


# -- response ------------------------------------------------------------------------------


def test_column_response():
    f = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert f.response.kind == "column"
    assert f.response.parts == ("Reaction",)
    assert f.response.text == "Reaction"
    assert f.text == "Reaction ~ Days + (Days | Subject)"


def test_expression_response():
    f = parse_formula("log(y) ~ x + (1 | g)")
    assert f.response.kind == "expression"
    assert f.response.parts == ("log(y)",)


def test_cbind_response():
    f = parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert f.response.kind == "cbind"
    assert f.response.parts == ("incidence", "size - incidence")
    assert f.response.text == "cbind(incidence, size - incidence)"
    assert f.fixed == "period"


@pytest.mark.parametrize("lhs", ["cbind(a)", "cbind(a, b, c)", "cbind(a, )", "cbind()"])
def test_cbind_needs_two_arguments(lhs):
    with pytest.raises(ValueError, match=r"exactly two non-empty arguments"):
        parse_formula(f"{lhs} ~ x + (1 | g)")


# -- random terms --------------------------------------------------------------------------


def test_random_intercept():
    (t,) = parse_formula("y ~ x + (1 | g)").random
    assert t == RandomTerm(intercept=True, covariates=(), group="g", group_factors=("g",),
                           source="(1 | g)")
    assert t.lhs == "1"
    assert t.label == "(1 | g)"


def test_slope_implies_intercept():
    (t,) = parse_formula("Reaction ~ Days + (Days | Subject)").random
    assert t.intercept
    assert t.covariates == ("Days",)
    assert t.lhs == "1 + Days"
    assert t.label == "(1 + Days | Subject)"
    assert t.source == "(Days | Subject)"


@pytest.mark.parametrize("lhs", ["0 + x", "-1 + x", "x - 1", "x + 0"])
def test_no_intercept(lhs):
    (t,) = parse_formula(f"y ~ ({lhs} | g)").random
    assert not t.intercept
    assert t.covariates == ("x",)
    assert t.label == "(0 + x | g)"


def test_explicit_intercept_and_several_covariates():
    (t,) = parse_formula("y ~ (1 + x + log(z) | g)").random
    assert t.intercept
    assert t.covariates == ("x", "log(z)")
    assert t.label == "(1 + x + log(z) | g)"


def test_double_bar_expands_to_independent_terms():
    f = parse_formula("Reaction ~ Days + (1 + Days || Subject)")
    assert labels(f) == ["(1 | Subject)", "(0 + Days | Subject)"]
    assert all(t.source == "(1 + Days || Subject)" for t in f.random)


def test_double_bar_implies_intercept_and_splits_each_covariate():
    assert labels(parse_formula("y ~ (x || g)")) == ["(1 | g)", "(0 + x | g)"]
    assert labels(parse_formula("y ~ (0 + x + z || g)")) == ["(0 + x | g)", "(0 + z | g)"]


def test_nested_grouping():
    f = parse_formula("strength ~ 1 + (1 | batch/cask)")
    assert labels(f) == ["(1 | batch)", "(1 | cask:batch)"]
    assert [t.group_factors for t in f.random] == [("batch",), ("cask", "batch")]


def test_three_level_nesting():
    f = parse_formula("y ~ (1 | a/b/c)")
    assert [t.group for t in f.random] == ["a", "b:a", "c:b:a"]
    assert f.random[2].group_factors == ("c", "b", "a")


def test_interaction_grouping():
    (t,) = parse_formula("y ~ (1 | a:b)").random
    assert t.group == "a:b"
    assert t.group_factors == ("a", "b")


def test_double_bar_with_nesting():
    f = parse_formula("y ~ (1 + x || a/b)")
    assert labels(f) == ["(1 | a)", "(1 | b:a)", "(0 + x | a)", "(0 + x | b:a)"]


def test_crossed_terms_in_written_order():
    f = parse_formula("diameter ~ 1 + (1 | plate) + (1 | sample)")
    assert labels(f) == ["(1 | plate)", "(1 | sample)"]
    assert f.has_random


def test_random_terms_anywhere_in_rhs():
    f = parse_formula("y ~ (1 | g) + x + (0 + x | h) + z")
    assert f.fixed == "x + z"
    assert labels(f) == ["(1 | g)", "(0 + x | h)"]


def test_redundant_parentheses_around_term():
    assert labels(parse_formula("y ~ x + ((1 | g))")) == ["(1 | g)"]


def test_backticked_group_name():
    (t,) = parse_formula("y ~ (1 | `my group`)").random
    assert t.group_factors == ("my group",)


# -- fixed part ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "fixed"),
    [
        ("y ~ 1 + Days + (Days | Subject)", "1 + Days"),
        ("y ~ Days + (Days | Subject)", "Days"),
        ("y ~ (1 | g)", "1"),
        ("y ~ 0 + x + (1 | g)", "0 + x"),
        ("y ~ -1 + x + (1 | g)", "-1 + x"),
        ("y ~ x - 1 + (1 | g)", "x - 1"),
        ("y ~ a*b + a:c + (1 | g)", "a*b + a:c"),
        ("y ~ log(x) + I(x^2) + (1 | g)", "log(x) + I(x^2)"),
        ("y ~ (a + b)^2 + (1 | g)", "(a + b)^2"),
        ("y ~ x", "x"),
        ("y ~ C(f, levels=['a|b', 'c']) + (1 | g)", "C(f, levels=['a|b', 'c'])"),
    ],
)
def test_fixed_part_is_the_remainder(formula, fixed):
    assert parse_formula(formula).fixed == fixed


def test_no_random_terms():
    f = parse_formula("y ~ x")
    assert not f.has_random
    assert f.random == ()


def test_spec_is_frozen():
    f = parse_formula("y ~ x + (1 | g)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.fixed = "z"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.random[0].group = "h"  # type: ignore[misc]


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y x + (1 | g)", r"formula 'y x \+ \(1 \| g\)' has no `~`"),
        ("y ~ x ~ z", "exactly one `~`"),
        ("~ x + (1 | g)", "empty left-hand side"),
        ("y ~ ", "empty right-hand side"),
        ("y ~ x + (1 | g", r"unbalanced parentheses in formula 'y ~ x \+ \(1 \| g'"),
        ("y ~ x) + (1 | g)", "unbalanced parentheses"),
        ("y ~ x + 1 | g", r"`\|` outside parentheses .*term '1 \| g'"),
        ("y ~ x + ( | g)", "empty left-hand side in random-effects term"),
        ("y ~ x + (1 | )", "empty grouping factor in random-effects term"),
        ("y ~ x + (1 | (1 | g))", "nested or repeated `|`"),
        ("y ~ x + ((1 | g) | h)", "nested or repeated `|`"),
        ("y ~ x + (0 | g)", "has no random effects"),
        ("y ~ x + (1 | a + b)", "not a factor name, an interaction"),
        ("y ~ x + (1 - z | g)", r"cannot remove 'z' with `-`"),
        ("y ~ x - (1 | g)", "cannot subtract the random-effects term"),
        ("y ~ x*(1 | g)", "must stand on its own"),
        ("y ~ log(1 | g)", "must stand on its own"),
        ("y ~ ((1 | g) + x)", "must stand on its own"),
        ("y ~ x + + z", "empty term"),
        ("y | g ~ x", "response .* contains `\\|`"),
        ("y ~ f(x, 'a)", "unterminated quote"),
    ],
)
def test_errors(formula, message):
    with pytest.raises(ValueError, match=message):
        parse_formula(formula)


def test_formula_must_be_str():
    with pytest.raises(TypeError, match="`formula` must be a string"):
        parse_formula(None)  # type: ignore[arg-type]


# -- random_term_from_text -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["(0 + Days | Subject)", "0 + Days | Subject", " (0+Days|Subject) "]
)
def test_term_from_text(text):
    (t,) = random_term_from_text(text)
    assert t.label == "(0 + Days | Subject)"
    assert not t.intercept


def test_term_from_text_expands_like_parse_formula():
    got = random_term_from_text("Days || Subject")
    want = parse_formula("y ~ (Days || Subject)").random
    assert [t.label for t in got] == [t.label for t in want]
    assert [t.label for t in random_term_from_text("(1 | batch/cask)")] == [
        "(1 | batch)", "(1 | cask:batch)"]


def test_term_from_text_several_terms():
    assert [t.label for t in random_term_from_text("(1 | a) + (1 | b)")] == ["(1 | a)", "(1 | b)"]


@pytest.mark.parametrize("text", ["x", "x + (1 | g)"])
def test_term_from_text_rejects_fixed_terms(text):
    with pytest.raises(ValueError, match="is not a random-effects term"):
        random_term_from_text(text)


def test_term_from_text_errors():
    with pytest.raises(ValueError, match="`term` is empty"):
        random_term_from_text("  ")
    with pytest.raises(ValueError, match="empty grouping factor"):
        random_term_from_text("1 |")
    with pytest.raises(TypeError, match="`term` must be a string"):
        random_term_from_text(1)  # type: ignore[arg-type]
