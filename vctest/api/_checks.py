"""Argument checks shared by the public functions (each input is validated once)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vctest.model.glm import family_iv
from vctest.nulls.executor import BACKENDS

#: The families with a GLMM engine (Laplace fits); "gaussian" is the LMM.
GLMM_FAMILIES = ("binomial", "poisson")

#: The reference distributions of ``vc_test``.
METHODS = ("exact", "asymptotic", "bootstrap")


def _positive_int(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | np.integer)
            and value >= 1)


def check_threads(threads: object) -> None:
    """``threads`` is a positive integer or None."""
    if threads is not None and not _positive_int(threads):
        raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")


def check_reml(reml: object) -> None:
    """``reml`` is a bool."""
    if not isinstance(reml, bool):
        raise TypeError(f"`reml` must be True or False; got {reml!r}.")


def check_test_args(term: object, method: object, nsim: object, reml: object,
                    threads: object) -> None:
    """Validate the arguments of :func:`vctest.vc_test` that say what to test."""
    if not isinstance(term, str):
        raise TypeError(f"`term` must be a string such as '(1 | g)'; got {type(term).__name__}.")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    if nsim is not None and not _positive_int(nsim):
        raise ValueError(f"`nsim` must be a positive integer or None; got {nsim!r}.")
    check_reml(reml)
    check_threads(threads)


def check_bootstrap_args(nsim: object, threads: object, progress: object,
                         stop_alpha: object, stop_error: object) -> None:
    """Validate the bootstrap settings shared by :func:`vctest.compare` and ``vc_test``."""
    if not _positive_int(nsim):
        raise ValueError(f"`nsim` must be a positive integer; got {nsim!r}.")
    check_threads(threads)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"`progress` must be True, False or None; got {progress!r}.")
    if stop_alpha is not None and not (isinstance(stop_alpha, float | int)
                                       and 0 < stop_alpha < 1):
        raise ValueError(f"`stop_alpha` must be in (0, 1) or None; got {stop_alpha!r}.")
    if not (isinstance(stop_error, float | int) and 0 < stop_error < 1):
        raise ValueError(f"`stop_error` must be in (0, 1); got {stop_error!r}.")


def check_backend(backend: object, keep_null: object = None) -> None:
    """Validate ``backend`` (and ``keep_null``)."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}; got {backend!r}.")
    if keep_null is not None and not isinstance(keep_null, bool):
        raise TypeError(f"`keep_null` must be True, False or None; got {keep_null!r}.")


def check_family(family: object, link: object, offset: object = None) -> None:
    """Validate ``family`` (any of vctest's), and ``link`` and ``offset`` (GLMMs only)."""
    if family not in ("gaussian", *GLMM_FAMILIES):
        raise ValueError(f"`family` must be 'gaussian', 'binomial' or 'poisson'; got "
                         f"{family!r}.")
    if family == "gaussian":
        if link is not None:
            raise ValueError("`link` applies to family='binomial' or 'poisson' only; a "
                             "Gaussian mixed model has the identity link.")
        if offset is not None:
            raise ValueError("`offset` applies to family='binomial' or 'poisson' only.")
    else:
        family_iv(family, link)


def offset_values(offset: Any, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray | None:
    """The offset on the rows a model uses (``rows``: their positions in ``frame``).

    ``offset`` is a column name of ``frame`` or one value per row of
    ``frame`` (before rows with missing values were dropped).
    """
    if offset is None:
        return None
    if isinstance(offset, str):
        if offset not in frame.columns:
            raise ValueError(f"`offset` column {offset!r} is not in the data; columns are "
                             f"{list(frame.columns)[:20]}.")
        values = pd.to_numeric(frame[offset], errors="coerce").to_numpy(dtype=float)
        name = f"`offset` column {offset!r}"
    else:
        try:
            values = np.asarray(offset, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`offset` must be a column name or numeric values; got "
                            f"{type(offset).__name__}.") from exc
        if values.size != len(frame):
            raise ValueError(f"`offset` must have one value per row of the data ({len(frame)}); "
                             f"got {values.size}.")
        name = "`offset`"
    used = values[rows]
    if not np.all(np.isfinite(used)):
        bad = int(np.sum(~np.isfinite(used)))
        raise ValueError(f"{name} has missing or non-finite values on {bad} of the rows "
                         "used; fix them or drop those rows first.")
    return used
