"""A pure-function 64-bit pseudo-random generator for Numba kernels.

The generator is xoshiro256** (Blackman & Vigna 2018, "Scrambled linear
pseudorandom number generators") with its 256-bit state held in a caller-owned
``uint64[4]`` array.  The state is filled from one 64-bit seed by splitmix64,
as its authors recommend.  Every function here is a pure function of that
array: there is no module-level or thread-local state, so a kernel that seeds
a fresh state from ``seeds[i]`` at the top of replicate ``i`` produces numbers
that depend on ``seeds[i]`` only -- never on the thread count or on how the
replicates are split (see :mod:`vctest._rng`).

Variates
--------
* :func:`uniform` -- the top 53 bits, shifted by half a unit, so the result is
  in the *open* interval (0, 1) and ``log(u)`` is always finite;
* :func:`standard_normal` -- Marsaglia's polar method, one of the pair (no
  cached value, so the function stays pure; no trigonometric call);
* :func:`gamma` -- Marsaglia & Tsang (2000) for shape >= 1; for shape < 1,
  ``gamma(shape + 1) * U**(1/shape)``;
* :func:`chisquare` -- ``2 * gamma(df / 2)``, with the exact shortcuts ``Z**2``
  for df = 1 and ``-2 log U`` for df = 2 (same distributions, fewer operations);
* :func:`binomial` -- inversion by sequential search while ``n min(p, 1 - p)``
  is small; larger problems are first split by the median order statistic of
  ``n`` uniforms, a Beta variate (Devroye 1986, *Non-Uniform Random Variate
  Generation*, X.4.3), which keeps the method exact and O(log n);
* :func:`poisson` -- inversion for small means; larger means are reduced by
  the Ahrens & Dieter (1974) gamma recursion (the m-th arrival of a unit-rate
  Poisson process is Gamma(m)), again exact.

Typing note: all integer arithmetic is in ``uint64`` with explicit
``np.uint64`` constants -- in Numba a ``uint64`` combined with an ``int64``
becomes ``float64``.  Multiplication and addition wrap modulo 2**64 by design;
when the kernels run as plain Python (``NUMBA_DISABLE_JIT=1``) NumPy reports
that wrap-around as an overflow warning, so callers run such code under
``np.errstate(over="ignore")``.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit


@jit
def splitmix64(x):
    """One splitmix64 step: return ``(new_x, output)`` for a ``uint64`` ``x``."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return x, z


@jit
def seed_state(seed_u64, state):
    """Fill ``state`` (``uint64[4]``) from a 64-bit seed with splitmix64.

    Parameters
    ----------
    seed_u64 : uint64
        The seed.
    state : numpy.ndarray of uint64, shape (4,)
        Overwritten.  splitmix64 is a bijection of consecutive inputs, so the
        state is never all zero.
    """
    x = np.uint64(seed_u64)
    for i in range(4):
        x, z = splitmix64(x)
        state[i] = z


@jit
def _rotl(x, k):
    return (x << k) | (x >> (np.uint64(64) - k))


@jit
def next_u64(state):
    """Advance the xoshiro256** state in place and return the next ``uint64``."""
    s0 = state[0]
    s1 = state[1]
    s2 = state[2]
    s3 = state[3]
    result = _rotl(s1 * np.uint64(5), np.uint64(7)) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, np.uint64(45))
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return result


@jit
def uniform(state):
    """A uniform variate in the open interval (0, 1).

    Uses the top 53 bits ``k`` of the next output: ``(k + 0.5) * 2**-53``.
    """
    k = next_u64(state) >> np.uint64(11)
    return (np.float64(k) + 0.5) * 1.1102230246251565e-16


@jit
def standard_normal(state):
    """A standard normal variate (Marsaglia's polar method, no caching).

    Pairs (u, v) uniform on the open square (-1, 1)^2 are drawn until
    0 < s = u^2 + v^2 < 1 (probability pi/4 per pair); the result is
    ``u * sqrt(-2 log(s) / s)`` and the second normal of the pair is discarded,
    so the function stays pure.  s = 0 cannot occur: 2U - 1 is never 0.
    """
    while True:
        u = 2.0 * uniform(state) - 1.0
        v = 2.0 * uniform(state) - 1.0
        s = u * u + v * v
        if s < 1.0:
            return u * math.sqrt(-2.0 * math.log(s) / s)


@jit
def gamma(state, shape):
    """A Gamma(``shape``, scale 1) variate; 0.0 for ``shape <= 0``.

    Marsaglia & Tsang (2000, ACM TOMS 26:363-372) for ``shape >= 1``; for
    ``0 < shape < 1`` the boost ``gamma(shape + 1) * U**(1/shape)``.
    """
    if shape <= 0.0:
        return 0.0
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = uniform(state) ** (1.0 / a)
        a = a + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = standard_normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform(state)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:
            return boost * d * v
        if math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            return boost * d * v


@jit
def chisquare(state, df):
    """A chi-square variate with ``df`` degrees of freedom; 0.0 for ``df <= 0``.

    ``2 * gamma(df / 2)``; df = 1 uses ``Z**2`` and df = 2 uses ``-2 log U``
    (the same distributions).
    """
    if df <= 0.0:
        return 0.0
    if df == 1.0:
        z = standard_normal(state)
        return z * z
    if df == 2.0:
        return -2.0 * math.log(uniform(state))
    return 2.0 * gamma(state, 0.5 * df)


@jit
def _binomial_inversion(state, n, p):
    """Binomial(n, p) by sequential search for ``p <= 0.5`` and small ``n p``."""
    if n <= 0 or p <= 0.0:
        return 0
    q = 1.0 - p
    ratio = p / q
    pmf = math.exp(n * math.log1p(-p))
    u = uniform(state)
    k = 0
    while u > pmf and k < n:
        u -= pmf
        pmf *= ratio * (n - k) / (k + 1.0)
        k += 1
    return k


@jit
def binomial(state, n, p):
    """A Binomial(``n``, ``p``) variate (int64); ``n <= 0`` or ``p <= 0`` give 0.

    Exact for all ``n`` and ``p``.  While ``n min(p, 1 - p)`` exceeds a small
    limit the problem is split: the ``i``-th smallest of ``n`` uniforms,
    ``i = (n + 1) // 2``, is ``X ~ Beta(i, n + 1 - i)`` (from two gamma
    variates); if ``X <= p`` at least ``i`` successes occurred and the rest
    are Binomial(n - i, (p - X) / (1 - X)), else Binomial(i - 1, p / X).  The
    remainder is drawn by inversion.
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    flip = p > 0.5
    pp = 1.0 - p if flip else p
    count = 0
    m = n
    while m * pp > 16.0:  # inversion below this expected count
        i = (m + 1) // 2
        g1 = gamma(state, float(i))
        g2 = gamma(state, float(m + 1 - i))
        x = g1 / (g1 + g2)
        if x <= pp:
            count += i
            m -= i
            pp = (pp - x) / (1.0 - x)
        else:
            m = i - 1
            pp = pp / x
    count += _binomial_inversion(state, m, pp)
    return n - count if flip else count


@jit
def poisson(state, mu):
    """A Poisson(``mu``) variate (int64); ``mu <= 0`` gives 0.

    Exact: while the mean is large, ``m = floor(7 mu / 8)`` arrivals of a
    unit-rate process take ``G ~ Gamma(m)``; if ``G < mu`` the count is ``m``
    plus Poisson(mu - G), otherwise Binomial(m - 1, mu / G) (Ahrens & Dieter
    1974).  Small means use inversion.
    """
    if not mu > 0.0:
        return 0
    count = 0
    lam = mu
    while lam > 16.0:  # inversion below this mean
        m = int(0.875 * lam)
        g = gamma(state, float(m))
        if g < lam:
            count += m
            lam -= g
        else:
            return count + binomial(state, m - 1, lam / g)
    pmf = math.exp(-lam)
    u = uniform(state)
    k = 0
    while u > pmf and k < 10_000:
        u -= pmf
        k += 1
        pmf *= lam / k
    return count + k


@jit
def fill_binomial(seed_u64, n, p, out):
    """Fill ``out`` (int64) with Binomial(``n``, ``p``) variates from one fresh state."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = binomial(state, n, p)


@jit
def fill_poisson(seed_u64, mu, out):
    """Fill ``out`` (int64) with Poisson(``mu``) variates from one fresh state."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = poisson(state, mu)


@jit
def fill_uniform(seed_u64, out):
    """Fill ``out`` with uniforms from one freshly seeded state (for tests)."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = uniform(state)


@jit
def fill_normal(seed_u64, out):
    """Fill ``out`` with standard normals from one freshly seeded state."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = standard_normal(state)


@jit
def fill_gamma(seed_u64, shape, out):
    """Fill ``out`` with Gamma(``shape``) variates from one freshly seeded state."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = gamma(state, shape)


@jit
def fill_chisquare(seed_u64, df, out):
    """Fill ``out`` with chi-square(``df``) variates from one freshly seeded state."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = chisquare(state, df)


@jit
def fill_u64(seed_u64, out):
    """Fill ``out`` (uint64) with raw xoshiro256** outputs (for tests)."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed_u64, state)
    for i in range(out.size):
        out[i] = next_u64(state)
