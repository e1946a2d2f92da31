"""Turn the user's ``data`` argument into a DataFrame (a frame, a file or a bundled name)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vctest import datasets


def as_frame(data: object, *, argument: str = "data") -> pd.DataFrame:
    """Return ``data`` as a DataFrame.

    Parameters
    ----------
    data : pandas.DataFrame, str or os.PathLike
        A DataFrame; a path to a ``.csv`` or ``.parquet`` file; or the name of
        a bundled data set (see :func:`vctest.datasets.names`).
    argument : str
        Name used in error messages.

    Raises
    ------
    TypeError
        If ``data`` is none of these.
    ValueError
        If a path does not exist and is not a bundled name, or has an
        unsupported suffix.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if not isinstance(data, str | Path):
        raise TypeError(
            f"`{argument}` must be a pandas DataFrame, a path to a CSV/Parquet file or the "
            f"name of a bundled data set; got {type(data).__name__}."
        )
    path = Path(data)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ValueError(
                    f"`{argument}`: reading the Parquet file {str(path)!r} needs pyarrow, "
                    "which is not installed: pip install 'vctest[parquet]' (or save the data "
                    "as CSV)."
                ) from None
        raise ValueError(
            f"`{argument}`: cannot read {str(path)!r}; use a .csv or .parquet file."
        )
    available = datasets.names()
    if str(data).lower() in {n.lower() for n in available}:
        return datasets.load(str(data))
    raise ValueError(
        f"`{argument}`: {str(data)!r} is neither an existing file nor a bundled data set "
        f"(bundled: {', '.join(available)})."
    )
