"""Null-distribution kernels for the spectral (R)LRT of one variance component.

Crainiceanu & Ruppert (2004, JRSS-B 66:165-185) show that, for a linear mixed
model with one variance ratio lambda, the null distributions of the RLRT and
LRT are functionals of independent chi-square variables weighted by the
eigenvalues of the design.  With the distinct non-zero eigenvalues v_j grouped
(multiplicities become chi-square degrees of freedom), one draw is

    A_j ~ chi2(dfa_j),  R ~ chi2(df_r),  T = sum_j A_j + R,
    At_j = (1 + lambda0 v_j) A_j,
    D(lam) = sum_j At_j / (1 + lam v_j) + R,
    f(lam) = N log D(lam) + sum_j c_j log(1 + lam v_j),
    stat   = f(lambda0) - min_{lam >= 0} f(lam)

with N = n - p and c_j = dfa_j (RLRT), or N = n and c_j the multiplicities of
the ML eigenvalues (LRT; then ``+ n log(1 + U/T)``, U ~ chi2(q)).  Because
D(lambda0) = T, ``stat = N log1p(Num/D) - sum_j c_j log1p((lam - lambda0) b_j)``
with C&R's numerator ``Num = T - D = sum_j A_j (lam - lambda0) v_j/(1 + lam v_j)``
and ``b_j = v_j / (1 + lambda0 v_j)``: that is how the statistic is evaluated
(no cancellation between two large logarithms).

The minimisation per draw:

* lambda0 = 0: Jensen's inequality (D/T is a convex combination of the
  1/(1 + lam v_j) and 1) gives
  f(lam) - f(0) >= sum_j (c_j - N A_j/T) log(1 + lam v_j).  By Abel summation
  (log(1 + lam v) increases with v) the right side is >= 0 for every lam when
  all suffix sums sum_{v_k >= v_j} (c_k T - N A_k) are >= 0 -- in particular
  when N A_j <= c_j T for every group.  The statistic is then exactly 0 and no
  search is done (for one group this is exactly the sign of f'(0));
* one group: closed form, x* = 1 + lam* v = max(1, At (N - c) / (c R));
* otherwise a global scan of ``h_k = E_k (sum_j At_j P[k, j] + R)`` on a
  precomputed log-spaced grid (P[k, j] = 1/(1 + lam_k v_j),
  E_k = exp(sum_j c_j log(1 + lam_k v_j) / N), so argmin h = argmin f and a
  grid point costs G multiply-adds), then a safeguarded Newton refinement of
  f'(lam) = 0 (analytic first and second derivatives, bisection fallback)
  inside the bracket of *every* local minimum on the grid; a minimum at the
  top end of the grid is followed upwards by decades.

Replicate ``i`` seeds its own xoshiro256** state from ``seeds[i]``, so the
sample is bit-identical for any thread count.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import interpreted, jit, prange
from vctest.kernels.random import chisquare, seed_state
from vctest.kernels.tiers import Tier, run_rows

# Constants are written as literals inside the kernels (kernels capture no
# globals); their values, for reference:
#   256   replicates per parallel work item (scratch arrays allocated per item);
#   1e15  cap on lam * v_min when following a minimum above the grid;
#   16    local minima of the grid refined per draw, at most.
CHUNK = 256


@jit
def _derivatives(lam, at, r, vals, pen, n_eff):
    """Return (f'(lam), f''(lam)) of f = N log D + sum c_j log(1 + lam v_j)."""
    d = r
    d1 = 0.0
    d2 = 0.0
    s1 = 0.0
    s2 = 0.0
    for j in range(vals.size):
        v = vals[j]
        w = 1.0 / (1.0 + lam * v)
        vw = v * w
        x = at[j] * w
        d += x
        xv = x * vw
        d1 -= xv
        d2 += 2.0 * xv * vw
        cv = pen[j] * vw
        s1 += cv
        s2 += cv * vw
    q = d1 / d
    return n_eff * q + s1, n_eff * (d2 / d - q * q) - s2


@jit
def _stat_at(lam, lam0, a, at, r, vals, b, pen, n_eff):
    """f(lambda0) - f(lam), evaluated without cancellation (see module doc)."""
    dlam = lam - lam0
    num = 0.0
    den = r
    pens = 0.0
    for j in range(vals.size):
        w = 1.0 / (1.0 + lam * vals[j])
        num += a[j] * dlam * vals[j] * w
        den += at[j] * w
        pens += pen[j] * math.log1p(dlam * b[j])
    return n_eff * math.log1p(num / den) - pens


@jit
def _refine(lo, x0, hi, at, r, vals, pen, n_eff):
    """Minimise f on [lo, hi] from the grid point x0 (f(x0) <= f(lo), f(hi)).

    Safeguarded Newton on f'(lam) = 0: the bracket is the half of [lo, hi]
    where f' changes sign; Newton steps that leave it, or a non-positive
    curvature, fall back to bisection (geometric when lo > 0).  Returns x0 if
    no sign change is found (a feature narrower than the grid).
    """
    fp0, fpp0 = _derivatives(x0, at, r, vals, pen, n_eff)
    if fp0 == 0.0:
        return x0
    if fp0 > 0.0:
        if x0 <= lo:
            return x0
        fpl, _ = _derivatives(lo, at, r, vals, pen, n_eff)
        if fpl >= 0.0:
            return x0
        hi = x0
    else:
        fph, _ = _derivatives(hi, at, r, vals, pen, n_eff)
        if fph <= 0.0:
            return x0
        lo = x0
    x = x0
    fp = fp0
    fpp = fpp0
    for _ in range(100):
        xn = -1.0
        if fpp > 0.0:
            xn = x - fp / fpp
        if not (lo < xn < hi):
            if lo > 0.0:
                xn = math.sqrt(lo * hi)
            else:
                xn = 0.5 * hi
        step = abs(xn - x)
        x = xn
        if step <= 1e-14 * x:
            break
        fp, fpp = _derivatives(x, at, r, vals, pen, n_eff)
        if fp > 0.0:
            hi = x
        elif fp < 0.0:
            lo = x
        else:
            break
        if hi - lo <= 1e-15 * hi:
            break
    return x


@jit
def _search(lam0, a, at, r, t, vals, b, pen, n_eff, grid, active, pmat, emat, h, atc):
    """Global minimisation of f for one draw; returns (stat, argmin lam).

    ``pmat`` has one row per *active* group (``dfa > 0``, listed in
    ``active``); groups without a chi-square term only enter through ``emat``.
    """
    m = grid.size
    ga = active.size
    for jj in range(ga):
        atc[jj] = at[active[jj]]
    # loop order: groups outer, grid inner (independent accumulators, SIMD)
    for k in range(m):
        h[k] = r
    for jj in range(ga):
        aj = atc[jj]
        for k in range(m):
            h[k] += aj * pmat[jj, k]
    kbest = 0
    hbest = np.inf
    for k in range(m):
        hk = h[k] * emat[k]
        h[k] = hk
        if hk < hbest:
            hbest = hk
            kbest = k
    best = 0.0
    lam_best = lam0
    ncand = 0
    for k in range(m):
        is_min = k == kbest
        if not is_min and ncand < 15:
            is_min = (k == 0 or h[k] < h[k - 1]) and (k == m - 1 or h[k] <= h[k + 1])
        if not is_min:
            continue
        ncand += 1
        if k == m - 1:
            # follow the minimum above the grid, a decade at a time
            lo = grid[m - 2]
            mid = grid[m - 1]
            s_mid = _stat_at(mid, lam0, a, at, r, vals, b, pen, n_eff)
            hi = mid * 10.0
            while hi * vals[0] < 1e15:
                s_hi = _stat_at(hi, lam0, a, at, r, vals, b, pen, n_eff)
                if s_hi <= s_mid:
                    break
                lo = mid
                mid = hi
                s_mid = s_hi
                hi = mid * 10.0
            x = _refine(lo, mid, hi, at, r, vals, pen, n_eff)
        elif k == 0:
            x = _refine(0.0, 0.0, grid[1], at, r, vals, pen, n_eff)
        else:
            x = _refine(grid[k - 1], grid[k], grid[k + 1], at, r, vals, pen, n_eff)
        st = _stat_at(x, lam0, a, at, r, vals, b, pen, n_eff)
        xg = grid[k]
        stg = _stat_at(xg, lam0, a, at, r, vals, b, pen, n_eff)
        if stg > st:
            st = stg
            x = xg
        if st > best:
            best = st
            lam_best = x
    if lam0 == 0.0:
        # exact zero: no decrease beyond rounding and f'(0) >= 0
        tol = 1e-12 * max(1.0, abs(n_eff * math.log(t)))
        if best <= tol:
            fp0, _ = _derivatives(0.0, at, r, vals, pen, n_eff)
            if fp0 >= 0.0:
                return 0.0, 0.0
    return best, lam_best


@jit
def _one_group(lam0, a, at, r, v, b, c, n_eff):
    """Closed-form minimum for a single eigenvalue group; returns (stat, lam).

    With x = 1 + lam v, f = N log(At/x + R) + c log x has
    f'(x) proportional to c (At + R x) - N At, increasing in x, so the
    minimiser over x >= 1 is max(1, At (N - c) / (c R)).  Scalars only (no
    array arguments: this is on the hot path).
    """
    if c >= n_eff:
        x = 1.0
    elif r > 0.0:
        x = max(1.0, at * (n_eff - c) / (c * r))
    else:
        return np.inf, np.inf
    lam = (x - 1.0) / v
    if lam0 == 0.0 and lam == 0.0:
        return 0.0, 0.0
    dlam = lam - lam0
    w = 1.0 / x
    st = n_eff * math.log1p(a * dlam * v * w / (at * w + r)) - c * math.log1p(dlam * b)
    if st < 0.0:
        return 0.0, lam0
    return st, lam


@jit(parallel=True)
def spectral_null(
    seeds,
    lam0,
    vals,
    dfa,
    pen,
    n_eff,
    df_r,
    q,
    grid,
    active,
    pmat,
    emat,
    closed_form,
    stat,
    lam_hat,
):
    """Fill ``stat`` and ``lam_hat`` with null draws, one per entry of ``seeds``.

    Parameters
    ----------
    seeds : uint64[nsim]
        One seed per replicate; replicate i depends on ``seeds[i]`` only.
    lam0 : float
        Null value of the variance ratio on the scale of ``vals`` (0 for the LRT).
    vals : float64[G]
        Distinct non-zero eigenvalues, ascending.
    dfa : float64[G]
        Degrees of freedom of A_j (REML multiplicities; 0 for an eigenvalue that
        only appears in the ML set of the LRT).
    pen : float64[G]
        Penalty weights c_j (REML multiplicities for the RLRT, ML multiplicities
        for the LRT).
    n_eff : float
        N = n - p (RLRT) or n (LRT).
    df_r : float
        Degrees of freedom of R (n - p - K, K = number of non-zero REML eigenvalues).
    q : float
        Number of tested fixed effects (LRT); 0 for none.
    grid : float64[M]
        Search grid, ``grid[0] = 0`` then increasing.
    active : int64[Ga]
        Indices of the groups with ``dfa > 0`` (ascending).
    pmat : float64[Ga, M]
        1 / (1 + grid[k] * vals[active[jj]]) at ``[jj, k]``.
    emat : float64[M]
        exp(sum_j pen[j] * log1p(grid[k] * vals[j]) / n_eff).
    closed_form : bool
        Use the closed form when G == 1 (otherwise always search).
    stat, lam_hat : float64[nsim]
        Output: statistics and the minimising lambda (``lam0`` when stat is 0
        for lam0 > 0, and 0 for an exact zero at lam0 = 0).
    """
    nsim = seeds.size
    g = vals.size
    m = grid.size
    scale = np.empty(g)
    b = np.empty(g)
    for j in range(g):
        scale[j] = 1.0 + lam0 * vals[j]
        b[j] = vals[j] / scale[j]
    nchunks = (nsim + 255) // 256
    for c in prange(nchunks):
        state = np.empty(4, dtype=np.uint64)
        a = np.empty(g)
        at = np.empty(g)
        h = np.empty(m)
        atc = np.empty(active.size)
        start = c * 256
        stop = min(nsim, start + 256)
        for i in range(start, stop):
            # One draw.  The body is written out here rather than in a helper:
            # a call passing a dozen arrays costs more than the draw itself.
            # Variates in a fixed order: A_1..A_G, R, then U (only if q > 0).
            seed_state(seeds[i], state)
            t = 0.0
            for j in range(g):
                aj = chisquare(state, dfa[j])
                a[j] = aj
                at[j] = scale[j] * aj
                t += aj
            r = chisquare(state, df_r)
            t += r
            extra = 0.0
            if q > 0.0:
                extra = n_eff * math.log1p(chisquare(state, q) / t)
            if lam0 == 0.0:
                # Jensen certificate: suffix sums over decreasing eigenvalues >= 0
                certified = True
                suffix = 0.0
                for j in range(g - 1, -1, -1):
                    suffix += pen[j] * t - n_eff * a[j]
                    if suffix < 0.0:
                        certified = False
                        break
                if certified:
                    stat[i] = extra
                    lam_hat[i] = 0.0
                    continue
            if closed_form and g == 1 and pen[0] > 0.0:
                st, lam = _one_group(lam0, a[0], at[0], r, vals[0], b[0], pen[0], n_eff)
            else:
                st, lam = _search(
                    lam0, a, at, r, t, vals, b, pen, n_eff, grid, active, pmat, emat, h, atc
                )
            stat[i] = max(st, 0.0) + extra
            lam_hat[i] = lam


@jit
def draw_variates(seeds, dfa, df_r, q, out):
    """The chi-square variates behind each draw (for reference implementations).

    Row i of ``out`` (shape (nsim, G + 2)) holds A_1..A_G, R and U of
    replicate i, drawn in exactly the order :func:`draw_statistic` uses.
    """
    g = dfa.size
    state = np.empty(4, dtype=np.uint64)
    for i in range(seeds.size):
        seed_state(seeds[i], state)
        for j in range(g):
            out[i, j] = chisquare(state, dfa[j])
        out[i, g] = chisquare(state, df_r)
        out[i, g + 1] = chisquare(state, q) if q > 0.0 else 0.0


EXACT_TIER = Tier("exact test", 6.0, (spectral_null,))
""":func:`spectral_null`'s compilation (about 6 CPU s); :mod:`vctest.kernels.tiers`."""

_SPECTRAL_NULL_PY = interpreted(spectral_null, compiled=())


def draw_null(seeds, lam0, vals, dfa, pen, n_eff, df_r, q, grid, active, pmat, emat,
              closed_form, stat, lam_hat):
    """:func:`spectral_null` called from Python (the same arguments and numbers).

    Draw ``i`` depends on ``seeds[i]`` only, so the draws are done in chunks:
    as Python while :data:`EXACT_TIER` says compiling does not pay yet, then
    compiled (:func:`vctest.kernels.tiers.run_rows`).
    """
    common = (lam0, vals, dfa, pen, n_eff, df_r, q, grid, active, pmat, emat, closed_form)

    def rows(kernel):
        return lambda lo, hi: kernel(seeds[lo:hi], *common, stat[lo:hi], lam_hat[lo:hi])

    with np.errstate(over="ignore"):  # uint64 wrap-around, by design, when run as Python
        run_rows(EXACT_TIER, seeds.size, rows(spectral_null), rows(_SPECTRAL_NULL_PY),
                 first=64)
