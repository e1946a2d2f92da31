"""Column types a formula cannot use as they are, refused with what to do instead.

R's model frame would turn a date into a number of days and a column mixing
numbers and text into text; pandas keeps both as they are, and building a
design from them would silently make a factor with one level per value.
vctest refuses them with a message saying how to convert the column.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd


def check_covariates(frame: pd.DataFrame | Mapping[str, pd.Series], formula: str) -> None:
    """Refuse date/time and time-span columns and columns mixing numbers and text.

    ``frame`` holds the columns the formula uses outside its groupings (after
    rows with missing values are dropped): a DataFrame or a mapping of names to Series.

    Raises
    ------
    ValueError
        Naming the column and how to convert it.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [1, "two", 3]})
    >>> check_covariates(frame, "y ~ x + (1 | g)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: column 'x' used in 'y ~ x + (1 | g)' mixes numbers and text (e.g. 1 and 'two')...
    """
    for col, values in frame.items():
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":  # plain numbers
            continue
        if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
            raise ValueError(
                f"column {col!r} used in {formula!r} is a date/time ({dtype}); vctest does not "
                "guess its unit. Convert it to a number, e.g. "
                f"data[{col!r}] = (data[{col!r}] - data[{col!r}].min()).dt.days, or to text "
                f"(data[{col!r}].astype(str)) to use it as a factor."
            )
        if pd.api.types.is_timedelta64_dtype(dtype):
            raise ValueError(
                f"column {col!r} used in {formula!r} is a time span ({dtype}); vctest does "
                "not guess its unit. Convert it to a number, e.g. "
                f"data[{col!r}] = data[{col!r}].dt.total_seconds() / 3600 for hours."
            )
        if pd.api.types.is_object_dtype(dtype):
            number = next((v for v in values if isinstance(v, numbers.Number)
                           and not isinstance(v, bool)), None)
            text = next((v for v in values if isinstance(v, str)), None)
            if number is not None and text is not None:
                raise ValueError(
                    f"column {col!r} used in {formula!r} mixes numbers and text (e.g. "
                    f"{number!r} and {text!r}), which R would read as text. Convert it: "
                    f"pd.to_numeric(data[{col!r}], errors='coerce') for a number (text "
                    f"becomes missing), or data[{col!r}].astype(str) for a factor."
                )
            odd = next((v for v in values if isinstance(v, pd.Timestamp | pd.Timedelta)),
                       None)
            if odd is not None:
                raise ValueError(
                    f"column {col!r} used in {formula!r} holds dates or time spans (e.g. "
                    f"{odd!r}); convert it to a number or to text first."
                )


def check_fixed_size(p: int, n: int, fixed: str) -> None:
    """Refuse as many fixed-effect columns as observations (or more).

    Examples
    --------
    >>> check_fixed_size(3, 10, "x + z")
    >>> check_fixed_size(10, 10, "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the fixed-effect part 'f' has 10 columns for 10 observations; ...
    """
    if p >= n:
        raise ValueError(
            f"the fixed-effect part {fixed!r} has {p} columns for {n} observations; a mixed "
            "model needs more observations than fixed-effect columns (the fixed effects "
            "alone would fit every observation, leaving nothing for the residual and random "
            "effects). Remove fixed-effect terms or use more data."
        )
