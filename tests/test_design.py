"""Formula + DataFrame -> numeric design (X, y, random-effects blocks)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from vctest import datasets
from vctest.formula.design import Design, build_design
from vctest.formula.parse import parse_formula


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def ortho() -> pd.DataFrame:
    return datasets.load("Orthodont")


def small_frame() -> pd.DataFrame:
    """A tiny frame with text, integer, boolean and ordered columns."""
    rng = np.random.default_rng(20240611)
    n = 24
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": np.tile([0.0, 1.0, 2.0, 3.0], n // 4),
        "g": np.repeat(["b", "a", "c"], n // 3),          # text: levels sorted -> a, b, c
        "gi": np.repeat([30, 4, 200], n // 3),             # integers: sorted numerically
        "flag": np.tile([True, False], n // 2),
        "lvl": pd.Categorical(np.tile(["lo", "mid", "hi"], n // 3),
                              categories=["lo", "mid", "hi"], ordered=True),
    })


# -- the classic data sets -----------------------------------------------------------------


def test_sleepstudy_random_slope_block(sleep):
    d = build_design("Reaction ~ Days + (Days | Subject)", sleep)
    assert isinstance(d, Design)
    assert (d.n, d.p) == (180, 2)
    (b,) = d.blocks
    assert (b.name, b.n_levels, b.k) == ("Subject", 18, 2)
    assert b.column_names == ("(Intercept)", "Days")
    assert b.levels == tuple(sleep["Subject"].cat.categories)
    np.testing.assert_array_equal(b.codes, sleep["Subject"].cat.codes.to_numpy())
    np.testing.assert_array_equal(b.columns, np.column_stack([np.ones(180), sleep["Days"]]))
    assert b.codes.dtype == np.int64 and b.codes.flags.c_contiguous
    assert b.columns.dtype == np.float64 and b.columns.flags.c_contiguous
    np.testing.assert_array_equal(d.y, sleep["Reaction"].to_numpy())
    assert d.weights is None
    assert d.n_dropped == 0
    np.testing.assert_array_equal(d.row_index, np.arange(180))


def test_orthodont_fixed_effects_match_hand_built_matrix(ortho):
    d = build_design("distance ~ age + Sex + (age | Subject)", ortho)
    assert d.fixed_names == ("(Intercept)", "age", "SexFemale")
    female = (ortho["Sex"] == "Female").to_numpy(dtype=float)
    assert female.sum() == 44  # 11 girls x 4 ages
    expected = np.column_stack([np.ones(108), ortho["age"].to_numpy(), female])
    np.testing.assert_array_equal(d.X, expected)
    assert d.X.dtype == np.float64 and d.X.flags.c_contiguous
    (b,) = d.blocks
    assert b.levels == tuple(ortho["Subject"].cat.categories)  # R's (ordered) level order
    assert b.column_names == ("(Intercept)", "age")


def test_interaction_and_full_dummy_names(ortho):
    d = build_design("distance ~ age * Sex + (0 + Sex | Subject)", ortho)
    assert d.fixed_names == ("(Intercept)", "age", "SexFemale", "age:SexFemale")
    np.testing.assert_array_equal(d.X[:, 3], d.X[:, 1] * d.X[:, 2])
    (b,) = d.blocks
    assert b.column_names == ("SexMale", "SexFemale")
    np.testing.assert_array_equal(b.columns.sum(axis=1), np.ones(108))


def test_pastes_nested_blocks_in_lme4_order():
    pastes = datasets.load("Pastes")
    d = build_design("strength ~ 1 + (1 | batch/cask)", pastes)
    assert [(b.name, b.n_levels) for b in d.blocks] == [("cask:batch", 30), ("batch", 10)]
    inner = d.blocks[0]
    assert inner.term.group_factors == ("cask", "batch")
    # R's `cask:batch`: first factor varies slowest
    assert inner.levels[:3] == ("a:A", "a:B", "a:C")
    labels = np.asarray(inner.levels)[inner.codes]
    expected = pastes["cask"].astype(str) + ":" + pastes["batch"].astype(str)
    np.testing.assert_array_equal(labels, expected.to_numpy())
    assert d.fixed_names == ("(Intercept)",)


def test_penicillin_crossed_order():
    d = build_design("diameter ~ 1 + (1 | sample) + (1 | plate)", datasets.load("Penicillin"))
    assert [(b.name, b.n_levels) for b in d.blocks] == [("plate", 24), ("sample", 6)]


def test_double_bar_blocks_keep_written_order_on_ties(sleep):
    d = build_design("Reaction ~ Days + (Days || Subject)", sleep)
    assert [b.term.label for b in d.blocks] == ["(1 | Subject)", "(0 + Days | Subject)"]
    assert [b.column_names for b in d.blocks] == [("(Intercept)",), ("Days",)]


def test_cbpp_binomial_response():
    cbpp = datasets.load("cbpp")
    d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    size = cbpp["size"].to_numpy()
    np.testing.assert_allclose(d.y, cbpp["incidence"].to_numpy() / size)
    np.testing.assert_array_equal(d.weights, size)
    assert d.fixed_names == ("(Intercept)", "period2", "period3", "period4")
    assert d.blocks[0].levels == tuple(str(i) for i in range(1, 16))


def test_cbind_zero_trials_give_zero_proportion():
    df = pd.DataFrame({"k": [0.0, 1, 2, 0, 3, 1], "f": [0.0, 1, 1, 2, 0, 2],
                       "g": list("aabbcc")})
    d = build_design("cbind(k, f) ~ 1 + (1 | g)", df)
    assert d.y[0] == 0.0 and d.weights[0] == 0.0
    np.testing.assert_allclose(d.y[1:], [0.5, 2 / 3, 0.0, 1.0, 1 / 3])


def test_accepts_parsed_formula(sleep):
    parsed = parse_formula("Reaction ~ Days + (1 | Subject)")
    d = build_design(parsed, sleep)
    assert d.formula is parsed


# -- R conventions for factors and names --------------------------------------------------


def test_text_integer_and_boolean_columns():
    df = small_frame()
    d = build_design("y ~ x + g + flag + (1 | gi)", df)
    assert d.fixed_names == ("(Intercept)", "x", "gb", "gc", "flagTRUE")
    np.testing.assert_array_equal(d.X[:, 2], (df["g"] == "b").to_numpy(dtype=float))
    np.testing.assert_array_equal(d.X[:, 4], df["flag"].to_numpy(dtype=float))
    (b,) = d.blocks
    assert b.levels == ("4", "30", "200")  # integers sorted numerically
    np.testing.assert_array_equal(b.codes, np.repeat([1, 0, 2], 8))


def test_text_grouping_sorted_and_categorical_order_kept():
    df = small_frame()
    assert build_design("y ~ x + (1 | g)", df).blocks[0].levels == ("a", "b", "c")
    df["g"] = pd.Categorical(df["g"], categories=["c", "b", "a", "unused"])
    d = build_design("y ~ g + (1 | g)", df)
    assert d.blocks[0].levels == ("c", "b", "a")  # unused level dropped, order kept
    assert d.fixed_names == ("(Intercept)", "gb", "ga")  # first category is the reference


def test_ordered_factor_gets_polynomial_contrasts():
    df = small_frame()
    d = build_design("y ~ lvl + (1 | g)", df)
    assert d.fixed_names == ("(Intercept)", "lvl.L", "lvl.Q")
    # R's contr.poly(3)
    lin = np.array([-1.0, 0.0, 1.0]) / np.sqrt(2.0)
    quad = np.array([1.0, -2.0, 1.0]) / np.sqrt(6.0)
    codes = df["lvl"].cat.codes.to_numpy()
    np.testing.assert_allclose(d.X[:, 1], lin[codes], atol=1e-12)
    np.testing.assert_allclose(d.X[:, 2], quad[codes], atol=1e-12)


def test_r_power_and_expression_response(sleep):
    d = build_design("log(Reaction) ~ Days + I(Days^2) + (1 | Subject)", sleep)
    assert d.fixed_names == ("(Intercept)", "Days", "I(Days^2)")
    np.testing.assert_array_equal(d.X[:, 2], sleep["Days"].to_numpy() ** 2)
    np.testing.assert_allclose(d.y, np.log(sleep["Reaction"].to_numpy()))


def test_interaction_grouping_levels_present_only():
    df = small_frame()
    d = build_design("y ~ x + (1 | g:flag)", df)
    (b,) = d.blocks
    assert b.levels == ("a:FALSE", "a:TRUE", "b:FALSE", "b:TRUE", "c:FALSE", "c:TRUE")
    labels = np.asarray(b.levels)[b.codes]
    expected = df["g"] + ":" + np.where(df["flag"], "TRUE", "FALSE")
    np.testing.assert_array_equal(labels, expected.to_numpy())


def test_no_intercept_fixed_part(sleep):
    d = build_design("Reaction ~ 0 + Days + (1 | Subject)", sleep)
    assert d.fixed_names == ("Days",)
    assert d.p == 1


# -- missing values and provenance --------------------------------------------------------


def test_missing_rows_dropped_with_warning(sleep):
    df = sleep.copy()
    df.loc[[3, 7], "Reaction"] = np.nan
    df.loc[10, "Subject"] = np.nan
    df["unused"] = np.nan  # columns the formula does not use are ignored
    with pytest.warns(UserWarning, match=r"dropped 3 of 180 rows .*'Reaction' \(2\), "
                                         r"'Subject' \(1\)"):
        d = build_design("Reaction ~ Days + (Days | Subject)", df)
    assert d.n_dropped == 3
    assert d.n == 177
    np.testing.assert_array_equal(d.row_index, np.setdiff1d(np.arange(180), [3, 7, 10]))
    np.testing.assert_array_equal(d.y, sleep["Reaction"].to_numpy()[d.row_index])
    assert d.row_index.dtype == np.int64


def test_data_hash_tracks_used_values_only(sleep):
    h = build_design("Reaction ~ Days + (1 | Subject)", sleep).data_hash
    assert len(h) == 64
    assert build_design("Reaction ~ Days + (1 | Subject)", sleep.copy()).data_hash == h
    changed = sleep.copy()
    changed.loc[0, "Reaction"] += 1.0
    assert build_design("Reaction ~ Days + (1 | Subject)", changed).data_hash != h
    extra = sleep.assign(other=1.0)
    assert build_design("Reaction ~ Days + (1 | Subject)", extra).data_hash == h


def test_design_is_frozen(sleep):
    d = build_design("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.y = d.y * 2  # type: ignore[misc]


# -- errors --------------------------------------------------------------------------------


def test_data_must_be_dataframe(sleep):
    with pytest.raises(TypeError, match="`data` must be a pandas DataFrame; got dict"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep.to_dict())


def test_formula_type(sleep):
    with pytest.raises(TypeError, match="`formula` must be a string"):
        build_design(3, sleep)  # type: ignore[arg-type]


def test_empty_frame(sleep):
    with pytest.raises(ValueError, match="`data` has no rows"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep.iloc[:0])


def test_unknown_column_suggests_close_match(sleep):
    with pytest.raises(ValueError, match=r"column 'Dayz' .* not in `data`\. Did you mean 'Days'"
                                         r".*Available columns: Reaction, Days, Subject"):
        build_design("Reaction ~ log(Dayz) + (1 | Subject)", sleep)
    with pytest.raises(ValueError, match=r"column 'Subj' used in the grouping"):
        build_design("Reaction ~ Days + (1 | Subj)", sleep)


def test_factor_response_is_coded_as_r_does(sleep):
    # a factor response is 0 for its first level and 1 for the others (R's binomial family)
    d = build_design("Subject ~ Days + (1 | Days)", sleep)
    assert d.response_levels == tuple(sleep["Subject"].cat.categories)
    first = sleep["Subject"].cat.categories[0]
    np.testing.assert_array_equal(d.y, (sleep["Subject"] != first).to_numpy(float))
    mixed = sleep.assign(Subject=sleep["Subject"].astype(object))
    mixed.loc[0, "Subject"] = 3
    with pytest.raises(ValueError, match=r"column 'Subject' used in .* mixes numbers and text"):
        build_design("Subject ~ Days + (1 | Days)", mixed)


def test_cbind_negative_counts():
    cbpp = datasets.load("cbpp")
    cbpp.loc[0, "incidence"] = -1.0
    with pytest.raises(ValueError, match="'incidence' has negative values"):
        build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)


def test_infinite_values_name_the_column(sleep):
    df = sleep.copy()
    df.loc[5, "Days"] = np.inf
    with pytest.raises(ValueError, match="column 'Days' has infinite values"):
        build_design("Reaction ~ Days + (1 | Subject)", df)


def test_non_finite_transform_names_the_column(sleep):
    with pytest.raises(ValueError, match=r"non-finite values in column\(s\) \['log\(Days\)'\]"):
        build_design("Reaction ~ log(Days) + (1 | Subject)", sleep)


def test_grouping_factor_with_one_level(sleep):
    one = sleep[sleep["Subject"] == "308"]
    with pytest.raises(ValueError, match=r"grouping factor 'Subject' .* only one level \('308'\)"):
        build_design("Reaction ~ Days + (1 | Subject)", one)


def test_fixed_factor_with_one_level(sleep):
    with pytest.raises(ValueError, match=r"factor 'site' .* only one level \['A'\]"):
        build_design("Reaction ~ Days + site + (1 | Subject)", sleep.assign(site="A"))


def test_too_many_random_effects(sleep):
    df = sleep.assign(obs=np.arange(180))
    with pytest.raises(ValueError, match=r"term \(1 \| obs\) has 180 random effects for 180 "
                                         "observations; the random-effects variance and the "
                                         "residual variance are not identifiable"):
        build_design("Reaction ~ Days + (1 | obs)", df)
    with pytest.raises(ValueError, match=r"\(1 \+ Days \| obs2\) has 180 random effects"):
        build_design("Reaction ~ Days + (Days | obs2)", sleep.assign(obs2=np.arange(180) // 2))


def test_rank_deficient_fixed_effects_named(sleep):
    df = sleep.assign(D2=2.0 * sleep["Days"], const=1.0, z=np.arange(180.0))
    with pytest.raises(ValueError, match=r"rank deficient: column\(s\) 'D2', 'const' are "
                                         "linear combinations of earlier columns; drop them"):
        build_design("Reaction ~ Days + D2 + z + const + (1 | Subject)", df)


def test_all_rows_missing(sleep):
    with pytest.raises(ValueError, match="no observations are left"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=np.nan))


def test_duplicate_column_names(sleep):
    df = sleep.set_axis(["Reaction", "Subject", "Subject"], axis=1)
    with pytest.raises(ValueError, match="several columns named 'Subject'"):
        build_design("Reaction ~ 1 + (1 | Subject)", df)


@pytest.mark.slow
def test_insteval_builds():
    inst = datasets.load("InstEval")
    d = build_design("y ~ service + (1 | s) + (1 | d) + (1 | dept)", inst)
    assert (d.n, d.p) == (73421, 2)
    assert d.fixed_names == ("(Intercept)", "service1")
    assert [(b.name, b.n_levels) for b in d.blocks] == [("s", 2972), ("d", 1128), ("dept", 14)]
    assert all(b.codes.shape == (73421,) and b.columns.shape == (73421, 1) for b in d.blocks)
