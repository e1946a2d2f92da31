"""Validation of design-matrix input: y, X, Z, sqrt_sigma and the restricted columns.

Run once by :func:`vctest.api.exact_design.design_test` before anything is
fitted.  Every error names the argument and says what to do; rows with a
missing value (NaN) in ``y``, ``X`` or ``Z`` are dropped with a warning that
says how many.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

#: Relative tolerance of the rank check of X (lme4's ``rankMatrix`` default is of this order).
RANK_TOL = 1e-7


@dataclass(frozen=True, eq=False)
class DesignArrays:
    """Validated design-matrix input.

    Attributes
    ----------
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
        Full column rank.
    Z : ndarray, shape (n, K)
    Zt : ndarray, shape (n, K)
        ``Z @ sqrt_sigma.T`` (``Z`` itself without ``sqrt_sigma``).
    x_names : tuple of str
        Names of the columns of X (a DataFrame's, else ``x0``, ``x1``, ...).
    restricted : tuple of int
        Positions in X of the fixed effects that are also 0 under H0.
    n_dropped : int
        Rows dropped for missing values.
    correlated : bool
        Whether a ``sqrt_sigma`` was given.
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    Zt: np.ndarray
    x_names: tuple[str, ...]
    restricted: tuple[int, ...]
    n_dropped: int
    correlated: bool


def _numeric(value: Any, name: str) -> np.ndarray:
    if isinstance(value, str) or value is None:
        raise TypeError(f"`{name}` must be a numeric array; got {type(value).__name__}.")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a numeric array (numbers only; encode a factor "
                        "as indicator columns first).") from None
    if np.any(np.isinf(arr)):
        raise ValueError(f"`{name}` contains infinite values; remove or fix those rows.")
    return arr


def _matrix(value: Any, name: str, n: int) -> np.ndarray:
    arr = _numeric(value, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a matrix (2-D); got {arr.ndim} dimensions.")
    if arr.shape[0] != n:
        raise ValueError(f"`{name}` has {arr.shape[0]} rows but `y` has {n} values; give one "
                         "row per observation.")
    return arr


def _names(value: Any, p: int) -> tuple[str, ...]:
    cols = getattr(value, "columns", None)
    if cols is not None and len(cols) == p:
        return tuple(str(c) for c in cols)
    return tuple(f"x{j}" for j in range(p))


def _restricted(q: Any, names: tuple[str, ...]) -> tuple[int, ...]:
    """``q``: a count (the last q columns of X) or the columns themselves (positions or names)."""
    p = len(names)
    if isinstance(q, bool):
        raise TypeError("`q` must be an integer count or a sequence of columns of X; got bool.")
    if isinstance(q, numbers.Integral):
        if not 0 <= int(q) <= p:
            raise ValueError(f"`q` must be between 0 and the {p} columns of X; got {q}.")
        return tuple(range(p - int(q), p))
    if isinstance(q, str) or not isinstance(q, Sequence | np.ndarray):
        raise TypeError("`q` must be an integer (the last q columns of X) or a list of "
                        f"columns of X (positions or names); got {type(q).__name__}.")
    out = []
    for c in q:
        if isinstance(c, numbers.Integral) and not isinstance(c, bool):
            if not -p <= int(c) < p:
                raise ValueError(f"`q` names column {c}, but X has {p} columns "
                                 f"(0 to {p - 1}).")
            out.append(int(c) % p)
        elif isinstance(c, str):
            if c not in names:
                raise ValueError(f"`q` names column {c!r}, which is not a column of X "
                                 f"({', '.join(names)}).")
            out.append(names.index(c))
        else:
            raise TypeError(f"`q` lists {c!r}; give column positions (int) or names (str).")
    if len(set(out)) != len(out):
        raise ValueError("`q` lists a column of X twice.")
    return tuple(sorted(out))


def _drop_missing(y: np.ndarray, X: np.ndarray, Z: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    ok = ~(np.isnan(y) | np.isnan(X).any(axis=1) | np.isnan(Z).any(axis=1))
    dropped = int(ok.size - ok.sum())
    if dropped:
        from vctest.api._pipeline import _stacklevel

        warnings.warn(f"dropped {dropped} of {ok.size} rows with missing values (NaN) in `y`, "
                      "`X` or `Z`.", UserWarning, stacklevel=_stacklevel())
    return y[ok], X[ok], Z[ok], dropped


def _check_rank(X: np.ndarray, names: tuple[str, ...]) -> None:
    n, p = X.shape
    if p == 0:
        return
    if n <= p:
        raise ValueError(f"`X` has {p} columns but only {n} rows; a model needs more "
                         "observations than fixed effects.")
    _, r, piv = scipy.linalg.qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    rank = int(np.sum(d > RANK_TOL * d[0])) if d[0] > 0 else 0
    if rank < p:
        bad = ", ".join(names[j] for j in sorted(piv[rank:]))
        raise ValueError(f"`X` is rank deficient (rank {rank} < {p} columns): {bad} "
                         "is a linear combination of the other columns; drop it (lme4 "
                         "would drop it for you, vctest asks you to decide).")


def check_design(y: Any, X: Any, Z: Any, *, sqrt_sigma: Any = None, q: Any = 0,
                 reml: bool = True) -> DesignArrays:
    """Validate and clean the design-matrix input (see the module doc).

    Raises
    ------
    TypeError
        For non-numeric input or a ``q`` that is neither a count nor a list of columns.
    ValueError
        For wrong shapes, infinite values, a rank-deficient X, a bad
        ``sqrt_sigma``, restricted columns asked of the RLRT, or a design
        whose null distribution is not defined.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 30)
    >>> d = check_design(np.sin(4 * x), np.column_stack([np.ones(30), x]),
    ...                  np.maximum(x[:, None] - [0.3, 0.6], 0), q=1, reml=False)
    >>> d.X.shape, d.Z.shape, d.restricted
    ((30, 2), (30, 2), (1,))
    """
    yv = _numeric(y, "y")
    if yv.ndim == 2 and 1 in yv.shape:
        yv = yv.reshape(-1)
    if yv.ndim != 1:
        raise ValueError(f"`y` must be a vector (one response per row); got shape {yv.shape}.")
    n = yv.size
    Xv = _matrix(X, "X", n)
    Zv = _matrix(Z, "Z", n)
    if Zv.shape[1] == 0:
        raise ValueError("`Z` has no columns; give the random-effect design of the component.")
    names = _names(X, Xv.shape[1])
    restricted = _restricted(q, names)
    if reml and restricted:
        raise ValueError("restricted fixed effects (`q`) need the ML likelihood-ratio test: "
                         "REML criteria of models with different fixed effects are not "
                         "comparable. Use vctest.exact_lrt(..., q=...).")
    yv, Xv, Zv, dropped = _drop_missing(yv, Xv, Zv)
    _check_rank(Xv, names)
    Zt = Zv
    if sqrt_sigma is not None:
        k = Zv.shape[1]
        r = _numeric(sqrt_sigma, "sqrt_sigma")
        if r.ndim != 2 or r.shape != (k, k):
            raise ValueError(f"`sqrt_sigma` must be a {k} x {k} matrix (one row and column per "
                             f"column of Z); got shape {r.shape}.")
        if np.any(np.isnan(r)):
            raise ValueError("`sqrt_sigma` contains NaN.")
        Zt = Zv @ r.T
    return DesignArrays(y=yv, X=Xv, Z=Zv, Zt=Zt, x_names=names, restricted=restricted,
                        n_dropped=dropped, correlated=sqrt_sigma is not None)


def check_spectrum(n: int, p: int, k_eff: int, fitted_exactly: bool) -> None:
    """Refuse designs whose exact null (or fit) is not defined."""
    if k_eff == 0:
        raise ValueError("`Z` lies in the column space of `X`: the random effect is "
                         "confounded with the fixed effects, so its variance cannot be "
                         "tested. Remove from Z what X already fits (e.g. project Z onto "
                         "the orthogonal complement of X) or drop columns of X.")
    if n - p - k_eff < 1:
        raise ValueError(f"n - p - K = {n} - {p} - {k_eff} < 1: the random effect has as "
                         "many free directions as there are residual degrees of freedom, "
                         "so the residual variance is not identified. Use fewer columns in "
                         "`Z` (fewer knots) or more observations.")
    if fitted_exactly:
        raise ValueError("`y` is fitted exactly by `X` (zero residual sum of squares); "
                         "there is no variance to test.")
