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

__all__ = ["SMOOTH_BASES", "SmoothBasis", "SmoothTerm", "build_smooth"]

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
    by : str or None
        ``s(x, by=z)``: the column z (numeric: f(x) z; factor: one smooth per level).
    """

    variable: str
    k: int
    bs: str
    source: str
    by: str | None = None

    @property
    def label(self) -> str:
        """mgcv's label, e.g. ``"s(times)"`` or ``"s(x):z"``."""
        return f"s({self.variable})" + (f":{self.by}" if self.by else "")


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
    level : str or None
        For a factor ``by``: the level this copy of the smooth belongs to.
    """

    term: SmoothTerm
    knots: np.ndarray
    fixed_map: np.ndarray
    random_map: np.ndarray
    tp_vectors: np.ndarray | None = None
    shift: float = 0.0
    scale: float = 1.0
    level: str | None = None

    @property
    def label(self) -> str:
        """mgcv's label: ``"s(x)"``, ``"s(x):z"`` or, for level a of factor f, ``"s(x):fa"``."""
        return self.term.label + (self.level if self.level is not None else "")

    def multiplier(self, by: object) -> np.ndarray | float:
        """Row weights from the ``by`` column's values (None: 1, the curve itself)."""
        if by is None or self.term.by is None:
            return 1.0
        values = np.asarray(by)
        if self.level is None:
            return np.asarray(values, dtype=float)
        return (values.astype(str) == self.level).astype(float)

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

    def fixed(self, x: np.ndarray, by: object = None) -> np.ndarray:
        """Fixed-effect (null-space) columns at ``x`` (rows times the ``by`` weights)."""
        w = self.multiplier(by)
        return (self.basis(x) @ self.fixed_map) * np.reshape(w, (-1, 1))

    def random(self, x: np.ndarray, by: object = None) -> np.ndarray:
        """Random-effects columns at ``x`` (rows times the ``by`` weights)."""
        w = self.multiplier(by)
        return (self.basis(x) @ self.random_map) * np.reshape(w, (-1, 1))

    @property
    def fixed_names(self) -> tuple[str, ...]:
        """Names of the fixed columns, as gamm names them: ``"s(x)Fx1"``."""
        return tuple(f"{self.label}Fx{i + 1}" for i in range(self.fixed_map.shape[1]))

    @property
    def q(self) -> int:
        """Number of random-effects columns (penalised dimension)."""
        return int(self.random_map.shape[1])


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


def _reparametrise(b: np.ndarray, s: np.ndarray, what: str, qc: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(fixed_map, random_map)`` from the penalty ``s`` and ``qc``, an orthonormal basis
    of the constrained coefficients (None: unconstrained)."""
    qc = np.eye(b.shape[1]) if qc is None else qc
    sc = qc.T @ s @ qc
    sc = 0.5 * (sc + sc.T)
    d, u = np.linalg.eigh(sc)
    pos = d > d.max() * 1e-10
    if not pos.any():
        raise ValueError(f"{what}: the penalty has no penalised directions; increase k.")
    random_map = qc @ (u[:, pos] / np.sqrt(d[pos]))
    fixed_map = qc @ u[:, ~pos]
    return fixed_map, random_map


def build_smooth(term: SmoothTerm, x: np.ndarray, weight: np.ndarray | None = None,
                 level: str | None = None) -> SmoothBasis:
    """Learn the basis of ``term`` on the fitting rows' ``x``.

    Parameters
    ----------
    term : SmoothTerm
    x : ndarray of float
        The smoothed covariate on the rows used (finite); the knots come from it.
    weight : ndarray, optional
        Row weights of a ``by`` smooth: the numeric ``by`` column (then the
        smooth is not constrained, as mgcv's) or a factor level's indicator
        (constrained as the smooth without ``by``: summing to zero over all rows).
    level : str, optional
        The factor level of ``weight``.

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
    # mgcv's constraint: the unweighted smooth sums to zero over all rows (also for each
    # level of a factor by); a numeric by is not constrained
    qc = _null_basis(b.sum(axis=0)[None, :]) if weight is None or level is not None else None
    if weight is not None:
        b = b * weight[:, None]
    fixed_map, random_map = _reparametrise(b, s, what, qc)
    xf = b @ fixed_map
    if xf.shape[1] == 1 and np.dot(xf[:, 0], x - x.mean()) < 0:
        fixed_map = -fixed_map  # the null-space column increases with x (gamm's sign varies)
    # columns of Z to root-mean-square one over the rows (the variance's scale is arbitrary)
    z = b @ random_map
    rms = float(np.sqrt(np.mean(z * z)))
    random_map = random_map / (rms if rms > 0 else 1.0)
    return SmoothBasis(term, knots, fixed_map, random_map, partial.tp_vectors,
                       partial.shift, partial.scale, level)
