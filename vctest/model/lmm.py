"""A linear mixed model: a frozen design plus its cross-product workspace.

:class:`LinearMixedModel` turns a :class:`~vctest.formula.design.Design` into
the arrays the kernels in :mod:`vctest.kernels.lmm` work on: the sparsity
structure of the blocked system (built once) and the cross-products (formed
once).  A new response needs only the y parts, which :meth:`with_response`
recomputes in one O(n) pass, sharing everything else -- MixedModels.jl's
``refit!`` idea with immutable objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from vctest.diagnostics import FitDiagnostics, diagnose
from vctest.formula.design import Design
from vctest.kernels import lmm as kernels
from vctest.model.terms import SINGULAR_TOL, ThetaLayout, column_scales, theta_layout

#: Largest order of the dense "rest" block the engine accepts.
MAX_DENSE_ORDER = 12_000


@dataclass(frozen=True, eq=False)
class Structure:
    """Sparsity structure of the blocked system (depends only on the design)."""

    codes: np.ndarray  # (J, n) int64
    zcols: np.ndarray  # (n, sum k) float64
    zoff: np.ndarray  # (J+1,) int64
    roff: np.ndarray  # (J,) int64 offsets of terms 1.. in the rest space
    bptr: np.ndarray  # (nlev0+1,) int64
    bidx: np.ndarray  # (nnz,) int64 rest positions per level of term 0
    rowslot: np.ndarray  # (n, J-1) int64 slot of each row's level block
    pos_term: np.ndarray  # (m,) int64 term of a rest position (-1 for X, y)
    pos_within: np.ndarray  # (m,) int64 column within its level block
    nlev: np.ndarray  # (J,) int64
    n: int
    p: int
    m_re: int
    m: int
    kmax: int


def _structure(design: Design, layout: ThetaLayout) -> Structure:
    blocks = design.blocks
    n, p = design.X.shape
    nterms = len(blocks)
    k = layout.k
    nlev = np.array([b.n_levels for b in blocks], dtype=np.int64)
    codes = np.ascontiguousarray(np.vstack([b.codes for b in blocks]).astype(np.int64))
    zcols = np.ascontiguousarray(np.hstack([b.columns for b in blocks]).astype(float))
    zoff = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    roff = np.zeros(nterms, dtype=np.int64)
    m_re = 0
    for j in range(1, nterms):
        roff[j] = m_re
        m_re += int(nlev[j] * k[j])
    m = m_re + p + 1
    if m_re > MAX_DENSE_ORDER:
        raise ValueError(
            f"the random-effects terms after the first have {m_re} columns in total; "
            f"vctest's dense block supports at most {MAX_DENSE_ORDER}. Put the grouping "
            "factor with most levels first is automatic; reduce the other terms' levels."
        )
    pos_term = np.full(m, -1, dtype=np.int64)
    pos_within = np.zeros(m, dtype=np.int64)
    for j in range(1, nterms):
        span = np.arange(nlev[j] * k[j])
        pos_term[roff[j] + span] = j
        pos_within[roff[j] + span] = span % k[j]

    # (level of term 0, rest position) pairs: co-occurring random-effect blocks
    # plus every X and y position for every level.
    nlev0 = int(nlev[0])
    g_parts, pos_parts = [], []
    for j in range(1, nterms):
        key = np.unique(codes[0] * nlev[j] + codes[j])
        g, a = key // nlev[j], key % nlev[j]
        for c in range(k[j]):
            g_parts.append(g)
            pos_parts.append(roff[j] + a * k[j] + c)
    levels0 = np.arange(nlev0, dtype=np.int64)
    for pos in range(m_re, m):
        g_parts.append(levels0)
        pos_parts.append(np.full(nlev0, pos, dtype=np.int64))
    g_all = np.concatenate(g_parts)
    pos_all = np.concatenate(pos_parts)
    order = np.lexsort((pos_all, g_all))
    g_all, pos_all = g_all[order], pos_all[order]
    bptr = np.concatenate([[0], np.cumsum(np.bincount(g_all, minlength=nlev0))]).astype(np.int64)
    bidx = np.ascontiguousarray(pos_all, dtype=np.int64)
    keys = g_all * m + pos_all
    rowslot = np.zeros((n, max(nterms - 1, 0)), dtype=np.int64)
    for j in range(1, nterms):
        row_keys = codes[0] * m + roff[j] + codes[j] * k[j]
        rowslot[:, j - 1] = np.searchsorted(keys, row_keys)
    return Structure(
        codes=codes, zcols=zcols, zoff=zoff, roff=roff, bptr=bptr, bidx=bidx,
        rowslot=np.ascontiguousarray(rowslot), pos_term=pos_term, pos_within=pos_within,
        nlev=nlev, n=n, p=p, m_re=m_re, m=m, kmax=int(k.max()),
    )


@dataclass(frozen=True, eq=False)
class LinearMixedModel:
    """A linear mixed model ready to evaluate its profiled deviance.

    Build it with :meth:`from_design`; :meth:`objective` evaluates the REML
    criterion or ML deviance at theta; :meth:`with_response` gives the same
    model for a new response, reusing the structure and the X parts.

    Attributes
    ----------
    design : Design
    layout : ThetaLayout
    structure : Structure
    y : ndarray
        The response the cross-products were formed with.
    d1, bval, c : ndarray
        Cross-products (see :mod:`vctest.kernels.lmm`).
    """

    design: Design
    layout: ThetaLayout
    structure: Structure
    y: np.ndarray
    d1: np.ndarray
    bval: np.ndarray
    c: np.ndarray

    @classmethod
    def from_design(cls, design: Design) -> LinearMixedModel:
        """Form the structure and the cross-products of ``design``."""
        if not design.blocks:
            raise ValueError(
                "the formula has no random-effects term such as `(1 | group)`; "
                "a linear mixed model needs at least one."
            )
        layout = theta_layout(
            [b.name for b in design.blocks], [b.column_names for b in design.blocks]
        )
        st = _structure(design, layout)
        y = np.ascontiguousarray(design.y, dtype=float)
        d1 = np.zeros((st.nlev[0], layout.k[0], layout.k[0]))
        bval = np.zeros((st.bidx.size, layout.k[0]))
        c = np.zeros((st.m, st.m))
        kernels.assemble(
            st.codes, st.zcols, st.zoff, layout.k, st.roff,
            np.ascontiguousarray(design.X, dtype=float), y, np.ones(st.n), st.bptr,
            st.rowslot, cls._dims(st, False), d1, bval, c,
        )
        return cls(design=design, layout=layout, structure=st, y=y, d1=d1, bval=bval, c=c)

    @staticmethod
    def _dims(st: Structure, reml: bool) -> np.ndarray:
        return np.array([st.n, st.p, st.m_re, st.m, st.kmax, int(reml)], dtype=np.int64)

    @property
    def n(self) -> int:
        """Number of observations."""
        return self.structure.n

    @property
    def p(self) -> int:
        """Number of fixed-effect columns."""
        return self.structure.p

    def workspace(self, reml: bool) -> tuple:
        """The tuple of arrays the kernels take (``ws`` in :mod:`vctest.kernels.lmm`)."""
        st = self.structure
        return (
            self._dims(st, reml), self.layout.k, st.nlev, self.layout.offsets, st.roff,
            st.pos_term, st.pos_within, self.d1, st.bptr, st.bidx, self.bval, self.c,
        )

    @cached_property
    def theta_scale(self) -> np.ndarray:
        """Per-parameter scale for the optimiser (:func:`vctest.model.terms.column_scales`).

        The optimiser searches ``theta * theta_scale``, so changing a
        covariate's units does not change its path.
        """
        return column_scales(self.layout, self.structure.zcols, self.structure.zoff)

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """REML criterion (``reml=True``) or ML deviance at ``theta`` (+inf if undefined)."""
        theta = np.ascontiguousarray(theta, dtype=float)
        return float(kernels.objective(theta, self.workspace(reml)))

    def diagnostics_at(self, theta: np.ndarray, reml: bool) -> FitDiagnostics:
        """Gradient, Hessian and the boundary-aware verdict at ``theta``, in column units."""
        return diagnose(lambda th: self.objective(th, reml), theta, self.layout.lower,
                        names=self.layout.names, sing_tol=SINGULAR_TOL, scale=self.theta_scale)

    def with_response(self, y: np.ndarray) -> LinearMixedModel:
        """The same model with response ``y``; shares structure, D1 and X parts."""
        y = np.ascontiguousarray(y, dtype=float)
        if y.shape != (self.n,):
            raise ValueError(f"`y` must have shape ({self.n},); got {y.shape}.")
        if not np.all(np.isfinite(y)):
            raise ValueError("`y` must be finite.")
        st = self.structure
        bval = self.bval.copy()
        c = self.c.copy()
        kernels.update_response(
            st.codes, st.zcols, st.zoff, self.layout.k, st.roff,
            np.ascontiguousarray(self.design.X, dtype=float), y, np.ones(st.n), st.bptr,
            self._dims(st, False), bval, c,
        )
        return LinearMixedModel(
            design=self.design, layout=self.layout, structure=st, y=y, d1=self.d1,
            bval=bval, c=c,
        )

    def fixed_effects(self, theta: np.ndarray, reml: bool) -> tuple[np.ndarray, np.ndarray, float]:
        """beta-hat, its unscaled covariance (L_X L_X')^{-1} and pwrss at ``theta``."""
        st = self.structure
        _, lc, ok = kernels.factorize(np.ascontiguousarray(theta, dtype=float),
                                      self.workspace(reml))
        if not ok:
            raise FloatingPointError("the penalised system is not positive definite at theta.")
        p, m_re, m = st.p, st.m_re, st.m
        lx = np.tril(lc[m_re:m_re + p, m_re:m_re + p])
        lyx = lc[m - 1, m_re:m_re + p]
        if p:
            from scipy.linalg import solve_triangular

            beta = solve_triangular(lx.T, lyx, lower=False)
            lx_inv = solve_triangular(lx, np.eye(p), lower=True)
            vcov = lx_inv.T @ lx_inv
        else:
            beta, vcov = np.zeros(0), np.zeros((0, 0))
        return beta, vcov, float(lc[m - 1, m - 1] ** 2)
