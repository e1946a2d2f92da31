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

__all__ = ["chibar_pvalue", "chibar_weights_orthant", "mixture_50_50", "mixture_slope"]

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


def chibar_weights_orthant(cov: Any) -> tuple[float, ...]:
    """Chi-bar-square weights for a non-negative orthant in 2 or 3 dimensions.

    For ``theta_hat ~ N(theta, V)`` and ``H0: theta = 0`` against
    ``theta >= 0`` (componentwise), the LRT is asymptotically
    ``sum_{k=0}^{r} w_k chi2(k)``, where ``w_k`` is the probability that the
    projection of N(0, V) onto the orthant (in the V^-1 metric) has exactly
    ``k`` positive components.  Closed forms (Kudo 1963; Shapiro 1985):

    * r = 2, rho = corr(V): ``w = (arccos(rho)/(2 pi), 1/2, 1/2 - arccos(rho)/(2 pi))``;
    * r = 3: ``w_3 = (2 pi - sum arccos rho_ij) / (4 pi)``,
      ``w_0 = (sum arccos rho_ij.k - pi) / (4 pi)`` with the partial
      correlations rho_ij.k, ``w_1 = 1/2 - w_3``, ``w_2 = 1/2 - w_0``.

    Parameters
    ----------
    cov : array_like, shape (r, r)
        Covariance (or correlation) matrix V of the tested parameters,
        symmetric positive definite, r = 2 or 3.

    Returns
    -------
    tuple of float
        ``(w_0, ..., w_r)``, for degrees of freedom ``0, ..., r``.

    Raises
    ------
    ValueError
        If ``cov`` is not a finite, symmetric, positive-definite 2x2 or 3x3
        matrix (larger orthants need Monte Carlo weights).

    Examples
    --------
    >>> [round(w, 4) for w in chibar_weights_orthant([[1, .5], [.5, 1]])]
    [0.1667, 0.5, 0.3333]
    >>> [round(w, 4) for w in chibar_weights_orthant(np.eye(3))]
    [0.125, 0.375, 0.375, 0.125]
    """
    v = np.asarray(cov, dtype=float)
    if v.ndim != 2 or v.shape[0] != v.shape[1] or v.shape[0] not in (2, 3):
        raise ValueError(
            f"`cov` must be a 2x2 or 3x3 matrix; got shape {v.shape} "
            "(larger orthants need Monte Carlo weights)."
        )
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
    two_pi = 2.0 * math.pi
    if v.shape[0] == 2:
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
