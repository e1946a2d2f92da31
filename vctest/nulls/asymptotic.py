"""Asymptotic chi-bar-square references for likelihood-ratio tests on a boundary.

When a tested variance lies on the boundary of its parameter space the
likelihood-ratio statistic is asymptotically a mixture of chi-square laws,
the chi-bar-square ``sum_k w_k chi2(df_k)`` (Self & Liang 1987, JASA
82:605-610; Stram & Lee 1994, Biometrics 50:1171-1177).  These references are
*approximations*: for few groups, or for penalised splines, the exact finite
sample null (:mod:`vctest.nulls.spectral`, after Crainiceanu & Ruppert 2004)
can differ a lot -- e.g. its mass at zero exceeds 1/2.

``chi2(0)`` is the point mass at 0: P(chi2(0) > t) is 1 at t = 0 and 0 for
t > 0.  A statistic below :data:`vctest._pvalue.ZERO_TOL` counts as exactly 0
(also tiny negative values from optimiser noise), so it has p = 1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2

from vctest._pvalue import clean_statistic

__all__ = ["chibar_pvalue", "chibar_weights_orthant", "mixture_50_50", "mixture_slope",
           "orthant_projection_rank"]

#: Tolerance for the weights summing to one.
WEIGHT_SUM_TOL = 1e-8


def _as_statistic(stat: Any) -> float:
    if isinstance(stat, bool) or not isinstance(stat, numbers.Real):
        raise TypeError(f"`stat` must be a real number; got {type(stat).__name__}.")
    value = float(stat)
    if not math.isfinite(value):
        raise ValueError(f"`stat` must be finite; got {value}.")
    return float(clean_statistic(value))


def chibar_pvalue(stat: float, weights: Sequence[float], dfs: Sequence[float]) -> float:
    """Upper-tail p-value of a chi-bar-square mixture.

    ``p = sum_k weights[k] * P(chi2(dfs[k]) > stat)``, with chi2(0) the point
    mass at zero.

    Parameters
    ----------
    stat : float
        Observed statistic.  Values below ``ZERO_TOL`` (1e-8), including
        small negative ones, count as 0 and give p = 1.
    weights : sequence of float
        Mixture weights, non-negative, summing to 1 (within 1e-8).
    dfs : sequence of float
        Degrees of freedom, non-negative, one per weight.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For non-finite input, negative or unnormalised weights, negative
        degrees of freedom, or length mismatch.
    TypeError
        For a non-numeric ``stat``.

    Examples
    --------
    >>> round(chibar_pvalue(2.7055434, [0.5, 0.5], [0, 1]), 6)
    0.05
    >>> chibar_pvalue(5.7e-14, [0.5, 0.5], [0, 1])   # counts as 0
    1.0
    """
    t = _as_statistic(stat)
    w = np.asarray(weights, dtype=float).ravel()
    d = np.asarray(dfs, dtype=float).ravel()
    if w.size == 0 or w.size != d.size:
        raise ValueError(
            f"`weights` and `dfs` must be non-empty and of equal length; got {w.size} and {d.size}."
        )
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(d))):
        raise ValueError("`weights` and `dfs` must be finite.")
    if np.any(w < 0):
        raise ValueError("`weights` must be non-negative.")
    if abs(float(w.sum()) - 1.0) > WEIGHT_SUM_TOL:
        raise ValueError(f"`weights` must sum to 1; they sum to {w.sum():.12g}.")
    if np.any(d < 0):
        raise ValueError("`dfs` must be non-negative.")
    if t == 0.0:
        return 1.0
    tails = np.where(d > 0, chi2.sf(t, np.where(d > 0, d, 1.0)), 0.0)
    return float(min(1.0, max(0.0, float(np.dot(w, tails)))))


def mixture_50_50(stat: float) -> float:
    """p-value of the 50:50 mixture ``0.5 chi2(0) + 0.5 chi2(1)``.

    The Self & Liang (1987) reference for one variance on the boundary; for
    the exact finite-sample null use :func:`vctest.nulls.spectral.rlrt_null`.

    Parameters
    ----------
    stat : float
        Observed statistic (below 1e-8 counts as 0, giving p = 1).

    Returns
    -------
    float

    Examples
    --------
    >>> round(mixture_50_50(6.36895531362114), 8)   # Dyestuff RLRT
    0.0058067
    """
    return chibar_pvalue(stat, (0.5, 0.5), (0, 1))


def mixture_slope(stat: float) -> float:
    """p-value of ``0.5 chi2(1) + 0.5 chi2(2)``: adding a correlated random slope.

    Stram & Lee (1994): testing q = 1 against q + 1 = 2 correlated random
    effects (a random slope with its covariance with the intercept) adds
    one variance on the boundary and one unconstrained covariance.

    Parameters
    ----------
    stat : float
        Observed statistic (below 1e-8 counts as 0, giving p = 1).

    Returns
    -------
    float

    Examples
    --------
    >>> round(mixture_slope(0.83311), 4)   # Orthodont, varTestnlme vignette
    0.5103
    """
    return chibar_pvalue(stat, (0.5, 0.5), (1, 2))


#: Monte Carlo draws for the weights of an orthant of dimension 4 or more.
ORTHANT_NSIM = 40_000


def chibar_weights_orthant(cov: Any, *, nsim: int = ORTHANT_NSIM,
                           seed: int = 0) -> tuple[float, ...]:
    """Chi-bar-square weights for a non-negative orthant.

    For ``theta_hat ~ N(theta, V)`` and ``H0: theta = 0`` against
    ``theta >= 0`` (componentwise), the LRT is asymptotically
    ``sum_{k=0}^{r} w_k chi2(k)``, where ``w_k`` is the probability that the
    projection of N(0, V) onto the orthant (in the V^-1 metric) has exactly
    ``k`` positive components.  Closed forms (Kudo 1963; Shapiro 1985):

    * r = 1: ``w = (1/2, 1/2)``;
    * r = 2, rho = corr(V): ``w = (arccos(rho)/(2 pi), 1/2, 1/2 - arccos(rho)/(2 pi))``;
    * r = 3: ``w_3 = (2 pi - sum arccos rho_ij) / (4 pi)``,
      ``w_0 = (sum arccos rho_ij.k - pi) / (4 pi)`` with the partial
      correlations rho_ij.k, ``w_1 = 1/2 - w_3``, ``w_2 = 1/2 - w_0``.

    For r >= 4 the weights are estimated from ``nsim`` projections (a
    non-negative least-squares problem each) of draws with a fixed ``seed``,
    then the odd and the even weights are each rescaled to sum to 1/2 (a
    property of every orthant's weights); each weight's Monte Carlo standard
    error is at most ``0.5 / sqrt(nsim)`` (0.0025 by default).

    Parameters
    ----------
    cov : array_like, shape (r, r)
        Covariance (or correlation) matrix V of the tested parameters,
        symmetric positive definite.
    nsim : int, default 40000
        Monte Carlo draws for r >= 4.
    seed : int, default 0
        Seed of those draws (the weights of one V are always the same).

    Returns
    -------
    tuple of float
        ``(w_0, ..., w_r)``, for degrees of freedom ``0, ..., r``.

    Raises
    ------
    ValueError
        If ``cov`` is not a finite, symmetric, positive-definite square matrix.

    Examples
    --------
    >>> [round(w, 4) for w in chibar_weights_orthant([[1, .5], [.5, 1]])]
    [0.1667, 0.5, 0.3333]
    >>> [round(w, 4) for w in chibar_weights_orthant(np.eye(3))]
    [0.125, 0.375, 0.375, 0.125]
    >>> [round(w, 2) for w in chibar_weights_orthant(np.eye(4))]   # binomial(4, 1/2) / 16
    [0.06, 0.25, 0.38, 0.25, 0.06]
    """
    v = np.asarray(cov, dtype=float)
    if v.ndim != 2 or v.shape[0] != v.shape[1] or v.shape[0] < 1:
        raise ValueError(f"`cov` must be a square matrix; got shape {v.shape}.")
    if not np.all(np.isfinite(v)):
        raise ValueError("`cov` must be finite.")
    if not np.allclose(v, v.T, rtol=1e-10, atol=1e-12 * float(np.abs(v).max())):
        raise ValueError("`cov` must be symmetric.")
    v = 0.5 * (v + v.T)
    try:
        np.linalg.cholesky(v)
    except np.linalg.LinAlgError as exc:
        raise ValueError("`cov` must be positive definite.") from exc
    sd = np.sqrt(np.diag(v))
    corr = np.clip(v / np.outer(sd, sd), -1.0, 1.0)
    r = v.shape[0]
    if r == 1:
        return (0.5, 0.5)
    if r >= 4:
        return _orthant_weights_mc(corr, nsim, seed)
    two_pi = 2.0 * math.pi
    if r == 2:
        w0 = math.acos(float(corr[0, 1])) / two_pi
        return (w0, 0.5, 0.5 - w0)
    prec = np.linalg.inv(corr)
    d = np.sqrt(np.diag(prec))
    partial = np.clip(-prec / np.outer(d, d), -1.0, 1.0)  # rho_ij.k
    pairs = ((0, 1), (0, 2), (1, 2))
    s_corr = sum(math.acos(float(corr[i, j])) for i, j in pairs)
    s_part = sum(math.acos(float(partial[i, j])) for i, j in pairs)
    w3 = (two_pi - s_corr) / (4.0 * math.pi)
    w0 = (s_part - math.pi) / (4.0 * math.pi)
    return (w0, 0.5 - w3, 0.5 - w0, w3)


def orthant_projection_rank(corr: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Positive components of each row of ``z`` projected onto the orthant (V^-1 metric).

    ``min_{t >= 0} (z - t)' V^-1 (z - t)`` is a non-negative least-squares
    problem ``min ||L^-1 z - L^-1 t||`` with ``V = L L'``.
    """
    from scipy.optimize import nnls

    lower = np.linalg.cholesky(corr)
    a = np.linalg.inv(lower)
    out = np.empty(z.shape[0], dtype=np.int64)
    for i, row in enumerate(z):
        t, _ = nnls(a, a @ row)
        out[i] = int(np.count_nonzero(t > 0))
    return out


def _orthant_weights_mc(corr: np.ndarray, nsim: int, seed: int) -> tuple[float, ...]:
    r = corr.shape[0]
    z = np.random.default_rng(seed).multivariate_normal(np.zeros(r), corr, size=int(nsim))
    counts = np.bincount(orthant_projection_rank(corr, z), minlength=r + 1).astype(float)
    w = counts / counts.sum()
    even, odd = w[0::2].sum(), w[1::2].sum()
    w[0::2] *= 0.5 / even
    w[1::2] *= 0.5 / odd
    return tuple(float(x) for x in w)
