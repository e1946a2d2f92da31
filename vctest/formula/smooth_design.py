"""Smooth terms in a design: ``s()``'s arguments, one block per smooth, ``by=`` variables.

:mod:`vctest.formula.smooth` builds one basis; this module reads the term
(``s(x, k=10, bs="cr", by=z)``), builds its blocks on the rows used and
appends their null-space columns to X.  A numeric ``by`` multiplies the
smooth's rows by z (a varying coefficient; not constrained, so its null space
``z, z x`` is two fixed columns, as mgcv's); a factor ``by`` makes one smooth
per level (knots from all rows and, as mgcv's, each level's copy constrained
like the smooth without ``by``, to sum to zero over all rows; each with its own
variance) -- include the factor's main effect in the formula, as with mgcv.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vctest.formula.coding import as_factor, is_factor_like
from vctest.formula.smooth import (
    DEFAULT_K,
    SMOOTH_BASES,
    SmoothBasis,
    SmoothTerm,
    build_smooth,
)

__all__ = ["SmoothBlock", "find_smooth", "refuse_smooths", "smooth_blocks", "smooth_from_args"]


def _is_name(text: str) -> bool:
    if text.startswith("`") and text.endswith("`") and len(text) > 2:
        return True
    return text.replace(".", "_").replace("_", "a").isalnum() and not text[0].isdigit()


def smooth_from_args(args: list[tuple[str | None, str]], source: str) -> SmoothTerm:
    """The :class:`SmoothTerm` of ``s(...)`` from its arguments ``(name or None, text)``.

    Raises
    ------
    ValueError
        For anything but ``s(column, k=<int>, bs="cr"|"tp"|"ps", by=column)``;
        the message says what is supported.

    Examples
    --------
    >>> from vctest.formula.smooth_design import smooth_from_args
    >>> smooth_from_args([(None, "times"), ("k", "8"), ("bs", '"cr"')], "s(times)").k
    8
    """
    what = f"smooth term {source!r}"
    positional = [text for name, text in args if name is None]
    named = {name: text for name, text in args if name is not None}
    if len(positional) != 1 or not _is_name(positional[0]):
        raise ValueError(
            f"{what}: vctest smooths one numeric column, written as its name, e.g. "
            "s(x, k = 10, bs = 'cr'); multi-dimensional smooths and expressions inside s() "
            "are not supported (compute the column first).")
    variable = positional[0].strip("`")
    by = named.get("by")
    if by is not None and not _is_name(by):
        raise ValueError(f"{what}: by = {by} must name a column of the data (numeric: a "
                         "varying coefficient; factor: one smooth per level).")
    unknown = sorted(set(named) - {"k", "bs", "by"})
    if unknown:
        raise ValueError(f"{what}: argument(s) {', '.join(unknown)} of mgcv's s() are not "
                         "supported; vctest takes k, bs and by.")
    k = DEFAULT_K
    if "k" in named:
        try:
            k = int(named["k"])
        except ValueError:
            raise ValueError(f"{what}: k must be a whole number such as 10; got "
                             f"{named['k']!r}.") from None
        if k < 4:
            raise ValueError(f"{what}: k = {k} is too small; a penalised spline needs k >= 4.")
    bs = "tp"  # mgcv's default
    if "bs" in named:
        bs = named["bs"].strip().strip("'\"")
        if bs not in SMOOTH_BASES:
            raise ValueError(
                f"{what}: bs = {named['bs']} is not implemented; use bs = 'cr' (cubic "
                "regression spline), bs = 'tp' (thin-plate regression spline, mgcv's "
                "default) or bs = 'ps' (P-spline).")
    return SmoothTerm(variable=variable, k=k, bs=bs, source=source,
                      by=by.strip("`") if by is not None else None)



@dataclass(frozen=True, eq=False)
class SmoothBlock:
    """A smooth term in a design: its basis and where its parts sit.

    Attributes
    ----------
    basis : SmoothBasis
        Learned on the fitting rows (evaluate it at new x for predictions).
    Z : ndarray, shape (n, q)
        The penalised part: one random-effects block with iid coefficients.
    fixed_columns : tuple of int
        Columns of the design's X holding the null-space part.
    """

    basis: SmoothBasis
    Z: np.ndarray
    fixed_columns: tuple[int, ...]

    @property
    def label(self) -> str:
        """The component's label, e.g. ``"s(times)"``, ``"s(x):z"`` or ``"s(x):fa"``."""
        return self.basis.label

    @property
    def term(self) -> SmoothTerm:
        """The parsed term (shared by the levels of a factor ``by``)."""
        return self.basis.term

    @property
    def q(self) -> int:
        """Number of random-effects columns."""
        return int(self.Z.shape[1])


def _numeric(values: pd.Series, term: SmoothTerm, name: str) -> np.ndarray:
    if is_factor_like(values):
        raise ValueError(f"smooth term {term.source!r}: column {name!r} is not numeric "
                         f"(dtype {values.dtype}); a smooth needs a numeric covariate.")
    return values.to_numpy(dtype=np.float64)


def _pieces(term: SmoothTerm, frame: pd.DataFrame, x: np.ndarray) -> list[SmoothBasis]:
    """One basis, or one per level of a factor ``by`` (knots from all rows, as mgcv)."""
    if term.by is None:
        return [build_smooth(term, x)]
    values = frame[term.by]
    if not is_factor_like(values):
        return [build_smooth(term, x, weight=values.to_numpy(dtype=np.float64))]
    cat = as_factor(values)
    labels = np.asarray(values.astype(str))
    out = []
    for level in (str(c) for c in cat.categories):
        ind = (labels == level).astype(float)
        out.append(build_smooth(term, x, weight=ind, level=level))
    return out


def smooth_blocks(terms: tuple[SmoothTerm, ...], frame: pd.DataFrame, p: int
                  ) -> tuple[tuple[SmoothBlock, ...], np.ndarray, tuple[str, ...]]:
    """The smooths of a design on the rows of ``frame`` (the rows used).

    ``p`` is the number of fixed-effect columns before the smooths'.  Returns
    the blocks (one per level of a factor ``by``), the fixed-effect columns to
    append to X and their names.
    """
    blocks, cols, names = [], [], []
    for term in terms:
        x = _numeric(frame[term.variable], term, term.variable)
        by = None if term.by is None else frame[term.by]
        for sb in _pieces(term, frame, x):
            xf = sb.fixed(x, by)
            idx = tuple(range(p + len(names), p + len(names) + xf.shape[1]))
            cols.append(xf)
            names.extend(sb.fixed_names)
            blocks.append(SmoothBlock(basis=sb, Z=np.ascontiguousarray(sb.random(x, by)),
                                      fixed_columns=idx))
    n = len(frame)
    xcols = np.hstack(cols) if cols else np.zeros((n, 0))
    return tuple(blocks), xcols, tuple(names)


def find_smooth(smooths: tuple[SmoothBlock, ...], key: str) -> int | None:
    """Index of the smooth ``key`` names: its label (``"s(x)"``, ``"s(x):fa"``) or, when
    only one component has it, the term as written or the column name."""
    key = key.strip()
    for j, sm in enumerate(smooths):
        if key == sm.label:
            return j
    hits = [j for j, sm in enumerate(smooths)
            if key in (sm.term.source, sm.term.variable, sm.term.label)]
    return hits[0] if len(hits) == 1 else None


def refuse_smooths(design: object, what: str) -> None:
    """Raise a ValueError naming the smooth terms of ``design``, if it has any.

    ``what`` names the operation, e.g. ``"a GLMM"``.  The engine's
    random-effects blocks have one level per row; a smooth's penalised part is
    a dense block, fitted only by :mod:`vctest.model.smooth_fit` (Gaussian).
    """
    smooths = getattr(design, "smooths", ())
    if smooths:
        labels = ", ".join(sm.label for sm in smooths)
        raise ValueError(
            f"smooth terms ({labels}) are not supported in {what} yet: vctest fits a "
            "formula with s() terms as a Gaussian (additive) mixed model by REML or ML "
            "(vctest.fit), and tests a smooth against a linear fit with vctest.vc_test("
            "term='s(x)', method='exact'). Remove the smooth, or replace it by a parametric "
            "term such as poly(x, 3).")
