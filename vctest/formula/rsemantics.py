"""Where R's model frame and lme4 differ from formulaic and pandas defaults.

Small pieces that make a formula mean in vctest what it means in lme4:

* :func:`r_scale` / :func:`r_center` -- R's ``scale()``: the mean and standard
  deviation of the non-missing values (``na.rm = TRUE``), evaluated, like
  every variable of R's model frame, on all rows of the data before
  incomplete rows are dropped; a stateful transform, so formulaic keeps the
  centre and scale it learnt;
* :data:`R_CONTEXT` -- the names a formula may use beyond its data
  (``scale``, ``center``, R's ``TRUE``/``FALSE``);
* :func:`lme4_term_order` -- the order in which lme4 stores random-effects
  terms (and so theta and ``VarCorr``);
* :func:`grouping_values` -- a grouping column that mixes numbers and text
  is read as text, as R's ``factor()`` reads the character vector such a
  column would be in R.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from formulaic.utils.stateful_transforms import stateful_transform

from vctest._stack import user_stacklevel

__all__ = ["R_CONTEXT", "as_character", "grouping_values", "lme4_term_order", "r_center", "r_scale"]


@stateful_transform
def r_scale(data: Any, center: bool | float = True, scale: bool | float = True,
            _state: dict | None = None) -> np.ndarray:
    """R's ``scale(x, center, scale)`` for one column, ignoring missing values.

    ``center = TRUE`` subtracts the mean of the non-missing values; ``scale =
    TRUE`` then divides by ``sqrt(sum(x^2) / (m - 1))`` over the ``m``
    non-missing (centred) values -- the standard deviation when centred, the
    root-mean-square otherwise, as R does.  Numbers give the centre and scale
    directly.  The values learnt are kept in ``_state`` (formulaic's stateful
    transforms), so new data is transformed with the same centre and scale.

    Examples
    --------
    >>> import numpy as np
    >>> r_scale(np.array([1.0, 2.0, np.nan, 3.0])).round(3).tolist()
    [-1.0, 0.0, nan, 1.0]
    """
    state = {} if _state is None else _state
    x = np.asarray(data, dtype=np.float64)
    if "center" not in state:
        if isinstance(center, bool | np.bool_):
            state["center"] = float(np.nanmean(x)) if center else None
        else:
            state["center"] = float(center)
    if state["center"] is not None:
        x = x - state["center"]
    if "scale" not in state:
        if isinstance(scale, bool | np.bool_):
            m = int(np.sum(~np.isnan(x)))
            state["scale"] = (float(np.sqrt(np.nansum(x * x) / (m - 1))) if scale and m > 1
                              else None)
        else:
            state["scale"] = float(scale)
    if state["scale"] is not None:
        x = x / state["scale"]
    return x


@stateful_transform
def r_center(data: Any, _state: dict | None = None) -> np.ndarray:
    """``scale(x, scale = FALSE)``: subtract the mean of the non-missing values.

    Examples
    --------
    >>> import numpy as np
    >>> r_center(np.array([1.0, np.nan, 3.0])).tolist()
    [-1.0, nan, 1.0]
    """
    return r_scale(data, center=True, scale=False, _state=_state)


def r_factor(data: Any) -> pd.Categorical:
    """R's ``factor(x)`` / ``as.factor(x)``: a factor with R's level order (sorted unique
    values, a categorical's own order) and R's labels (``as.character``).

    Examples
    --------
    >>> list(r_factor([2.0, 1.0, 2.0]).categories)
    ['1', '2']
    """
    if isinstance(data, pd.Series | pd.Categorical) and isinstance(
            getattr(data, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(data)
    else:
        cat = pd.Categorical(np.asarray(data))
    labels = [as_character(c) for c in cat.categories]
    if len(set(labels)) == len(labels) and not all(isinstance(c, str) for c in cat.categories):
        cat = cat.rename_categories(labels)
    return cat


#: Names a formula may use besides its data columns (data columns win): R's functions
#: of one column that formulaic does not define, under R's names (``as.factor`` is
#: written ``as_factor`` for Python and named back, see :mod:`vctest.formula.evaluate`).
R_CONTEXT: dict[str, Any] = {"scale": r_scale, "center": r_center, "factor": r_factor,
                             "as_factor": r_factor,
                             "sqrt": np.sqrt, "abs": np.abs, "log": np.log, "exp": np.exp,
                             "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
                             "expm1": np.expm1, "TRUE": True, "FALSE": False}


def lme4_term_order(n_levels: Sequence[int]) -> list[int]:
    """Positions of the random-effects terms in the order lme4 stores them.

    ``n_levels`` are the terms' numbers of levels in the order the formula
    writes them.  lme4 keeps that order when the numbers never increase along
    it; otherwise it sorts the terms by decreasing number of levels, and terms
    with the same number of levels then come in the reverse of their written
    order (checked against lme4 in ``validation/r/messy_data.R``).

    Examples
    --------
    >>> lme4_term_order([5, 5, 3])
    [0, 1, 2]
    >>> lme4_term_order([4, 4, 9])
    [2, 1, 0]
    """
    nl = [int(v) for v in n_levels]
    if all(b <= a for a, b in itertools.pairwise(nl)):
        return list(range(len(nl)))
    ascending = sorted(range(len(nl)), key=lambda i: nl[i])  # stable
    return ascending[::-1]


def as_character(value: object) -> str:
    """How R's ``as.character`` writes a value of a mixed column (3.0 -> "3")."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def grouping_values(values: pd.Series, name: str, what: str = "grouping column") -> pd.Series:
    """A grouping column as R would hold it: mixed numbers and text become text.

    In R a column cannot hold both ``3`` and ``"3"``: it is a character vector
    and ``factor()`` makes one level ``"3"`` of both.  A pandas object column
    can (e.g. after ``pd.concat`` of a frame read with integer IDs and one
    with text IDs); its values are then converted to text, with a warning, so
    that ``3`` and ``"3"`` are one group, never two.  The same holds for a
    factor in the fixed part (``what`` names the column's role in the
    warning).

    Examples
    --------
    >>> import pandas as pd, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     grouping_values(pd.Series([3, "3", 4], dtype=object), "id").tolist()
    ['3', '3', '4']
    """
    if values.dtype != object:
        return values
    kinds = {isinstance(v, str) for v in values.dropna()}
    if kinds != {True, False}:
        return values
    out = values.map(lambda v: v if isinstance(v, str) or pd.isna(v) else as_character(v))
    present = values.dropna()
    numbers = present[~present.map(lambda v: isinstance(v, str))].unique()
    texts = set(present[present.map(lambda v: isinstance(v, str))].unique())
    twins = [v for v in numbers if as_character(v) in texts]
    example = twins[0] if twins else numbers[0]
    merged = (f"{example!r} and {as_character(example)!r} are one group ({len(twins)} "
              "numbers have a text twin)" if twins else
              f"{example!r} is the level {as_character(example)!r}")
    warnings.warn(
        f"{what} {name!r} mixes numbers and text; as R's factor() does, its "
        f"values are read as text, so {merged}. Convert the column yourself "
        f"(data[{name!r}] = data[{name!r}].astype(str)) to silence this warning.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return out
