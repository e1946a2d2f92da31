"""The data columns a design uses: taken once, incomplete rows dropped, hashed on demand.

:func:`take_columns` takes the columns a formula uses out of the user's frame
once, as pandas Series (a snapshot: later changes to the user's frame do not
reach them); :func:`drop_missing` finds the incomplete rows column by column
with NumPy (a warning says how many were dropped) and keeps the complete ones;
:func:`frame_of` and :func:`columns_hash` turn the kept columns into the
design's ``frame`` and ``data_hash`` -- which a fit does not need, so
:class:`~vctest.formula.design.Design` computes them on first access.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["columns_hash", "drop_missing", "frame_of", "take_columns"]

#: pandas copies on write (always from pandas 3): a Series taken from a frame is then a
#: snapshot; before, it is a view of the frame's memory and is copied here.
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or bool(
    pd.options.mode.copy_on_write is True)


def take_columns(data: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
    """``data``'s columns ``names`` as Series on positions ``0 .. n - 1`` (a snapshot).

    Examples
    --------
    >>> import pandas as pd
    >>> data = pd.DataFrame({"a": [1.0, 2.0], "b": ["u", "v"]}, index=[7, 3])
    >>> cols = take_columns(data, ["b"])
    >>> data.loc[7, "b"] = "w"
    >>> cols["b"].tolist(), cols["b"].index.tolist()
    (['u', 'v'], [0, 1])
    """
    index = data.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        data = data.reset_index(drop=True)
    if _COPY_ON_WRITE:
        return {name: data[name] for name in names}
    return {name: data[name].copy() for name in names}  # pragma: no cover - pandas < 3


def _missing(name: str, values: pd.Series) -> np.ndarray | None:
    """Missing entries of one column (None: none can be); reject infinite values."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biu":
        return None
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        array = values.to_numpy()
        missing = np.isnan(array)
        infinite = np.isinf(array).any()
    elif isinstance(dtype, pd.CategoricalDtype):
        missing = values.array.codes < 0  # a categorical's missing code is -1
        infinite = False
    else:
        missing = values.isna().to_numpy()
        infinite = pd.api.types.is_float_dtype(dtype) and np.isinf(
            values.to_numpy(dtype=np.float64, na_value=np.nan)).any()
    if infinite:
        raise ValueError(f"column {name!r} has infinite values; remove those rows or "
                         "replace them before fitting.")
    return missing if missing.any() else None


def drop_missing(columns: dict[str, pd.Series], n: int, formula: str
                 ) -> tuple[dict[str, pd.Series], np.ndarray, int]:
    """Drop the rows with a missing value in any column (warning); reject infinite values.

    ``columns`` hold ``n`` rows.  Returns the complete rows of the columns
    (positions ``0 ..`` again), their positions in the input and the number dropped.
    """
    masks = {name: _missing(name, values) for name, values in columns.items()}
    bad_rows = np.zeros(n, dtype=bool)
    for mask in masks.values():
        if mask is not None:
            bad_rows |= mask
    n_dropped = int(bad_rows.sum())
    if n_dropped == n:
        raise ValueError(f"every row of `data` has a missing value in a column used by "
                         f"{formula!r}; no observations are left.")
    keep = np.flatnonzero(~bad_rows).astype(np.int64)
    if not n_dropped:
        return columns, keep, 0
    cols = ", ".join(f"{name!r} ({int(mask.sum())})" for name, mask in masks.items()
                     if mask is not None)
    warnings.warn(
        f"dropped {n_dropped} of {n} rows with missing values in columns {cols}; "
        "the model uses the remaining complete rows.",
        UserWarning,
        stacklevel=3,
    )
    kept = {name: values.iloc[keep].reset_index(drop=True)
            for name, values in columns.items()}
    return kept, keep, n_dropped


def frame_of(columns: Mapping[str, pd.Series]) -> pd.DataFrame:
    """The columns as one DataFrame (a new one: changing it changes no design)."""
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(dict(columns), copy=True)


def columns_hash(columns: Mapping[str, pd.Series]) -> str:
    """SHA-256 hex digest of the columns: names, then values (numbers as float64, other
    columns as codes and level labels)."""
    # arrays are hashed through their buffers: the bytes of tobytes(), without the copy
    digest = hashlib.sha256()
    for col, values in columns.items():
        digest.update(f"\x00{col}\x00".encode())
        dtype = values.dtype
        if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
            digest.update(np.ascontiguousarray(values.to_numpy(dtype=np.float64)))
        else:
            codes, uniques = pd.factorize(values)
            digest.update(np.ascontiguousarray(codes, dtype=np.int64))
            digest.update("\x1f".join(str(u) for u in uniques).encode())
    return digest.hexdigest()
