"""Exact null distributions of the (R)LRT for one variance component.

For the linear mixed model ``y = X beta + Z b + eps`` with
``b ~ N(0, sigma_b^2 Sigma)``, ``eps ~ N(0, sigma^2 I_n)`` and the variance
ratio ``lambda = sigma_b^2 / sigma^2``, Crainiceanu & Ruppert (2004,
*J. R. Statist. Soc. B* 66:165-185) show that the restricted likelihood-ratio
statistic for ``H0: lambda = lambda0`` (and the ML likelihood-ratio statistic
for ``H0: lambda = 0``) has the distribution of

    sup_{lambda >= 0} [ N log(1 + N(lambda)/D(lambda))
                        - sum_s log((1 + lambda mu_s)/(1 + lambda0 mu_s)) ]

with ``N(lambda)``, ``D(lambda)`` weighted sums of independent chi-square
variables, the weights depending only on the eigenvalues ``mu`` of
``Sigma^(1/2) Z' P0 Z Sigma^(1/2)`` (``P0 = I - X (X'X)^-1 X'``) and, for the
ML LRT, ``xi`` of ``Sigma^(1/2) Z' Z Sigma^(1/2)``.  The distribution is exact
(not asymptotic) for any sample size.

This module simulates it.  Repeated eigenvalues are grouped (a group of
multiplicity m needs one chi-square with m degrees of freedom instead of m
chi-squares with one), each draw is minimised globally (closed form for one
group, grid plus safeguarded Newton otherwise, see
:mod:`vctest.kernels.spectral`), and statistics that are exactly zero are
returned as ``0.0``.  Compared with RLRsim's ``RLRTSim``/``LRTSim``:

* ``lambda0 > 0`` gives the correct, non-degenerate distribution;
* the ML case scales ``mu`` and ``xi`` by one common constant, so the sample
  is invariant to the scale of Z;
* the profile is searched globally (no stop at the first decrease, no fixed
  grid bounds).
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from vctest._rng import SeedLike, replicate_seeds, seed_sequence
from vctest.kernels._jit import set_threads
from vctest.kernels.spectral import draw_null

__all__ = ["NullInputs", "group_eigenvalues", "lrt_inputs", "lrt_null", "rlrt_inputs", "rlrt_null"]

#: Grid points per decade of lambda for the global scan (refined by Newton).
POINTS_PER_DECADE = 10

#: The scan covers lambda * v_max >= 1e-4 up to lambda * v_min <= 1e4.
GRID_MARGIN = 1e4


# ----------------------------------------------------------------------------- validation


def _as_eigenvalues(values: Any, name: str) -> np.ndarray:
    """Validate eigenvalues: finite, real, 1-D, not negative beyond rounding."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be an array of real numbers.") from exc
    arr = np.atleast_1d(arr)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if arr.size:
        scale = float(np.max(np.abs(arr)))
        if float(arr.min()) < -1e-10 * scale:
            raise ValueError(
                f"`{name}` must be non-negative (eigenvalues of a positive semi-definite "
                f"matrix); smallest is {arr.min():.6g}."
            )
    return arr


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {type(value).__name__}.")
    if int(value) < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}; got {value}.")
    return int(value)


def _as_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    import numba

    t = _as_int(threads, "threads", 1)
    if t > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"`threads` must be at most {numba.config.NUMBA_NUM_THREADS} "
            f"(NUMBA_NUM_THREADS); got {t}."
        )
    return t


# ----------------------------------------------------------------------------- grouping


def group_eigenvalues(
    values: Any, *, rtol: float = 1e-9, zero_tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Group repeated eigenvalues and drop structural zeros.

    Values are sorted in decreasing order; a run of values within ``rtol``
    (relative to the largest value of the run) is merged into one group whose
    value is the run's mean.  Values below ``zero_tol * max(values)`` are
    structural zeros and are dropped (in the spectral representation they
    merge into the residual chi-square).

    Parameters
    ----------
    values : array_like
        Eigenvalues (non-negative up to ``-1e-10 * max``).
    rtol : float, default 1e-9
        Relative tolerance for equal eigenvalues.
    zero_tol : float, default 1e-10
        Relative threshold for zero eigenvalues.

    Returns
    -------
    distinct : numpy.ndarray of float
        Distinct non-zero values, ascending.
    multiplicity : numpy.ndarray of int
        Their multiplicities.

    Raises
    ------
    ValueError
        If ``values`` contains NaN, infinities or clearly negative values.

    Examples
    --------
    >>> v, m = group_eigenvalues([5.0, 5.0, 4.999999999999, 2.0, 1e-30])
    >>> v.round(6).tolist(), m.tolist()
    ([2.0, 5.0], [1, 3])
    """
    arr = _as_eigenvalues(values, "values")
    if not (np.isfinite(rtol) and rtol >= 0) or not (np.isfinite(zero_tol) and zero_tol >= 0):
        raise ValueError("`rtol` and `zero_tol` must be finite and non-negative.")
    if arr.size == 0 or float(arr.max()) <= 0.0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    top = float(arr.max())
    kept = np.sort(arr[arr > zero_tol * top])[::-1]
    bounds = _runs(kept, rtol)
    distinct = [float(kept[i:j].mean()) for i, j in itertools.pairwise(bounds)]
    return np.asarray(distinct[::-1]), np.diff(bounds)[::-1].astype(np.int64)


def _runs(desc: np.ndarray, rtol: float) -> np.ndarray:
    """Boundaries of the runs of equal values in ``desc`` (sorted decreasing).

    A run starts at its largest value ``head`` and takes every following value
    ``v`` with ``head - v <= rtol * head``.  The loop is over runs, not values
    (a million tied eigenvalues cost one binary search).
    """
    neg = -desc
    bounds = [0]
    i = 0
    while i < desc.size:
        head = desc[i]
        j = int(np.searchsorted(neg, -(head - rtol * head), side="right"))
        while j < desc.size and head - desc[j] <= rtol * head:  # rounding at the edge
            j += 1
        while j > i + 1 and head - desc[j - 1] > rtol * head:
            j -= 1
        i = max(j, i + 1)
        bounds.append(i)
    return np.asarray(bounds)


def _merge_groups(
    va: np.ndarray, wa: np.ndarray, vb: np.ndarray, wb: np.ndarray, rtol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of two grouped sets: (values ascending, weights of a, weights of b)."""
    vals = np.concatenate([va, vb])
    wts = np.concatenate(
        [np.column_stack([wa, np.zeros_like(wa)]), np.column_stack([np.zeros_like(wb), wb])]
    ).astype(float)
    order = np.argsort(-vals, kind="stable")
    vals, wts = vals[order], wts[order]
    bounds = _runs(vals, rtol)
    pairs = list(itertools.pairwise(bounds))
    out_v = [float(vals[i:j].mean()) for i, j in pairs]
    out_w = [wts[i:j].sum(axis=0) for i, j in pairs]
    w = np.asarray(out_w[::-1]).reshape(-1, 2)
    return np.asarray(out_v[::-1]), w[:, 0].copy(), w[:, 1].copy()


def _search_grid(
    vals: np.ndarray,
    dfa: np.ndarray,
    pen: np.ndarray,
    n_eff: float,
    ppd: int = POINTS_PER_DECADE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid {0} + log-spaced lambda, the active groups and the P and E tables."""
    lo = 1.0 / (GRID_MARGIN * vals.max())
    hi = GRID_MARGIN / vals.min()
    npts = int(np.ceil(np.log10(hi / lo) * ppd)) + 1
    grid = np.concatenate([[0.0], np.geomspace(lo, hi, npts)])
    lv = grid[:, None] * vals[None, :]
    active = np.flatnonzero(dfa > 0).astype(np.int64)
    pmat = 1.0 / (1.0 + lv[:, active].T)
    emat = np.exp(np.log1p(lv) @ pen / n_eff)
    return grid, active, np.ascontiguousarray(pmat), emat


@dataclass(frozen=True, eq=False)
class NullInputs:
    """The spectral kernel's inputs for one null distribution, validated and tabled once.

    Built by :func:`rlrt_inputs` or :func:`lrt_inputs`; :meth:`draw` then draws
    any range of the sample (draw ``i`` depends only on the seed and ``i``)
    without grouping the eigenvalues or building the search grid again -- what
    a caller drawing many small chunks (sequential stopping, power curves) needs.
    ``lambda_hat`` values are returned on the scale of the eigenvalues given.
    """

    vals: np.ndarray
    dfa: np.ndarray
    pen: np.ndarray
    n_eff: float
    df_r: float
    q: float
    lam0: float
    scale: float = 1.0
    closed_form: bool = True
    ppd: int = POINTS_PER_DECADE

    @cached_property
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The search grid, the active groups and the P and E tables."""
        return _search_grid(self.vals, self.dfa, self.pen, self.n_eff, self.ppd)

    def draw(self, nsim: int, seed: SeedLike, threads: int | None = None,
             start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``start .. start + nsim - 1``: ``(statistic, lambda_hat)``."""
        return self.draw_seeds(replicate_seeds(seed_sequence(seed), start, start + nsim),
                               threads)

    def draw_seeds(self, seeds: np.ndarray, threads: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """One draw per 64-bit seed (:func:`vctest._rng.replicate_seeds`): the draws of
        several samples -- several seeds' ranges, concatenated -- in one parallel call."""
        nsim = seeds.size
        grid, active, pmat, emat = self.tables
        stat = np.empty(nsim)
        lam = np.empty(nsim)
        previous = set_threads(threads)
        try:
            with np.errstate(over="ignore"):
                draw_null(
                    np.ascontiguousarray(seeds, dtype=np.uint64),
                    float(self.lam0),
                    np.ascontiguousarray(self.vals, dtype=float),
                    np.ascontiguousarray(self.dfa, dtype=float),
                    np.ascontiguousarray(self.pen, dtype=float),
                    float(self.n_eff),
                    float(self.df_r),
                    float(self.q),
                    grid,
                    active,
                    pmat,
                    emat,
                    bool(self.closed_form),
                    stat,
                    lam,
                )
        finally:
            set_threads(previous)
        return stat, lam / self.scale


def _run(
    vals: np.ndarray,
    dfa: np.ndarray,
    pen: np.ndarray,
    n_eff: float,
    df_r: float,
    q: float,
    lam0: float,
    nsim: int,
    seed: SeedLike,
    threads: int | None,
    closed_form: bool = True,
    ppd: int = POINTS_PER_DECADE,
    start: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Seed draws ``start .. start + nsim - 1``, call the kernel, return (stat, lam)."""
    inputs = NullInputs(vals, dfa, pen, n_eff, df_r, q, lam0, closed_form=closed_form, ppd=ppd)
    return inputs.draw(nsim, seed, threads, start)


def rlrt_inputs(mu: Any, n: int, p: int, lambda0: float = 0.0) -> NullInputs:
    """Validated kernel inputs of the RLRT null (see :func:`rlrt_null` for the arguments).

    Examples
    --------
    >>> import numpy as np
    >>> inputs = rlrt_inputs([5.0] * 5 + [0.0], n=30, p=1)
    >>> stat, _ = inputs.draw(1000, seed=1, start=1000)
    >>> bool(np.array_equal(stat, rlrt_null([5.0] * 5, 30, 1, nsim=2000, seed=1)[1000:]))
    True
    """
    n = _as_int(n, "n", 1)
    p = _as_int(p, "p", 0)
    if n <= p:
        raise ValueError(f"`n` must exceed `p`; got n={n}, p={p}.")
    if isinstance(lambda0, bool) or not isinstance(lambda0, numbers.Real):
        raise TypeError(f"`lambda0` must be a real number; got {type(lambda0).__name__}.")
    lambda0 = float(lambda0)
    if not np.isfinite(lambda0) or lambda0 < 0:
        raise ValueError(f"`lambda0` must be finite and non-negative; got {lambda0}.")
    vals, mult = group_eigenvalues(_as_eigenvalues(mu, "mu"))
    if vals.size == 0:
        raise ValueError("`mu` has no non-zero eigenvalue: the random effect is confounded with X.")
    k = int(mult.sum())
    if k > n - p:
        raise ValueError(f"`mu` has {k} non-zero eigenvalues, more than n - p = {n - p}.")
    scale = float(vals.max())
    return NullInputs(vals / scale, mult.astype(float), mult.astype(float), float(n - p),
                      float(n - p - k), 0.0, lambda0 * scale, scale=scale)


def lrt_inputs(mu: Any, xi: Any, n: int, p: int, q: int = 0) -> NullInputs:
    """Validated kernel inputs of the ML LRT null (see :func:`lrt_null` for the arguments)."""
    n = _as_int(n, "n", 1)
    p = _as_int(p, "p", 0)
    q = _as_int(q, "q", 0)
    if n <= p:
        raise ValueError(f"`n` must exceed `p`; got n={n}, p={p}.")
    if q > p:
        raise ValueError(f"`q` must not exceed `p`; got q={q}, p={p}.")
    mu_arr = _as_eigenvalues(mu, "mu")
    xi_arr = _as_eigenvalues(xi, "xi")
    vmu, mmu = group_eigenvalues(mu_arr)
    vxi, mxi = group_eigenvalues(xi_arr)
    if vmu.size == 0:
        raise ValueError("`mu` has no non-zero eigenvalue: the random effect is confounded with X.")
    if vxi.size == 0:
        raise ValueError("`xi` has no non-zero eigenvalue.")
    k = int(mmu.sum())
    if n - p - k < 1:
        raise ValueError(
            f"the LRT needs n - p - K >= 1 (K = {k} non-zero eigenvalues of `mu`, "
            f"n - p = {n - p}); the ML likelihood is unbounded otherwise."
        )
    scale = max(float(vmu.max()), float(vxi.max()))
    vals, dfa, pen = _merge_groups(vmu / scale, mmu, vxi / scale, mxi, 1e-9)
    return NullInputs(vals, dfa, pen, float(n), float(n - p - k), float(q), 0.0, scale=scale)


# ----------------------------------------------------------------------------- public API


def rlrt_null(
    mu: Any,
    n: int,
    p: int,
    *,
    lambda0: float = 0.0,
    nsim: int = 10_000,
    seed: SeedLike = None,
    threads: int | None = None,
    return_lambda: bool = False,
    start: int = 0,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Simulate the exact null distribution of the RLRT for one variance component.

    Draws from the spectral representation of Crainiceanu & Ruppert (2004,
    JRSS-B 66:165-185) of the restricted likelihood-ratio statistic for
    ``H0: lambda = lambda0`` against ``lambda > lambda0``, where
    ``lambda = sigma_b^2 / sigma^2``.  With A_j ~ chi2(m_j) for the distinct
    non-zero eigenvalue groups mu_j and R ~ chi2(n - p - K),

        RLRT = g(lambda0) - min_{lambda >= 0} g(lambda),
        g(lambda) = (n - p) log D(lambda) + sum_j m_j log(1 + lambda mu_j),
        D(lambda) = sum_j (1 + lambda0 mu_j) A_j / (1 + lambda mu_j) + R.

    Parameters
    ----------
    mu : array_like
        Eigenvalues of ``Sigma^(1/2) Z' P0 Z Sigma^(1/2)``, on any scale (they
        are normalised internally; zeros are allowed and merge into R).
    n : int
        Number of observations.
    p : int
        Number of fixed effects (rank of X).
    lambda0 : float, default 0.0
        Null value of the variance ratio, **on the scale of the given** ``mu``
        (i.e. for the Z that produced ``mu``).  Must be finite and >= 0.
    nsim : int, default 10000
        Number of draws.
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Seed; draw ``i`` depends only on the seed and ``i``.
    threads : int, optional
        Numba threads for this call (default: all); the sample does not
        depend on it.
    return_lambda : bool, default False
        Also return the minimising lambda of each draw (on the scale of ``mu``).
    start : int, default 0
        Index of the first draw: ``start=s, nsim=m`` returns draws ``s`` to
        ``s + m - 1`` of the same seed's sequence, so a run can be split
        into chunks (e.g. over a Dask cluster) without changing a number.

    Returns
    -------
    numpy.ndarray of float, shape (nsim,)
        Simulated statistics, >= 0; exact zeros are ``0.0``.  With
        ``return_lambda``, a tuple ``(stat, lambda_hat)``.

    Raises
    ------
    ValueError
        For invalid eigenvalues, ``n <= p``, more non-zero eigenvalues than
        ``n - p``, no non-zero eigenvalue, ``nsim < 1`` or an invalid ``lambda0``.
    TypeError
        For non-integer ``n``, ``p``, ``nsim`` or ``threads``, or a
        non-numeric ``lambda0``.

    See Also
    --------
    lrt_null : the ML likelihood-ratio statistic.

    Notes
    -----
    For ``lambda0 = 0`` the distribution has a point mass at zero of about
    one half; statistics that are exactly zero (certified by Jensen's
    inequality, or by a vanishing decrease with a non-negative derivative at
    0) are returned as ``0.0``.  For ``lambda0 > 0`` the point mass is zero.

    References
    ----------
    Crainiceanu, C. M. and Ruppert, D. (2004). Likelihood ratio tests in
    linear mixed models with one variance component. *J. R. Statist. Soc. B*
    66(1), 165-185.

    Examples
    --------
    Balanced one-way layout with K = 6 groups of J = 5 (Dyestuff): mu = 5
    with multiplicity 5.  The exact mass at zero is P(F(5, 24) <= 1) = 0.5611.

    >>> import numpy as np
    >>> sample = rlrt_null([5.0] * 5 + [0.0], n=30, p=1, nsim=20_000, seed=1)
    >>> bool(abs(np.mean(sample == 0) - 0.5611) < 0.015)
    True
    >>> bool(sample.min() >= 0)
    True
    """
    inputs = rlrt_inputs(mu, n, p, lambda0)
    stat, lam = inputs.draw(_as_int(nsim, "nsim", 1), seed, _as_threads(threads),
                            _as_int(start, "start", 0))
    if return_lambda:
        return stat, lam
    return stat


def lrt_null(
    mu: Any,
    xi: Any,
    n: int,
    p: int,
    *,
    q: int = 0,
    nsim: int = 10_000,
    seed: SeedLike = None,
    threads: int | None = None,
    return_lambda: bool = False,
    start: int = 0,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Simulate the exact null distribution of the ML LRT for one variance component.

    Crainiceanu & Ruppert (2004, JRSS-B 66:165-185) representation of the
    likelihood-ratio statistic for ``H0: lambda = 0`` (plus, optionally, ``q``
    linear restrictions on the fixed effects).  With A_j ~ chi2 for the REML
    eigenvalue groups, R ~ chi2(n - p - K), T = sum A_j + R and U ~ chi2(q),

        LRT = n log T - min_{lambda >= 0} [n log D(lambda) + sum_j m^xi_j log(1 + lambda xi_j)]
              + n log(1 + U / T).

    Parameters
    ----------
    mu : array_like
        Eigenvalues of ``Sigma^(1/2) Z' P0 Z Sigma^(1/2)`` (P0 for the
        alternative model's X).
    xi : array_like
        Eigenvalues of ``Sigma^(1/2) Z' Z Sigma^(1/2)``.  ``mu`` and ``xi``
        must come from the same Z; both are divided by one common constant
        ``max(mu.max(), xi.max())``, so the sample does not depend on the
        scale of Z.
    n : int
        Number of observations.
    p : int
        Number of fixed effects of the alternative model.
    q : int, default 0
        Number of fixed effects removed under the null (0 <= q <= p).
    nsim : int, default 10000
        Number of draws.
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Seed; draw ``i`` depends only on the seed and ``i``.
    threads : int, optional
        Numba threads for this call (default: all); the sample does not
        depend on it.
    return_lambda : bool, default False
        Also return the minimising lambda of each draw (on the scale of ``mu``).
    start : int, default 0
        Index of the first draw (see :func:`rlrt_null`).

    Returns
    -------
    numpy.ndarray of float, shape (nsim,)
        Simulated statistics, >= 0 (with a point mass at 0 when ``q = 0``).
        With ``return_lambda``, a tuple ``(stat, lambda_hat)``.

    Raises
    ------
    ValueError
        For invalid eigenvalues, ``n - p - K < 1`` (the ML likelihood is then
        unbounded), ``q > p``, ``nsim < 1``, or no non-zero eigenvalue.
    TypeError
        For non-integer ``n``, ``p``, ``q``, ``nsim`` or ``threads``.

    See Also
    --------
    rlrt_null : the restricted (REML) statistic, preferable when q = 0.

    References
    ----------
    Crainiceanu, C. M. and Ruppert, D. (2004). Likelihood ratio tests in
    linear mixed models with one variance component. *J. R. Statist. Soc. B*
    66(1), 165-185.

    Examples
    --------
    Balanced one-way layout, K = 6 groups of J = 5: mu = 5 (multiplicity 5),
    xi = 5 (multiplicity 6).  The exact mass at zero is P(F(5, 24) <= 6/5).

    >>> import numpy as np
    >>> from scipy.stats import f
    >>> sample = lrt_null([5.0] * 5, [5.0] * 6, n=30, p=1, nsim=20_000, seed=1)
    >>> bool(abs(np.mean(sample == 0) - f.cdf(1.2, 5, 24)) < 0.015)
    True
    """
    inputs = lrt_inputs(mu, xi, n, p, q)
    stat, lam = inputs.draw(_as_int(nsim, "nsim", 1), seed, _as_threads(threads),
                            _as_int(start, "start", 0))
    if return_lambda:
        return stat, lam
    return stat
