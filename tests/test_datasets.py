"""The bundled data sets load with R's column classes and factor level order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vctest import datasets

META = json.loads(
    (Path(datasets.__file__).parent / "data" / "factor_levels.json").read_text(encoding="utf-8")
)
EXPECTED = [
    "Dyestuff", "Dyestuff2", "sleepstudy", "Penicillin", "Pastes", "Orthodont", "cbpp",
    "grouseticks", "InstEval",
]


def test_names_lists_every_bundled_set():
    assert sorted(datasets.names()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_shape_and_columns_match_r(name):
    df = datasets.load(name)
    meta = META[name]
    assert df.shape == (meta["nrow"], len(meta["columns"]))
    assert list(df.columns) == meta["columns"]


@pytest.mark.parametrize("name", EXPECTED)
def test_factor_levels_in_r_order(name):
    df = datasets.load(name)
    for column, spec in META[name]["factors"].items():
        values = df[column]
        assert isinstance(values.dtype, pd.CategoricalDtype), column
        assert list(values.cat.categories) == spec["levels"], column
        assert values.cat.ordered == spec["ordered"], column
        # every value maps onto a level (none silently became NaN)
        assert (values.cat.codes >= 0).all(), column


@pytest.mark.parametrize("name", EXPECTED)
def test_numeric_columns_keep_r_class(name):
    df = datasets.load(name)
    for column, cls in META[name]["column_class"].items():
        if cls == "numeric":
            assert df[column].dtype == "float64", column
        elif cls == "integer":
            assert df[column].dtype == "int64", column


def test_numeric_looking_factor_levels_are_not_sorted_lexically():
    herd = datasets.load("cbpp")["herd"]
    assert list(herd.cat.categories) == [str(i) for i in range(1, 16)]
    brood = datasets.load("grouseticks")["BROOD"]
    assert brood.cat.categories[0] == "501"
    assert list(datasets.load("Orthodont")["Sex"].cat.categories) == ["Male", "Female"]


def test_values_are_read_correctly():
    df = datasets.load("sleepstudy")
    assert df["Reaction"].iloc[0] == pytest.approx(249.56)
    assert df["Subject"].iloc[0] == "308"
    assert df["Days"].iloc[:10].tolist() == list(range(10))


def test_name_is_case_insensitive():
    pd.testing.assert_frame_equal(datasets.load("SLEEPSTUDY"), datasets.load("sleepstudy"))
    assert datasets.path("instEval").name == "InstEval.csv"


def test_path_points_to_the_csv():
    p = datasets.path("Dyestuff")
    assert p.is_file()
    assert p.suffix == ".csv"
    assert p.read_text(encoding="utf-8").startswith('"Batch","Yield"')


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match=r"unknown data set 'sleep'.*sleepstudy.*InstEval"):
        datasets.load("sleep")
    with pytest.raises(ValueError, match="unknown data set"):
        datasets.path("nope")


def test_name_must_be_str():
    with pytest.raises(TypeError, match="`name` must be a string"):
        datasets.load(3)  # type: ignore[arg-type]
