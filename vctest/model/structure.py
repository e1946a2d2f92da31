"""From a design to the engine's named inputs: one structure builder, one set of units.

:func:`build_structure` turns the random-effects blocks and X of a
:class:`~vctest.formula.design.Design` into the
:class:`~vctest.kernels.types.Structure` every family uses.  :class:`EngineUnits`
keeps the engine numerically invariant to the user's units: the fixed-effect
matrix enters as ``X A`` with orthonormal columns (``X = Q R``, ``A = sqrt(n)
R^{-1}``), and a Gaussian response as its least-squares residual on X divided
by its root-mean-square, so shifting the response by 1e9 or scaling it by 1e6
changes no number the engine sees (lme4's criterion is invariant too).  A
GLMM's offset enters as its residual on X (its projection on X is carried by
the fixed effects).  The criteria and estimates are mapped back exactly:

* ML deviance: ``f = f_engine + n log s^2``;
* REML criterion: ``f = f_engine + (n - p) log s^2 - 2 log|det A|``;
* ``beta = A (s beta_engine) + beta_ols`` (Gaussian), ``A beta_engine - gamma`` (GLMM).

Kernel arrays are C-contiguous, writable float64 / int64 (:func:`f64`,
:func:`i64`): another layout, or a read-only array from pandas' copy-on-write,
would compile and cache another specialisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from vctest.kernels.linalg import LAPACK_MIN_ORDER
from vctest.kernels.types import N_CALLS, Settings, Start, Structure
from vctest.model.terms import ThetaLayout, column_scales

#: Largest order of the dense "rest" block (random effects after the first term, plus X).
MAX_DENSE_ORDER = 12_000

#: ``lapack_min`` inside ``prange`` (never call LAPACK there).
NO_LAPACK = 2**62


def f64(a: Any) -> np.ndarray:
    """A fresh, writable, C-contiguous float64 copy (what the kernels are compiled for)."""
    return np.array(a, dtype=np.float64, order="C")


def i64(a: Any) -> np.ndarray:
    """A fresh, writable, C-contiguous int64 copy."""
    return np.array(a, dtype=np.int64, order="C")


def kernel_array(a: Any, dtype: type = np.float64) -> np.ndarray:
    """``a`` itself when it is what the kernels take (a writable, C-contiguous array of
    ``dtype``), else a copy that is: for arrays the kernels only read, such as X in
    engine units or a block's codes (each copy of a 3M-row array costs memory and time)."""
    if (isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous
            and a.flags.writeable):
        return a
    return np.array(a, dtype=dtype, order="C")


def build_structure(blocks: Sequence[Any], x: np.ndarray) -> Structure:
    """The :class:`~vctest.kernels.types.Structure` of random-effects ``blocks`` and ``x``.

    ``blocks`` are :class:`~vctest.formula.design.RandomBlock` (``codes``,
    ``columns``, ``n_levels``), term 0 first (the design orders the factor
    with most levels first).  No blocks gives a linear model: one empty term.
    ``x`` (the units' X) and a single block's codes and columns are shared, not
    copied: the kernels only read them.
    """
    n, p = x.shape
    if len(blocks) == 1:
        k, nlev = i64([blocks[0].columns.shape[1]]), i64([blocks[0].n_levels])
        codes = kernel_array(blocks[0].codes.reshape(1, -1), np.int64)
        zcols = kernel_array(blocks[0].columns)
    elif blocks:  # np.stack / np.concatenate give fresh C-contiguous arrays: no second copy
        k = i64([b.columns.shape[1] for b in blocks])
        nlev = i64([b.n_levels for b in blocks])
        codes = np.stack([b.codes for b in blocks]).astype(np.int64, copy=False)
        zcols = np.concatenate([b.columns for b in blocks], axis=1, dtype=np.float64)
    else:
        k, nlev = i64([0]), i64([1])
        codes, zcols = np.zeros((1, n), np.int64), np.zeros((n, 0))
    zoff = i64(np.concatenate([[0], np.cumsum(k)]))
    toff = i64(np.concatenate([[0], np.cumsum(k * (k + 1) // 2)]))
    roff = np.zeros(k.size, dtype=np.int64)
    m_re = 0
    for j in range(1, k.size):
        roff[j] = m_re
        m_re += int(nlev[j] * k[j])
    if m_re + p > MAX_DENSE_ORDER:
        raise ValueError(
            f"the random-effects terms after the first have {m_re} columns (with the fixed "
            f"effects {m_re + p}); vctest's dense block supports at most {MAX_DENSE_ORDER}. "
            "The factor with most levels is put first automatically; reduce the other terms' "
            "levels.")
    # per level g of term 0: co-occurring rest positions, then the p X positions
    nlev0, big = int(nlev[0]), m_re + p
    g_parts, pos_parts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for j in range(1, k.size):
        key = np.unique(codes[0] * nlev[j] + codes[j])
        for c in range(k[j]):
            g_parts.append(key // nlev[j])
            pos_parts.append(roff[j] + (key % nlev[j]) * k[j] + c)
    levels0 = np.arange(nlev0, dtype=np.int64)
    for i in range(p):
        g_parts.append(levels0)
        pos_parts.append(np.full(nlev0, m_re + i, dtype=np.int64))
    g_all = np.concatenate(g_parts).astype(np.int64)
    pos_all = np.concatenate(pos_parts).astype(np.int64)
    order = np.lexsort((pos_all, g_all))
    g_all, pos_all = g_all[order], pos_all[order]
    bptr = i64(np.concatenate([[0], np.cumsum(np.bincount(g_all, minlength=nlev0))]))
    keys = g_all * big + pos_all
    rowslot = np.zeros((n, k.size - 1), dtype=np.int64)
    for j in range(1, k.size):
        rowslot[:, j - 1] = np.searchsorted(keys, codes[0] * big + roff[j] + codes[j] * k[j])
    return Structure(n=int(n), p=int(p), m_re=int(m_re), kmax=int(k.max()), k=k, nlev=nlev,
                     toff=toff, roff=roff, codes=codes, zcols=zcols, zoff=zoff, bptr=bptr,
                     bidx=i64(pos_all), rowslot=i64(rowslot), x=kernel_array(x))


@dataclass(frozen=True, eq=False)
class EngineUnits:
    """The linear map between the user's fixed effects and the engine's.

    Attributes
    ----------
    x : ndarray (n, p)
        ``X A``: orthonormal columns scaled to root-mean-square 1.
    a : ndarray (p, p)
        ``A = sqrt(n) R^{-1}`` (upper triangular).
    logdet_a : float
        ``log|det A|``.
    """

    x: np.ndarray
    a: np.ndarray
    logdet_a: float

    @classmethod
    def of(cls, x: np.ndarray, *, orthonormal: bool = True,
           qr: tuple[np.ndarray, np.ndarray] | None = None) -> EngineUnits:
        """The units of fixed-effect matrix ``x`` (full column rank).

        ``orthonormal=False`` only scales the columns to root-mean-square 1
        (``A`` diagonal): a GLM's weights can be vanishingly small on some rows
        (separation), and orthonormal columns would then spread that direction
        over every pivot of ``X'WX`` and lose it to rounding.  ``qr`` is
        ``numpy.linalg.qr(x)`` when already known (:meth:`Design.qr
        <vctest.formula.design.Design.qr>`).
        """
        x = np.asarray(x, dtype=float)
        n, p = x.shape
        if p == 0:
            return cls(x=np.zeros((n, 0)), a=np.zeros((0, 0)), logdet_a=0.0)
        if not orthonormal:
            rms = np.sqrt(np.mean(x * x, axis=0))
            rms[~(rms > 0)] = 1.0
            return cls(x=f64(x / rms), a=np.diag(1.0 / rms),
                       logdet_a=-float(np.sum(np.log(rms))))
        q, r = np.linalg.qr(x) if qr is None else qr
        a = math.sqrt(n) * np.linalg.inv(r)
        logdet_a = 0.5 * p * math.log(n) - float(np.sum(np.log(np.abs(np.diag(r)))))
        return cls(x=np.multiply(q, math.sqrt(n), order="C"), a=a, logdet_a=logdet_a)

    @cached_property
    def rms(self) -> np.ndarray:
        """:func:`column_rms` of ``x`` (computed once; models sharing the units share it)."""
        return column_rms(self.x)

    def project(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(residual, gamma)``: ``v = X gamma + residual`` by least squares."""
        if self.a.shape[0] == 0:
            return f64(v), np.zeros(0)
        coef = np.linalg.lstsq(self.x, v, rcond=None)[0]  # engine units
        resid = v - self.x @ coef
        coef2 = np.linalg.lstsq(self.x, resid, rcond=None)[0]  # one step of refinement
        return resid - self.x @ coef2, self.a @ (coef + coef2)  # a fresh float64 vector

    def to_user(self, beta_engine: np.ndarray) -> np.ndarray:
        """``A beta_engine``."""
        return self.a @ beta_engine if self.a.size else np.zeros(0)

    def to_engine(self, beta: np.ndarray) -> np.ndarray:
        """``A^{-1} beta``."""
        return f64(np.linalg.solve(self.a, beta)) if self.a.size else np.zeros(0)


def below_diagonals(is_diag: np.ndarray) -> np.ndarray:
    """For each diagonal entry of theta, how many entries of its column of T follow it."""
    below = np.zeros(is_diag.size, dtype=np.int64)
    for i in np.flatnonzero(is_diag):
        j = i + 1
        while j < is_diag.size and not is_diag[j]:
            j += 1
        below[i] = j - i - 1
    return below


def column_rms(x: np.ndarray) -> np.ndarray:
    """Root-mean-square of each column of ``x`` (1 where it is 0 or there are no rows):
    the optimiser's units for beta."""
    rms = np.sqrt(np.mean(x * x, axis=0)) if x.shape[0] else np.ones(x.shape[1])
    rms[~(rms > 0)] = 1.0
    return rms


def start_template(layout: ThetaLayout | None, st: Structure,
                   bscale: np.ndarray | None = None) -> Start:
    """The parts of a :class:`~vctest.kernels.types.Start` that depend only on the model
    (``layout`` None: no random effects); theta and beta are empty.  ``bscale`` is
    :func:`column_rms` of ``st.x`` when already known."""
    if layout is None:
        tscale, is_diag = np.zeros(0), np.zeros(0, dtype=np.bool_)
    else:
        tscale, is_diag = f64(column_scales(layout, st.zcols, st.zoff)), layout.is_diagonal
    bscale = column_rms(st.x) if bscale is None else bscale
    return Start(theta=np.zeros(0), beta=np.zeros(0), tscale=tscale, bscale=f64(bscale),
                 is_diag=np.array(is_diag, dtype=np.bool_), below=below_diagonals(is_diag))


def make_start(layout: ThetaLayout | None, st: Structure, theta: Any, beta: Any) -> Start:
    """The :class:`~vctest.kernels.types.Start` of a model with ``layout`` (None: no random
    effects) from ``theta`` and ``beta`` (engine units)."""
    return start_template(layout, st)._replace(theta=f64(theta), beta=f64(beta))


class EngineStart:
    """Starts for a model with ``layout`` and ``structure``: the model's part of a
    :class:`~vctest.kernels.types.Start` is computed once (every objective value
    from Python goes through :meth:`start`)."""

    layout: ThetaLayout | None
    structure: Structure

    @cached_property
    def start_template(self) -> Start:
        """The model's part of every start (theta and beta empty)."""
        return start_template(self.layout, self.structure)

    def start(self, theta: Any, beta: Any) -> Start:
        """The start at ``theta`` and ``beta`` (engine units)."""
        return self.start_template._replace(theta=f64(theta), beta=f64(beta))


def settings(*, maxiter: int, gtol: float, ftol: float, xtol: float, restarts: int = 3,
             pirls_maxit: int = 100, pirls_tol: float = 1e-10, two_stage: bool = True,
             parallel: bool = False) -> Settings:
    """The kernels' :class:`~vctest.kernels.types.Settings` (``parallel``: no LAPACK)."""
    return Settings(maxiter=int(maxiter), gtol=float(gtol), ftol=float(ftol), xtol=float(xtol),
                    restarts=int(restarts), pirls_maxit=int(pirls_maxit),
                    pirls_tol=float(pirls_tol), two_stage=int(bool(two_stage)),
                    lapack_min=NO_LAPACK if parallel else LAPACK_MIN_ORDER,
                    calls=np.zeros((N_CALLS, 2), np.int64))


@dataclass(frozen=True)
class GlmmSettings:
    """Settings of the Numba GLMM optimiser (recorded with every fit).

    ``two_stage`` runs lme4's nAGQ = 0 stage first; ``gtol``/``ftol``/``xtol``
    stop the BFGS iterations (projected gradient below ``gtol (1 + |f|)``, or
    changes below ``ftol (1 + |f|)`` and ``xtol``); PIRLS stops when its next
    step is below ``pirls_tol``; ``restarts`` bounds the edge restarts.
    """

    two_stage: bool = True
    maxiter: int = 500
    gtol: float = 1e-9
    ftol: float = 1e-13
    xtol: float = 1e-8
    pirls_maxit: int = 100
    pirls_tol: float = 1e-10
    restarts: int = 3

    def kernel(self, *, parallel: bool = False) -> Settings:
        """The engine's ``vctest.kernels.types.Settings``."""
        return settings(maxiter=self.maxiter, gtol=self.gtol, ftol=self.ftol, xtol=self.xtol,
                        restarts=self.restarts, pirls_maxit=self.pirls_maxit,
                        pirls_tol=self.pirls_tol, two_stage=self.two_stage, parallel=parallel)
