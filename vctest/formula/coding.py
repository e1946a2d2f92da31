"""Codings of single columns the model frame reads specially: factor levels, factor responses
and prior weights.

* :func:`as_factor`: a column as a factor with R's level order (sorted unique
  values; a pandas categorical keeps its order; booleans FALSE, TRUE);
  :func:`factor_codes`: its codes and labels alone (integers without a
  categorical: a million levels in a fraction of a second).
* :func:`factor_response`: a factor, boolean or two-valued text response coded
  as R's binomial family reads it (first level = failure = 0).
* :func:`with_weights` / :func:`prior_weights`: lme4's ``weights=`` (a column
  or one value per row), kept through the missing-value drop and checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vctest.formula.rsemantics import as_character


def as_factor(values: pd.Series, rows: np.ndarray | None = None) -> pd.Categorical:
    """Categorical with R's level order and only the levels present in ``rows``.

    ``values`` may hold more rows than the model uses (``rows``, default all):
    values on the other rows whose level does not occur in ``rows`` become
    missing.
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        cat = pd.Categorical(values, categories=[False, True])
    else:  # sorted unique values, like R's factor(); a categorical keeps its order
        cat = pd.Categorical(values)
        used = np.zeros(len(cat.categories), dtype=bool)
        codes = cat.codes if rows is None else cat.codes[rows]
        used[codes[codes >= 0]] = True
        if not used.all():
            cat = cat.set_categories(cat.categories[used])
    cats = cat.categories
    if pd.api.types.is_integer_dtype(cats.dtype):  # R's labels of whole numbers, vectorised
        return cat.rename_categories(cats.astype(str))
    if pd.api.types.is_float_dtype(cats.dtype):
        whole = np.isfinite(cats) & (np.abs(cats) < 2.0**53) & (np.mod(cats, 1.0) == 0.0)
        if whole.all():
            return cat.rename_categories(cats.astype(np.int64).astype(str))
    if not all(isinstance(c, str) for c in cats):
        labels = [as_character(c) for c in cats]
        if len(set(labels)) == len(labels):
            cat = cat.rename_categories(labels)
    return cat


def factor_codes(values: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """The codes (int64) and level labels of :func:`as_factor` on all of ``values``.

    A column of integers (the usual grouping column of a large data set) is
    factorised directly: R's levels are its sorted distinct values, labelled
    as R prints whole numbers.  Any other column goes through
    :func:`as_factor`.

    Examples
    --------
    >>> import pandas as pd
    >>> codes, labels = factor_codes(pd.Series([10, 2, 10, -1]))
    >>> codes.tolist(), labels
    ([2, 1, 2, 0], ('-1', '2', '10'))
    """
    if values.dtype.kind in "iu":  # numpy integers: no missing values, no categorical
        codes, uniques = pd.factorize(values.to_numpy(), sort=True)
        return codes.astype(np.int64, copy=False), tuple(map(str, uniques.tolist()))
    if isinstance(values.dtype, pd.CategoricalDtype):
        # a categorical with text levels, every one present and none missing: as it is
        cat = values.array
        labels = cat.categories
        if (cat.codes.size and cat.codes.min() >= 0
                and np.bincount(cat.codes, minlength=len(labels)).all()
                and all(isinstance(c, str) for c in labels)):
            return cat.codes.astype(np.int64), tuple(labels.tolist())
    cat = as_factor(values)
    return cat.codes.astype(np.int64), tuple(map(str, cat.categories.tolist()))


def is_factor_like(values: pd.Series) -> bool:
    dtype = values.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype))


def factor_response(name: str, values: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """A factor, boolean or two-valued text response as 0 (first level) / 1 (the others),
    as R's binomial family reads a factor."""
    if not (isinstance(values.dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(values.dtype)):
        distinct = pd.unique(values)
        if not all(isinstance(v, str) for v in distinct):
            raise ValueError(
                f"the response {name!r} mixes numbers and text; a binomial response is 0/1, "
                "a proportion, a factor or a column of two text values, so convert it, e.g. "
                f"data[{name!r}] = pd.to_numeric(data[{name!r}]) for numbers.")
        if len(distinct) != 2:
            raise ValueError(
                f"the response {name!r} is text with {len(distinct)} distinct values "
                f"{sorted(map(str, distinct))[:5]}; a binomial response needs two (the first "
                "in sorted order counts as failure, as R). Make it a pandas Categorical to "
                "choose the first level, or recode it to 0/1.")
    cat = as_factor(values)
    if len(cat.categories) < 2:
        raise ValueError(f"the response {name!r} has only one level {list(cat.categories)} "
                         "in the rows used; there is no variation to model.")
    y = (np.asarray(cat.codes) != 0).astype(np.float64)
    return np.ascontiguousarray(y), tuple(str(c) for c in cat.categories)


#: The column name prior weights given as values get in the used frame (lme4's name).
WEIGHTS_COLUMN = "(weights)"


def with_weights(data: pd.DataFrame, used: list[str],
                  weights: str | Any) -> tuple[pd.DataFrame, str, str]:
    """The used columns plus the prior weights' column; its name and how to call it."""
    if isinstance(weights, str):
        if weights not in data.columns:
            raise ValueError(f"`weights` column {weights!r} is not in the data; columns are "
                             f"{list(data.columns)[:20]}.")
        name, what = weights, f"the `weights` column {weights!r}"
        frame = data[list(dict.fromkeys([*used, weights]))]
    else:
        try:
            values = np.asarray(weights, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`weights` must be a column name or numbers, one per row of the "
                            f"data; got {type(weights).__name__}.") from exc
        if values.size != len(data):
            raise ValueError(f"`weights` must have one value per row of the data ({len(data)}); "
                             f"got {values.size}.")
        name, what = WEIGHTS_COLUMN, "`weights`"
        frame = data[used].assign(**{WEIGHTS_COLUMN: values})
    if not pd.api.types.is_numeric_dtype(frame[name].dtype) or pd.api.types.is_bool_dtype(
            frame[name].dtype):
        raise TypeError(f"{what} must be numeric (dtype {frame[name].dtype}); prior weights are "
                        "positive numbers.")
    return frame, name, what


def prior_weights(frame: pd.DataFrame, name: str, what: str) -> np.ndarray:
    w = frame[name].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} has {int(bad.sum())} zero, negative or infinite values on the rows used "
            f"(first: {w[first]:g}); prior weights must be positive and finite. Drop the rows "
            "with zero weight (they carry no information) and fix the others.")
    return np.ascontiguousarray(w)
