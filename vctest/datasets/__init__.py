"""Classic mixed-model data sets from the R packages lme4 and nlme.

The CSV files ship inside the package; :func:`load` reads one and restores
R's column classes: factors become :class:`pandas.Categorical` with exactly
R's level order (which sets the reference level of treatment contrasts, e.g.
``Orthodont.Sex`` has levels ``Male, Female`` so the coefficient is
``SexFemale``), ordered factors become ordered categoricals, ``numeric``
columns become float64 and ``integer`` columns int64.

=============  =======  =====================================================
name           rows     classic model
=============  =======  =====================================================
Dyestuff       30       ``Yield ~ 1 + (1 | Batch)``
Dyestuff2      30       ``Yield ~ 1 + (1 | Batch)`` (boundary fit)
sleepstudy     180      ``Reaction ~ Days + (Days | Subject)``
Penicillin     144      ``diameter ~ 1 + (1 | plate) + (1 | sample)``
Pastes         60       ``strength ~ 1 + (1 | batch/cask)``
Orthodont      108      ``distance ~ age + Sex + (age | Subject)``
cbpp           56       ``cbind(incidence, size - incidence) ~ period + (1 | herd)``
grouseticks    403      ``TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)``
InstEval       73,421   ``y ~ service + (1 | s) + (1 | d) + (1 | dept)``
=============  =======  =====================================================
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["load", "names", "path"]

_PACKAGE = "vctest.datasets"
_LEVELS_FILE = "factor_levels.json"


@functools.cache
def _metadata() -> dict[str, Any]:
    """The parsed ``factor_levels.json`` (column classes and R level order)."""
    text = (resources.files(_PACKAGE) / "data" / _LEVELS_FILE).read_text(encoding="utf-8")
    meta: dict[str, Any] = json.loads(text)
    return meta


def names() -> list[str]:
    """Names of the bundled data sets.

    Returns
    -------
    list of str
        The names accepted by :func:`load` and :func:`path`, in R's spelling.

    Examples
    --------
    >>> from vctest import datasets
    >>> "sleepstudy" in datasets.names()
    True
    """
    return list(_metadata())


def _canonical(name: object) -> str:
    """Map ``name`` (any case) to the bundled spelling, or raise."""
    if not isinstance(name, str):
        raise TypeError(
            f"`name` must be a string naming a bundled data set; got {type(name).__name__}."
        )
    available = names()
    lookup = {n.lower(): n for n in available}
    key = name.strip().lower()
    if key not in lookup:
        raise ValueError(
            f"`name`: unknown data set {name!r}; the bundled data sets are: "
            f"{', '.join(available)}."
        )
    return lookup[key]


def path(name: str) -> Path:
    """File-system path of a bundled data set's CSV file.

    Parameters
    ----------
    name : str
        A name from :func:`names` (case-insensitive).

    Returns
    -------
    pathlib.Path
        Path of the CSV file inside the installed package.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not a bundled data set (the message lists them).

    Examples
    --------
    >>> from vctest import datasets
    >>> datasets.path("Dyestuff").name
    'Dyestuff.csv'
    """
    canonical = _canonical(name)
    return Path(str(resources.files(_PACKAGE) / "data" / f"{canonical}.csv"))


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set with R's column classes and factor levels.

    Parameters
    ----------
    name : str
        A name from :func:`names`, matched case-insensitively
        (``"sleepstudy"``, ``"Dyestuff"``, ``"instEval"``...).

    Returns
    -------
    pandas.DataFrame
        One row per observation.  Factor columns are :class:`pandas.Categorical`
        whose categories are R's levels in R's order (``ordered=True`` for R's
        ordered factors); numeric columns are float64, integer columns int64.
        The file is read once per process; every call returns a new copy, so
        changing it changes no later load.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not a bundled data set (the message lists them).

    Examples
    --------
    >>> from vctest import datasets
    >>> df = datasets.load("Orthodont")
    >>> df.shape
    (108, 4)
    >>> list(df["Sex"].cat.categories)
    ['Male', 'Female']
    >>> list(datasets.load("cbpp")["herd"].cat.categories[:3])
    ['1', '2', '3']
    """
    return _read(_canonical(name)).copy()


@functools.lru_cache(maxsize=16)
def _read(canonical: str) -> pd.DataFrame:
    """Read the bundled data set ``canonical`` (cached: callers get copies, see :func:`load`)."""
    meta = _metadata()[canonical]
    classes: dict[str, str] = meta["column_class"]
    factor_cols = [c for c, cls in classes.items() if cls in ("factor", "ordered")]
    # Factor columns are read as text so that "501" or "01" keep their spelling
    # and R's level order can be imposed below.
    frame = pd.read_csv(
        path(canonical),
        dtype=dict.fromkeys(factor_cols, str),
        keep_default_na=False,
        na_values={c: ["NA"] for c in classes},
    )
    for column, cls in classes.items():
        values = frame[column]
        if column in meta.get("factors", {}):
            spec = meta["factors"][column]
            cat = pd.Categorical(
                values, categories=list(spec["levels"]), ordered=bool(spec["ordered"])
            )
            unknown = (cat.codes < 0) & values.notna().to_numpy()
            if unknown.any():
                bad = sorted(set(values[unknown]))[:5]
                raise ValueError(
                    f"bundled data set {canonical!r} is corrupt: column {column!r} has "
                    f"values {bad} that are not among its R levels; reinstall vctest."
                )
            frame[column] = cat
        elif cls == "integer":
            frame[column] = values.astype(np.int64)
        elif cls == "numeric":
            frame[column] = values.astype(np.float64)
    return frame
