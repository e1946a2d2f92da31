"""Turn a parsed formula and a DataFrame into the numeric design of a mixed model.

:func:`build_design` is the one entry point.  It validates the data once,
drops incomplete rows (with a warning, like R's ``na.omit`` but never
silently), builds the fixed-effect matrix with formulaic using R's defaults
(treatment contrasts with the first level as reference, polynomial contrasts
for ordered factors, R-style column names) and one :class:`RandomBlock` per
random-effects term, ordered as lme4 orders them
(:func:`~vctest.formula.rsemantics.lme4_term_order`: as written when the
numbers of levels never increase, otherwise by decreasing number of levels
with ties in reverse written order).  Variables are evaluated on all rows
before incomplete rows are dropped, as R's model frame does.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from vctest.formula.coding import (
    as_factor,
    factor_codes,
    factor_response,
    is_factor_like,
    prior_weights,
    with_weights,
)
from vctest.formula.columns import check_covariates, check_fixed_size
from vctest.formula.evaluate import (
    evaluate,
    model_matrix,
    python_expr,
    required_columns,
)
from vctest.formula.parse import ParsedFormula, RandomTerm, parse_formula
from vctest.formula.rsemantics import grouping_values, lme4_term_order
from vctest.formula.smooth_design import SmoothBlock, smooth_blocks
from vctest.formula.used import columns_hash, drop_missing, frame_of, take_columns

__all__ = ["Design", "RandomBlock", "build_design", "lhs_column_names"]

#: Relative tolerance for a fixed-effect column to count as a linear
#: combination of the columns before it (R's ``lm`` uses 1e-7).
RANK_TOL = 1e-7


@dataclass(frozen=True, eq=False)
class RandomBlock:
    """The rows of one random-effects term.

    Attributes
    ----------
    term : RandomTerm
        The parsed term.
    levels : tuple of str
        Labels of the grouping factor's levels present in the data, in R's
        order (``"b1:a1"`` style for interactions, first factor slowest).
    codes : ndarray of int64, shape (n,)
        Level of each row, ``0 .. n_levels - 1``.
    columns : ndarray of float64, shape (n, k)
        Per-row values of the term's model matrix (a column of ones for the
        intercept, then the covariates; factors expanded with R's contrasts).
    column_names : tuple of str
        R-style names of ``columns``, e.g. ``("(Intercept)", "Days")``.
    column_terms : tuple of str
        The term of the left-hand side each column belongs to, written as
        :func:`~vctest.formula.evaluate.formula_terms` writes it (``"1"`` for the intercept,
        ``"Sex"`` for ``SexFemale``); empty if unknown.
    """

    term: RandomTerm
    levels: tuple[str, ...]
    codes: np.ndarray
    columns: np.ndarray
    column_names: tuple[str, ...]
    column_terms: tuple[str, ...] = ()

    @property
    def n_levels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def k(self) -> int:
        """Random effects per level (columns of the term)."""
        return int(self.columns.shape[1])

    @property
    def name(self) -> str:
        """lme4's name of the grouping factor, e.g. ``"cask:batch"``."""
        return self.term.group


class _QRMemo:
    """``numpy.linalg.qr(X)`` (reduced), computed once for the ``X`` it is asked about.

    A design and the designs derived from it by :func:`dataclasses.replace`
    (the null model of a test: same X, fewer random-effects blocks) share one
    memo, so the rank check, the fit of both models and the exact test's
    spectrum factorise a large X once.  ``X`` is compared by identity: a
    design with another X gets its own factorisation.  The memo is not
    pickled (a design sent to another process factorises again if asked).
    """

    def __init__(self) -> None:
        self._x: np.ndarray | None = None
        self._qr: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._x is not x or self._qr is None:
            q, r = np.linalg.qr(x)
            q.flags.writeable = r.flags.writeable = False  # shared: nobody may change them
            self._x, self._qr = x, (q, r)
        return self._qr

    def __reduce__(self) -> tuple[type, tuple]:
        return (_QRMemo, ())


@dataclass(frozen=True, eq=False)
class Design:
    """Numeric design of a mixed model.

    Attributes
    ----------
    formula : ParsedFormula
        The parsed formula.
    X : ndarray of float64, shape (n, p)
        Fixed-effect model matrix.
    fixed_names : tuple of str
        R-style names of the columns of ``X``.
    y : ndarray of float64, shape (n,)
        Response; for ``cbind(s, f)`` the proportion ``s / (s + f)``.
    weights : ndarray of float64 or None
        For ``cbind`` responses the number of trials ``s + f``, else None.
    blocks : tuple of RandomBlock
        Random-effects terms in lme4's order (see the module docstring).
    n_dropped : int
        Rows dropped for missing values.
    row_index : ndarray of int64
        Positions in the input frame of the rows used.
    data_hash : str
        SHA-256 hex digest of the used columns on the used rows (computed on
        first access, as ``frame``).
    frame : pandas.DataFrame or None
        The used columns on the used rows (for refits on transformed data,
        e.g. rescaled predictors); a new frame, made on first access from the
        columns taken from the data when the design was built.
    prior_weights : ndarray of float64 or None
        The ``weights=`` given to :func:`build_design` on the rows used
        (positive and finite), else None.  Gaussian: the residual variance of
        row i is ``sigma^2 / w_i``; binomial: numbers of trials.
    response_levels : tuple of str or None
        For a factor, boolean or two-valued text response, its levels; ``y``
        is then 0 for the first level ("failure", as R) and 1 otherwise.
    smooths : tuple of SmoothBlock
        Smooth terms ``s(x)``: their null-space columns are the last columns
        of ``X`` (named ``"s(x)Fx1"``), their penalised parts one iid
        random-effects block each (:mod:`vctest.formula.smooth`).
    """

    formula: ParsedFormula
    X: np.ndarray
    fixed_names: tuple[str, ...]
    y: np.ndarray
    weights: np.ndarray | None
    blocks: tuple[RandomBlock, ...]
    n_dropped: int
    row_index: np.ndarray
    prior_weights: np.ndarray | None = field(default=None, repr=False)
    response_levels: tuple[str, ...] | None = None
    smooths: tuple[SmoothBlock, ...] = ()
    _qr_memo: _QRMemo = field(default_factory=_QRMemo, repr=False)
    _columns: Mapping[str, pd.Series] | None = field(default=None, repr=False)

    @cached_property
    def frame(self) -> pd.DataFrame | None:
        """The used columns on the used rows (made on first access; a fit does not need it)."""
        return None if self._columns is None else frame_of(self._columns)

    @cached_property
    def data_hash(self) -> str:
        """SHA-256 hex digest of the used columns on the used rows (on first access)."""
        return columns_hash(self._columns or {})

    def qr(self) -> tuple[np.ndarray, np.ndarray]:
        """``numpy.linalg.qr(X)`` (reduced ``Q`` and ``R``), computed once.

        Shared with the designs derived from this one that keep its ``X`` (the
        null model of a test); the arrays are read-only.
        """
        return self._qr_memo(self.X)

    @property
    def n(self) -> int:
        """Number of observations used."""
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        """Number of fixed-effect columns."""
        return int(self.X.shape[1])


# -- validation and columns ----------------------------------------------------------------


def _unknown_column(name: str, data: pd.DataFrame, what: str) -> ValueError:
    available = [str(c) for c in data.columns]
    close = difflib.get_close_matches(name, available, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"column {name!r} used in {what} is not in `data`.{hint} Available columns: "
        f"{', '.join(available)}."
    )


def _used_columns(parsed: ParsedFormula, data: pd.DataFrame) -> tuple[list[str], list[str]]:
    """All data columns the formula uses, and those used outside the groupings."""
    resp = parsed.response
    wanted: list[tuple[str, str]] = []
    for part in resp.parts:
        if resp.kind == "column":
            wanted.append((part, f"the response {resp.text!r}"))
        else:
            for v in required_columns(python_expr(part), f"the response {resp.text!r}, part",
                                data.columns):
                wanted.append((v, f"the response {resp.text!r}"))
    for v in required_columns(parsed.fixed, "the fixed-effect part", data.columns):
        wanted.append((v, f"the fixed-effect part {parsed.fixed!r}"))
    for term in parsed.random:
        if term.covariates:
            for v in required_columns(" + ".join(term.covariates), f"term {term.source}",
                                data.columns):
                wanted.append((v, f"the random-effects term {term.source!r}"))
    for sm in parsed.smooths:
        wanted.append((sm.variable, f"the smooth term {sm.source!r}"))
        if sm.by is not None:
            wanted.append((sm.by, f"the by variable of the smooth term {sm.source!r}"))
    n_model = len(wanted)
    for term in parsed.random:
        for g in term.group_factors:
            wanted.append((g, f"the grouping of {term.source!r}"))
    used: list[str] = []
    for name, what in wanted:
        if name not in data.columns:
            raise _unknown_column(name, data, what)
        if name not in used:
            used.append(name)
    model = list(dict.fromkeys(name for name, _ in wanted[:n_model]))
    dup = [] if data.columns.is_unique else [c for c in used
                                              if int((data.columns == c).sum()) > 1]
    if dup:
        raise ValueError(f"`data` has several columns named {dup[0]!r}; rename them so that "
                         "each column the formula uses is unique.")
    return used, model


def _formula_frame(frame: Mapping[str, pd.Series] | pd.DataFrame,
                   rows: np.ndarray | None = None) -> tuple[dict[str, Any], frozenset[str]]:
    """Columns for formulaic: text/bool columns as R-ordered factors, numbers as float64
    arrays; and the names of the ordered factors.

    Factor levels are those present in ``rows`` (the rows the model uses).
    """
    out: dict[str, Any] = {}
    ordered = set()
    for col, values in frame.items():
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(dtype) \
                or pd.api.types.is_bool_dtype(dtype):
            cat = as_factor(grouping_values(values, col, "factor column"), rows)
            if cat.ordered:
                ordered.add(col)
            out[col] = cat
        else:
            out[col] = values.to_numpy(dtype=np.float64)
    return out, frozenset(ordered)


def _check_factor_levels(frame: Mapping[str, Any], formula: str) -> None:
    """R refuses contrasts for a factor with one level; so do we (formulaic drops it)."""
    for col, values in frame.items():
        if isinstance(values, pd.Categorical) and len(values.categories) < 2:
            raise ValueError(
                f"factor {col!r} used in {formula!r} has only one level "
                f"{list(values.categories)} in the rows used, so it has no contrasts; "
                "remove it from the formula."
            )


def _response(parsed: ParsedFormula, frame: Mapping[str, pd.Series],
              model_frame: Mapping[str, Any], ordered: frozenset[str], rows: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    resp = parsed.response
    parts = []
    for part in resp.parts:
        if resp.kind == "column" or part in frame:
            values = frame[part]
            if resp.kind == "column" and is_factor_like(values):
                y, levels = factor_response(part, values)
                return y, None, levels
            if isinstance(values.dtype, pd.CategoricalDtype) or not (
                pd.api.types.is_numeric_dtype(values.dtype)
            ):
                raise ValueError(
                    f"the response {part!r} is not numeric (dtype {values.dtype}); convert "
                    f"it, e.g. data[{part!r}] = pd.to_numeric(data[{part!r}])."
                )
            parts.append(np.asarray(values, dtype=np.float64))
        else:
            cols, _ = model_matrix(python_expr(part), model_frame, ordered, "the response",
                                    rows)
            if cols.shape[1] != 1:
                raise ValueError(f"the response {part!r} is not numeric; convert it to "
                                 "numbers before fitting.")
            parts.append(cols[:, 0].copy())
    if resp.kind != "cbind":
        y = np.ascontiguousarray(parts[0])
        return y, None, None
    successes, failures = parts
    for part, values in zip(resp.parts, parts, strict=True):
        if (values < 0).any():
            raise ValueError(f"{resp.text!r}: {part!r} has negative values; cbind() needs "
                             "counts of successes and failures (>= 0).")
    trials = successes + failures
    y = np.divide(successes, trials, out=np.zeros_like(trials), where=trials > 0)
    return np.ascontiguousarray(y), np.ascontiguousarray(trials), None


def _rank_check(X: np.ndarray, names: tuple[str, ...], qr: _QRMemo) -> None:
    """Name the columns of X that are linear combinations of earlier ones."""
    if X.shape[1] == 0:
        return
    r = qr(X)[1]  # the R of mode="r", and Q kept for the fits
    norms = np.linalg.norm(X, axis=0)
    diag = np.abs(np.diag(r))[: X.shape[1]]
    if diag.shape[0] < X.shape[1]:  # more columns than rows
        diag = np.concatenate([diag, np.zeros(X.shape[1] - diag.shape[0])])
    dependent = [names[j] for j in range(X.shape[1]) if diag[j] <= RANK_TOL * norms[j]
                 or norms[j] == 0.0]
    if dependent:
        raise ValueError(
            f"the fixed-effect matrix is rank deficient: column(s) "
            f"{', '.join(repr(d) for d in dependent)} are linear combinations of earlier "
            "columns; drop them from the fixed part of the formula."
        )


def _group(term: RandomTerm, frame: Mapping[str, pd.Series], n: int,
           cache: dict[str, tuple[np.ndarray, tuple[str, ...]]]
           ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and level labels of a term's grouping factor (interactions as in R's ``:``)."""
    factors = []
    for g in term.group_factors:
        if g not in cache:
            cache[g] = factor_codes(grouping_values(frame[g], g))
        factors.append(cache[g])
    if len(factors) == 1:
        return factors[0]
    combined = np.zeros(n, dtype=np.int64)
    for codes, labels in factors:
        combined = combined * len(labels) + codes
    present, codes = np.unique(combined, return_inverse=True)
    digits = []
    for _, labels in reversed(factors):
        size = len(labels)
        digits.append(np.asarray(labels, dtype=object)[present % size])
        present = present // size
    labels = tuple(":".join(row) for row in zip(*reversed(digits), strict=True))
    return codes.astype(np.int64), labels


def lhs_column_names(lhs: str, frame: pd.DataFrame) -> tuple[str, ...]:
    """R's names of the columns a random term's left-hand side gives on ``frame``.

    ``frame`` holds the data columns (a :class:`Design`'s ``frame``).  Two
    left-hand sides with the same names are coded the same way: this tells
    whether dropping some terms of a random term leaves the others as they
    are (``(1 + Sex | g)`` without its intercept does not: R codes ``Sex``
    with a column for every level then).

    Examples
    --------
    >>> from vctest import datasets
    >>> frame = datasets.load("Orthodont")
    >>> lhs_column_names("1 + Sex", frame), lhs_column_names("0 + Sex", frame)
    (('(Intercept)', 'SexFemale'), ('SexMale', 'SexFemale'))
    """
    model_frame, ordered = _formula_frame(frame)
    return evaluate(lhs, model_frame, ordered, "the left-hand side")[1]


def _blocks(parsed: ParsedFormula, frame: Mapping[str, Any], ordered: frozenset[str],
            factors: Mapping[str, pd.Series], rows: np.ndarray) -> tuple[RandomBlock, ...]:
    """One block per random term (``frame``: all rows; ``factors``: the rows used)."""
    n = rows.size
    cache: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
    lhs_cache: dict[str, tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]] = {}
    blocks = []
    for term in parsed.random:
        codes, levels = _group(term, factors, n, cache)
        if len(levels) < 2:
            raise ValueError(
                f"the grouping factor {term.group!r} of {term.source!r} has only one level "
                f"({levels[0]!r}) in the rows used; a variance component needs at least two "
                "groups. Remove the term or check the grouping column."
            )
        if not term.covariates:
            columns, names, terms = np.ones((n, 1)), ("(Intercept)",), ("1",)
        else:
            if term.lhs not in lhs_cache:
                lhs_cache[term.lhs] = evaluate(
                    term.lhs, frame, ordered, f"the left-hand side of {term.source!r}:", rows)
            columns, names, terms = lhs_cache[term.lhs]
        q = len(levels) * columns.shape[1]
        if q >= n:
            raise ValueError(
                f"term {term.label} has {q} random effects for {n} observations; the "
                "random-effects variance and the residual variance are not identifiable. "
                "Remove the term or use a coarser grouping factor."
            )
        blocks.append(RandomBlock(
            term=term, levels=levels, codes=np.ascontiguousarray(codes),
            columns=np.ascontiguousarray(columns, dtype=np.float64), column_names=names,
            column_terms=terms))
    return tuple(blocks[i] for i in lme4_term_order([b.n_levels for b in blocks]))


def _build_design_iv(formula: object, data: object) -> tuple[ParsedFormula, pd.DataFrame]:
    if isinstance(formula, str):
        parsed = parse_formula(formula)
    elif isinstance(formula, ParsedFormula):
        parsed = formula
    else:
        raise TypeError(f"`formula` must be a string such as 'y ~ x + (1 | g)' or a "
                        f"ParsedFormula; got {type(formula).__name__}.")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}. "
                        "Convert it with pandas.DataFrame(...) first.")
    if len(data) == 0:
        raise ValueError("`data` has no rows; pass a DataFrame with observations.")
    return parsed, data


def build_design(formula: str | ParsedFormula, data: pd.DataFrame, *,
                 weights: str | Any = None) -> Design:
    """Build the numeric design of a mixed model from a formula and a DataFrame.

    Parameters
    ----------
    formula : str or ParsedFormula
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
        The data.  Factor columns may be categorical (their category order is
        R's level order; the first is the reference level), text (levels
        sorted) or boolean.  Grouping columns may also be integers.
    weights : str or array_like, optional
        Prior weights, as lme4's ``weights=``: a column of ``data`` or one
        positive value per row of ``data``.  Rows with a missing weight are
        dropped like other incomplete rows.

    Returns
    -------
    Design
        ``X``, ``y`` (and binomial ``weights``), the random-effects blocks in
        lme4's order and provenance (rows used, data hash).

    Raises
    ------
    TypeError
        If ``formula`` or ``data`` has the wrong type.
    ValueError
        If the formula names an unknown column, the response is not numeric,
        a column has infinite values, a grouping factor has one level, a term
        has as many random effects as observations, ``X`` is rank deficient,
        or no complete rows remain.  Each message says what to change.

    Warns
    -----
    UserWarning
        When rows with missing values are dropped (count and columns given).

    Examples
    --------
    >>> from vctest import datasets
    >>> from vctest.formula import build_design
    >>> d = build_design("distance ~ age + Sex + (age | Subject)", datasets.load("Orthodont"))
    >>> d.fixed_names
    ('(Intercept)', 'age', 'SexFemale')
    >>> [(b.name, b.n_levels, b.k) for b in d.blocks]
    [('Subject', 27, 2)]
    >>> d = build_design("strength ~ 1 + (1 | batch/cask)", datasets.load("Pastes"))
    >>> [(b.name, b.n_levels) for b in d.blocks]
    [('cask:batch', 30), ('batch', 10)]
    """
    parsed, data = _build_design_iv(formula, data)
    used, model_columns = _used_columns(parsed, data)
    if weights is None:
        columns = take_columns(data, used)
    else:
        wframe, wname, what = with_weights(data, used, weights)
        columns = take_columns(wframe, list(wframe.columns))
    frame, row_index, n_dropped = drop_missing(columns, len(data), parsed.text)
    prior = None if weights is None else prior_weights(frame, wname, what)
    check_covariates({c: frame[c] for c in model_columns}, parsed.text)
    # R's model frame: variables (scale(x), poly(x, 2), ...) on all rows, then the
    # incomplete rows dropped
    model_frame, ordered = _formula_frame({c: columns[c] for c in model_columns}, row_index)
    y, trials, levels = _response(parsed, frame, model_frame, ordered, row_index)
    if trials is None and y.size and np.ptp(y) == 0:
        raise ValueError(f"the response {parsed.response.text!r} is constant ({y[0]:g}) in "
                         "the rows used; there is no variation to model.")
    _check_factor_levels(model_frame, parsed.text)
    if parsed.fixed.strip() == "1":
        X, fixed_names = np.ones((row_index.size, 1)), ("(Intercept)",)
    else:
        X, fixed_names = model_matrix(parsed.fixed, model_frame, ordered,
                                       "the fixed-effect part", row_index)
    smooths: tuple[SmoothBlock, ...] = ()
    if parsed.smooths:
        smooths, xs, snames = smooth_blocks(parsed.smooths, frame_of(frame), X.shape[1])
        X, fixed_names = np.hstack([X, xs]), fixed_names + snames
    check_fixed_size(X.shape[1], X.shape[0], parsed.fixed)
    X = np.ascontiguousarray(X, dtype=np.float64)
    qr_memo = _QRMemo()
    _rank_check(X, fixed_names, qr_memo)
    blocks = _blocks(parsed, model_frame, ordered, frame, row_index)
    return Design(
        formula=parsed,
        X=X,
        fixed_names=fixed_names,
        y=y,
        weights=trials,
        blocks=blocks,
        n_dropped=n_dropped,
        row_index=row_index,
        prior_weights=prior,
        response_levels=levels,
        _qr_memo=qr_memo,
        smooths=smooths,
        _columns=frame,
    )

