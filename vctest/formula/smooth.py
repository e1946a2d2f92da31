"""Penalised regression splines as mixed models: basis, penalty and reparametrisation.

A smooth term ``s(x, k=10, bs="cr")`` is a basis ``B(x)`` (n x k) with a
quadratic penalty ``beta' S beta``.  As in :func:`mgcv::gamm`, it becomes a
mixed model (Wood 2017, section 5.8; Crainiceanu & Ruppert 2004):

1. identifiability: the coefficients are constrained to ``C beta = 0`` with
   ``C = 1' B`` (the smooth sums to zero over the data), absorbed by an
   orthonormal basis ``Q`` of ``C``'s null space (``B Q``, ``Q' S Q``);
2. ``Q' S Q = U diag(d) U'``: the eigenvectors with ``d = 0`` span the
   penalty's null space (a linear function of x for these second-derivative
   penalties) and become fixed-effect columns ``Xf = B Q U0``; the others
   become ONE random-effects block ``Z = B Q U+ diag(d+)^(-1/2)`` with iid
   coefficients ``b ~ N(0, sigma_b^2 I)`` (``sigma^2 / sigma_b^2`` is the
   smoothing parameter, up to the penalty's scale).

The likelihood depends only on ``Z Z'`` and on the fixed columns, and both are
invariant to the orthonormal bases chosen in 1 and 2; ``Xf`` is the unit
coefficient vector of the null space, as gamm's, so REML criteria equal
mgcv's.  Bases (written from the math, not from mgcv's source):

* ``bs="cr"``: cubic regression spline parametrised by its values at ``k``
  knots placed at the quantiles of the unique x (R's type 7), natural end
  conditions, penalty ``int f''(x)^2 dx = beta' D' B^-1 D beta`` (Wood 2017,
  section 5.3.1); linear beyond the outer knots.
* ``bs="ps"``: a P-spline (Eilers & Marx 1996) as mgcv builds it: cubic
  B-splines (scipy's) on k - 2 evenly spaced knots over the data's range
  widened by 0.1% each side, second-order difference penalty; linear beyond.
* ``bs="tp"``: the thin-plate regression spline of Wood (2003) in one
  dimension with m = 2: radial function ``|r|^3 / 12`` at the unique x,
  truncated to the ``k`` eigenvectors of largest absolute eigenvalue,
  polynomial null space ``1, x`` (x centred and scaled to root-mean-square 1
  over the data, as mgcv scales its basis columns).

statsmodels' ``CubicRegressionSplines`` places knots and constrains
differently (its knots are not mgcv's), so the cr basis is built here to match
mgcv's conventions exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SMOOTH_BASES", "SmoothBasis", "SmoothBlock", "SmoothTerm", "build_smooth",
           "refuse_smooths", "smooth_blocks", "smooth_from_args"]

#: Bases implemented, with their meaning.
SMOOTH_BASES = {"cr": "cubic regression spline", "tp": "thin-plate regression spline",
                "ps": "P-spline"}

#: mgcv's default basis dimension for a 1-D smooth.
DEFAULT_K = 10

#: Largest number of unique x values a tp basis uses as knots (mgcv subsamples beyond
#: 2000 at random; vctest refuses rather than fit a different basis).
MAX_TP_KNOTS = 2000


@dataclass(frozen=True)
class SmoothTerm:
    """One parsed smooth term ``s(x, k=..., bs=...)``.

    Attributes
    ----------
    variable : str
        The data column smoothed.
    k : int
        Basis dimension before the identifiability constraint.
    bs : str
        Basis: ``"cr"``, ``"tp"`` or ``"ps"``.
    source : str
        The term as written.
    """

    variable: str
    k: int
    bs: str
    source: str

    @property
    def label(self) -> str:
        """mgcv's label, e.g. ``"s(times)"``."""
        return f"s({self.variable})"


@dataclass(frozen=True, eq=False)
class SmoothBasis:
    """A smooth's basis learned on the fitting rows, evaluated anywhere.

    Attributes
    ----------
    term : SmoothTerm
    knots : ndarray
        Knots (cr: k knots; tp: the unique x).
    fixed_map, random_map : ndarray, shapes (k, m0) and (k, r)
        Basis coefficients of the fixed-effect (null-space) columns and of the
        random-effects columns: ``Xf = B(x) fixed_map``, ``Z = B(x) random_map``.
    tp_vectors : ndarray or None
        tp only: ``U_k Z_T`` (knots x (k - 2)), the truncated eigenbasis.
    shift, scale : float
        tp only: x enters the null space as ``(x - shift) / scale``.
    """

    term: SmoothTerm
    knots: np.ndarray
    fixed_map: np.ndarray
    random_map: np.ndarray
    tp_vectors: np.ndarray | None = None
    shift: float = 0.0
    scale: float = 1.0

    def basis(self, x: np.ndarray) -> np.ndarray:
        """The unconstrained basis ``B(x)`` (rows of x, k columns)."""
        x = np.asarray(x, dtype=float)
        if self.term.bs == "cr":
            return _cr_basis(x, self.knots)
        if self.term.bs == "ps":
            return _ps_basis(x, self.knots)
        radial = np.abs(x[:, None] - self.knots[None, :]) ** 3 / 12.0
        return np.column_stack([radial @ self.tp_vectors, np.ones_like(x),
                                (x - self.shift) / self.scale])

    def fixed(self, x: np.ndarray) -> np.ndarray:
        """Fixed-effect (null-space) columns at ``x``."""
        return self.basis(x) @ self.fixed_map

    def random(self, x: np.ndarray) -> np.ndarray:
        """Random-effects columns at ``x``."""
        return self.basis(x) @ self.random_map

    @property
    def fixed_names(self) -> tuple[str, ...]:
        """Names of the fixed columns, as gamm names them: ``"s(x)Fx1"``."""
        return tuple(f"{self.term.label}Fx{i + 1}" for i in range(self.fixed_map.shape[1]))

    @property
    def q(self) -> int:
        """Number of random-effects columns (penalised dimension)."""
        return int(self.random_map.shape[1])


def _is_name(text: str) -> bool:
    if text.startswith("`") and text.endswith("`") and len(text) > 2:
        return True
    return text.replace(".", "_").replace("_", "a").isalnum() and not text[0].isdigit()


def smooth_from_args(args: list[tuple[str | None, str]], source: str) -> SmoothTerm:
    """The :class:`SmoothTerm` of ``s(...)`` from its arguments ``(name or None, text)``.

    Raises
    ------
    ValueError
        For anything but ``s(column, k=<int>, bs="cr"|"tp")``; the message
        says what is supported.

    Examples
    --------
    >>> from vctest.formula.smooth import smooth_from_args
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
    if "by" in named:
        raise ValueError(f"{what}: varying-coefficient smooths s(x, by = z) are not "
                         "implemented yet; fit the smooth of x alone.")
    unknown = sorted(set(named) - {"k", "bs"})
    if unknown:
        raise ValueError(f"{what}: argument(s) {', '.join(unknown)} of mgcv's s() are not "
                         "supported; vctest takes k and bs.")
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
    return SmoothTerm(variable=variable, k=k, bs=bs, source=source)


# -- cubic regression spline ----------------------------------------------------------------


def _cr_knots(x: np.ndarray, k: int) -> np.ndarray:
    unique = np.unique(x)
    return np.quantile(unique, np.linspace(0.0, 1.0, k))


def _cr_matrices(knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F`` (knot values -> second derivatives at the knots) and the penalty ``S``."""
    k = knots.size
    h = np.diff(knots)
    d = np.zeros((k - 2, k))
    b = np.zeros((k - 2, k - 2))
    for i in range(k - 2):
        d[i, i] = 1.0 / h[i]
        d[i, i + 1] = -1.0 / h[i] - 1.0 / h[i + 1]
        d[i, i + 2] = 1.0 / h[i + 1]
        b[i, i] = (h[i] + h[i + 1]) / 3.0
        if i + 1 < k - 2:
            b[i, i + 1] = b[i + 1, i] = h[i + 1] / 6.0
    binv_d = np.linalg.solve(b, d)
    f = np.vstack([np.zeros((1, k)), binv_d, np.zeros((1, k))])
    s = d.T @ binv_d
    return f, 0.5 * (s + s.T)


def _cr_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Rows of the cr basis: the natural cubic spline through the knot values."""
    k = knots.size
    f, _ = _cr_matrices(knots)
    h = np.diff(knots)
    out = np.zeros((x.size, k))
    j = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, k - 2)
    inside = (x >= knots[0]) & (x <= knots[-1])
    rows = np.flatnonzero(inside)
    jj, hj = j[rows], h[j[rows]]
    am = (knots[jj + 1] - x[rows]) / hj
    ap = (x[rows] - knots[jj]) / hj
    cm = ((knots[jj + 1] - x[rows]) ** 3 / hj - hj * (knots[jj + 1] - x[rows])) / 6.0
    cp = ((x[rows] - knots[jj]) ** 3 / hj - hj * (x[rows] - knots[jj])) / 6.0
    out[rows] = cm[:, None] * f[jj] + cp[:, None] * f[jj + 1]
    out[rows, jj] += am
    out[rows, jj + 1] += ap
    # linear beyond the outer knots: value and slope of the spline at the end knot
    for side, end, nxt in (("left", 0, 1), ("right", k - 1, k - 2)):
        rows = np.flatnonzero(x < knots[0] if side == "left" else x > knots[-1])
        if rows.size == 0:
            continue
        hh = h[0] if side == "left" else h[-1]
        slope = np.zeros(k)
        if side == "left":  # f'(x1) = (b2 - b1)/h - h (2 d1 + d2) / 6
            slope[1] += 1.0 / hh
            slope[0] -= 1.0 / hh
            slope -= hh * (2.0 * f[0] + f[1]) / 6.0
        else:  # f'(xk) = (bk - bk-1)/h + h (d(k-1) + 2 dk) / 6
            slope[end] += 1.0 / hh
            slope[nxt] -= 1.0 / hh
            slope += hh * (f[nxt] + 2.0 * f[end]) / 6.0
        out[rows] = slope[None, :] * (x[rows] - knots[end])[:, None]
        out[rows, end] += 1.0
    return out


# -- P-spline (Eilers & Marx 1996): cubic B-splines, second-order difference penalty ----------


def _ps_knots(x: np.ndarray, k: int) -> np.ndarray:
    """mgcv's ps knots: k - 2 evenly spaced over the range widened by 0.1% on each side, and
    three more beyond each end (cubic B-splines)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    width = hi - lo
    lo, hi = lo - 0.001 * width, hi + 0.001 * width
    nk = k - 2
    step = (hi - lo) / (nk - 1)
    return np.linspace(lo - 3 * step, hi + 3 * step, nk + 6)


def _ps_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Cubic B-spline basis (scipy's), continued linearly beyond the inner knots' range."""
    from scipy.interpolate import BSpline

    lo, hi = knots[3], knots[-4]
    inner = np.clip(x, lo, hi)
    out = BSpline.design_matrix(inner, knots, 3, extrapolate=False).toarray()
    outside = (x < lo) | (x > hi)
    if outside.any():
        ends = np.array([lo, hi])
        nb = knots.size - 4
        slopes = np.column_stack([
            BSpline(knots, np.eye(nb)[j], 3, extrapolate=False).derivative()(ends)
            for j in range(nb)])
        left, right = x < lo, x > hi
        out[left] += (x[left] - lo)[:, None] * slopes[0]
        out[right] += (x[right] - hi)[:, None] * slopes[1]
    return out


def _ps_penalty(k: int) -> np.ndarray:
    d = np.diff(np.eye(k), n=2, axis=0)
    return d.T @ d


# -- thin-plate regression spline (1-D, m = 2) ----------------------------------------------


def _tp_setup(x: np.ndarray, k: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          float, float]:
    knots = np.unique(x)
    if knots.size > MAX_TP_KNOTS:
        raise ValueError(
            f"{what}: x has {knots.size} unique values; a bs='tp' basis uses at most "
            f"{MAX_TP_KNOTS} (mgcv subsamples knots at random beyond that, which vctest does "
            "not reproduce). Use bs='cr'.")
    e = np.abs(knots[:, None] - knots[None, :]) ** 3 / 12.0
    values, vectors = np.linalg.eigh(e)
    order = np.argsort(-np.abs(values), kind="stable")[:k]
    uk, dk = vectors[:, order], values[order]
    shift = float(np.mean(x))
    t = np.column_stack([np.ones_like(knots), knots - shift])
    # delta = U_k delta_k with T' delta = 0: an orthonormal basis of null(T' U_k)
    _, _, vt = np.linalg.svd(t.T @ uk)
    zt = vt[2:].T
    penalty = zt.T @ (dk[:, None] * zt)
    scale = float(np.sqrt(np.mean((x - shift) ** 2)))
    return knots, uk @ zt, 0.5 * (penalty + penalty.T), shift, scale


# -- the mixed-model reparametrisation ------------------------------------------------------


def _null_basis(c: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the null space of the row vector(s) ``c``."""
    q, _ = np.linalg.qr(c.T, mode="complete")
    return q[:, c.shape[0]:]


def _reparametrise(b: np.ndarray, s: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(fixed_map, random_map)`` from the data basis ``b`` and the penalty ``s``."""
    qc = _null_basis(b.sum(axis=0)[None, :])
    sc = qc.T @ s @ qc
    sc = 0.5 * (sc + sc.T)
    d, u = np.linalg.eigh(sc)
    pos = d > d.max() * 1e-10
    if not pos.any():
        raise ValueError(f"{what}: the penalty has no penalised directions; increase k.")
    # scale so that Z's columns have root-mean-square about one (theta near 1 at the start)
    random_map = qc @ (u[:, pos] / np.sqrt(d[pos]))
    fixed_map = qc @ u[:, ~pos]
    # sign: the null-space columns increase with x (gamm's sign is arbitrary)
    return fixed_map, random_map


def build_smooth(term: SmoothTerm, x: np.ndarray) -> SmoothBasis:
    """Learn the basis of ``term`` on the fitting rows' ``x``.

    Parameters
    ----------
    term : SmoothTerm
    x : ndarray of float
        The smoothed covariate on the rows used (finite).

    Returns
    -------
    SmoothBasis

    Raises
    ------
    ValueError
        If x has fewer unique values than ``k`` (cr), more than
        :data:`MAX_TP_KNOTS` (tp), or k is too small.

    Examples
    --------
    >>> import numpy as np
import pandas as pd
    >>> from vctest.formula.smooth import SmoothTerm, build_smooth
    >>> sb = build_smooth(SmoothTerm("x", 10, "cr", "s(x)"), np.linspace(0, 1, 50))
    >>> sb.fixed_map.shape[1], sb.q
    (1, 8)
    """
    x = np.asarray(x, dtype=float)
    what = f"smooth term {term.source!r}"
    n_unique = np.unique(x).size
    if n_unique < term.k:
        raise ValueError(
            f"{what}: {term.variable!r} has {n_unique} unique values, fewer than the basis "
            f"dimension k = {term.k}; use a smaller k (at most {n_unique}).")
    if term.bs in ("cr", "ps"):
        if term.bs == "cr":
            knots = _cr_knots(x, term.k)
            _, s = _cr_matrices(knots)
        else:
            knots, s = _ps_knots(x, term.k), _ps_penalty(term.k)
        partial = SmoothBasis(term, knots, np.zeros((term.k, 0)), np.zeros((term.k, 0)))
    else:
        knots, vecs, pen, shift, scale = _tp_setup(x, term.k, what)
        s = np.zeros((term.k, term.k))
        s[: term.k - 2, : term.k - 2] = pen
        partial = SmoothBasis(term, knots, np.zeros((term.k, 0)), np.zeros((term.k, 0)),
                              tp_vectors=vecs, shift=shift, scale=scale)
    b = partial.basis(x)
    fixed_map, random_map = _reparametrise(b, s, what)
    xf = b @ fixed_map
    for j in range(xf.shape[1]):
        if np.dot(xf[:, j], x - x.mean()) < 0:
            fixed_map[:, j] = -fixed_map[:, j]
    # columns of Z to root-mean-square one (the variance's scale is arbitrary anyway)
    z = b @ random_map
    rms = float(np.sqrt(np.mean(z * z)))
    random_map = random_map / (rms if rms > 0 else 1.0)
    return SmoothBasis(term, knots, fixed_map, random_map, partial.tp_vectors,
                       partial.shift, partial.scale)


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
        """The term's label, e.g. ``"s(times)"``."""
        return self.basis.term.label

    @property
    def q(self) -> int:
        """Number of random-effects columns."""
        return int(self.Z.shape[1])


def smooth_blocks(terms: tuple[SmoothTerm, ...], frame: pd.DataFrame, p: int
                  ) -> tuple[tuple[SmoothBlock, ...], np.ndarray, tuple[str, ...]]:
    """The smooths of a design on the rows of ``frame`` (the rows used).

    ``p`` is the number of fixed-effect columns before the smooths'.  Returns
    the blocks, the fixed-effect columns to append to X and their names.
    """
    blocks, cols, names = [], [], []
    for term in terms:
        values = frame[term.variable]
        if isinstance(values.dtype, pd.CategoricalDtype) or not (
                pd.api.types.is_numeric_dtype(values.dtype)
                and not pd.api.types.is_bool_dtype(values.dtype)):
            raise ValueError(f"smooth term {term.source!r}: column {term.variable!r} is not "
                             f"numeric (dtype {values.dtype}); a smooth needs a numeric "
                             "covariate.")
        x = values.to_numpy(dtype=np.float64)
        sb = build_smooth(term, x)
        xf = sb.fixed(x)
        idx = tuple(range(p + len(names), p + len(names) + xf.shape[1]))
        cols.append(xf)
        names.extend(sb.fixed_names)
        blocks.append(SmoothBlock(basis=sb, Z=np.ascontiguousarray(sb.random(x)),
                                  fixed_columns=idx))
    n = len(frame)
    xcols = np.hstack(cols) if cols else np.zeros((n, 0))
    return tuple(blocks), xcols, tuple(names)


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
