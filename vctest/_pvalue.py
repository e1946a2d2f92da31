"""The one p-value helper for simulated reference distributions.

Every Monte Carlo p-value in vctest goes through :func:`monte_carlo_pvalue`:

* p = (1 + #{T* >= t}) / (1 + B)  (Davison & Hinkley 1997; Phipson & Smyth 2010),
  so a p-value is never 0 and the test is exact at level alpha for any B;
* a draw within a relative tolerance of the observed statistic counts as a tie
  (as ``>=``), so rounding noise cannot flip a draw below the observed value;
* statistics (observed and simulated) below :data:`ZERO_TOL` count as exactly 0,
  so a boundary fit whose statistic is 5e-14 has p = 1, not p < 1;
* the Monte Carlo standard error sqrt(p(1 - p)/B) and a 95% Wilson interval
  for the p-value come with it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

#: A likelihood-ratio statistic below this counts as exactly zero.
ZERO_TOL = 1e-8

#: Relative tolerance for ties between a simulated and the observed statistic.
TIE_RTOL = 1e-9


def clean_statistic(values: np.ndarray | float) -> np.ndarray | float:
    """Set statistics below :data:`ZERO_TOL` (including tiny negatives) to 0.

    Tiny negative differences of two log-likelihoods arise from optimiser noise
    at the boundary; they are zeros, not draws to drop.
    """
    if np.isscalar(values):
        v = float(values)  # type: ignore[arg-type]
        return 0.0 if v < ZERO_TOL else v
    arr = np.asarray(values, dtype=float).copy()
    arr[arr < ZERO_TOL] = 0.0
    return arr


@dataclass(frozen=True)
class MonteCarloPValue:
    """A simulated p-value with its Monte Carlo error.

    Attributes
    ----------
    pvalue : float
        (1 + #{T* >= t}) / (1 + B).
    n_exceed : int
        Number of simulated statistics at or above the observed one.
    n_sim : int
        Number of simulated statistics used (B).
    se : float
        Monte Carlo standard error, sqrt(p (1 - p) / B).
    ci : tuple of float
        95% Wilson score interval for the p-value.
    """

    pvalue: float
    n_exceed: int
    n_sim: int
    se: float
    ci: tuple[float, float]


@functools.lru_cache(maxsize=16)
def _normal_quantile(q: float) -> float:
    """The standard normal quantile (cached: a power curve asks for it per data set)."""
    from scipy.stats import norm

    return float(norm.ppf(q))


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n."""
    if n <= 0:
        return (0.0, 1.0)
    z = _normal_quantile(0.5 + level / 2)
    phat = k / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    lower = 0.0 if k == 0 else max(0.0, centre - half)
    upper = 1.0 if k == n else min(1.0, centre + half)
    return (lower, upper)


def monte_carlo_pvalue(observed: float, null_sample: np.ndarray) -> MonteCarloPValue:
    """Upper-tail Monte Carlo p-value of ``observed`` against ``null_sample``.

    Parameters
    ----------
    observed : float
        The observed statistic (NaN is refused).
    null_sample : array_like
        Simulated statistics under the null (NaN entries are refused; failed
        replicates must be removed by the caller, which reports them).

    Returns
    -------
    MonteCarloPValue

    Examples
    --------
    >>> import numpy as np
    >>> res = monte_carlo_pvalue(2.0, np.array([0.0, 0.0, 1.0, 3.0]))
    >>> res.pvalue, res.n_exceed
    (0.4, 1)
    >>> monte_carlo_pvalue(1e-12, np.array([0.0, 0.5])).pvalue  # counts as 0
    1.0
    """
    if not np.isfinite(observed):
        raise ValueError(f"the observed statistic must be finite; got {observed}.")
    sample = np.asarray(null_sample, dtype=float)
    if sample.ndim != 1 or sample.size == 0:
        raise ValueError("`null_sample` must be a non-empty one-dimensional array.")
    if np.isnan(sample).any():
        raise ValueError("`null_sample` contains NaN; remove failed replicates first.")
    return pvalue_from_counts(count_exceed(observed, sample), sample.size)


def count_exceed(observed: float, sample: np.ndarray) -> int:
    """#{T* >= t} with ties at a relative 1e-9 (all draws when t counts as 0)."""
    t = clean_statistic(float(observed))
    if t == 0.0:
        return int(np.asarray(sample).size)  # every draw is >= 0
    return int(np.count_nonzero(np.asarray(sample) >= t - TIE_RTOL * abs(t)))


def pvalue_from_counts(k: int, b: int) -> MonteCarloPValue:
    """(1 + k)/(1 + b) with its Monte Carlo SE and interval, from exceedance counts.

    Examples
    --------
    >>> pvalue_from_counts(1, 4).pvalue
    0.4
    """
    if b < 1 or not 0 <= k <= b:
        raise ValueError(f"need 0 <= k <= b and b >= 1; got k={k}, b={b}.")
    p = (1 + k) / (1 + b)
    se = math.sqrt(p * (1 - p) / b)
    lo, hi = wilson_interval(k, b)
    # the interval is for #{T* >= t}/B; map to the (1+k)/(1+B) scale conservatively
    ci = (min(lo, p), max(hi, p))
    return MonteCarloPValue(pvalue=p, n_exceed=k, n_sim=b, se=se, ci=ci)
