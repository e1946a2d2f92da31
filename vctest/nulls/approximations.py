"""Reading a bootstrap sample: moment-matched approximations and sequential stopping.

Approximations (as pbkrtest's ``PBmodcomp`` reports them, Halekoh & Højsgaard
2014), computed from *all* successful replicates -- zeros included, where
``PBmodcomp`` uses only the replicates above zero
(tests/test_approximations.py checks both formulas against it on the same sample):

* **Bartlett-corrected LRT**: ``t * df / mean(T*)`` referred to chi2(df);
* **gamma**: the gamma law with the mean and variance of ``T*``.

Sequential stopping: looks at B = 100, 200, 400, ... and at the maximum; at
each look a two-sided Clopper-Pearson interval for the true p-value at level
``1 - error / (number of looks)`` is formed from the exceedances so far.  The
run stops as soon as the interval lies wholly above or below ``alpha``: by the
union bound the decision then differs from the one an unlimited run would
make with probability at most ``error``.  A strongly significant test stops
after a few hundred replicates (no exceedance in 400 draws already places p
below 0.05 with error 1e-3), and so does a clearly non-significant one
(compare Besag & Clifford 1991; Gandy 2009).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import chi2, gamma


def bartlett_pvalue(statistic: float, sample: np.ndarray, df: int) -> float:
    """p-value of the Bartlett-scaled statistic ``t * df / mean(T*)`` against chi2(df).

    Examples
    --------
    >>> import numpy as np
    >>> sample = np.random.default_rng(1).chisquare(2, 100_000)
    >>> round(bartlett_pvalue(5.99, sample, 2), 2)
    0.05
    """
    m = float(np.mean(sample))
    if not m > 0:
        return 1.0 if statistic <= 0 else float("nan")
    return float(chi2.sf(statistic * df / m, df))


def gamma_pvalue(statistic: float, sample: np.ndarray) -> float:
    """p-value from the gamma law with the sample's mean and variance.

    Examples
    --------
    >>> import numpy as np
    >>> sample = np.random.default_rng(1).chisquare(2, 100_000)
    >>> round(gamma_pvalue(5.99, sample), 2)
    0.05
    """
    m, v = float(np.mean(sample)), float(np.var(sample, ddof=1)) if sample.size > 1 else 0.0
    if not (m > 0 and v > 0):
        return 1.0 if statistic <= 0 else float("nan")
    return float(gamma.sf(statistic, a=m * m / v, scale=v / m))


def looks(nsim: int, first: int = 100) -> list[int]:
    """Replicate counts at which a sequential run checks whether to stop.

    Examples
    --------
    >>> looks(1000)
    [100, 200, 400, 800, 1000]
    """
    out, b = [], first
    while b < nsim:
        out.append(b)
        b *= 2
    return [*out, nsim]


def clopper_pearson(k: int, n: int, error: float) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for a proportion at level ``1 - error``."""
    lo = 0.0 if k == 0 else float(beta_dist.ppf(error / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta_dist.ppf(1 - error / 2, k + 1, n - k))
    return lo, hi


def decision_is_clear(k: int, n: int, alpha: float, error: float) -> bool:
    """Whether ``k`` exceedances in ``n`` draws settle ``p < alpha`` at this error.

    Examples
    --------
    >>> decision_is_clear(0, 400, 0.05, 1e-3 / 5)   # p clearly below 0.05
    True
    >>> decision_is_clear(15, 400, 0.05, 1e-3 / 5)  # p near 0.04: not yet
    False
    """
    if n <= 0:
        return False
    lo, hi = clopper_pearson(k, n, error)
    return hi < alpha or lo > alpha


@functools.lru_cache(maxsize=256)
def decision_bounds(n: int, alpha: float, error: float) -> tuple[int, int]:
    """Exceedance counts that settle the decision after ``n`` draws, computed once.

    :func:`decision_is_clear` ``(k, n, alpha, error)`` holds exactly when
    ``k <= below`` (p < alpha settled) or ``k >= above`` (p > alpha settled);
    ``below`` is -1 and ``above`` is ``n + 1`` when no count settles it.  A
    caller that checks many runs at the same looks compares integers instead
    of evaluating beta quantiles at every look.

    Examples
    --------
    >>> below, above = decision_bounds(400, 0.05, 1e-3 / 5)
    >>> [decision_is_clear(k, 400, 0.05, 1e-3 / 5) for k in (below, below + 1, above - 1, above)]
    [True, False, False, True]
    """
    if n <= 0:
        return -1, n + 1

    def first(settled: Any) -> int:
        """The least k in 0..n+1 with ``settled(k)`` (monotone: False, ..., True)."""
        a, b = 0, n + 1  # settled(n + 1) counts as True
        while a < b:
            mid = (a + b) // 2
            if settled(mid):
                b = mid
            else:
                a = mid + 1
        return a

    # hi and lo grow with k: p < alpha is settled for k < first(hi >= alpha),
    # p > alpha for k >= first(lo > alpha)
    below = first(lambda k: k > n or clopper_pearson(k, n, error)[1] >= alpha) - 1
    above = first(lambda k: k > n or clopper_pearson(k, n, error)[0] > alpha)
    return below, above


def per_look_error(nsim: int, error: float) -> float:
    """The error spent at each look (Bonferroni over :func:`looks`)."""
    return error / max(len(looks(nsim)), 1)


def mc_standard_error(p: float, n: int) -> float:
    """Binomial Monte Carlo standard error of a p-value estimated from ``n`` draws."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))
