"""Small dense linear-algebra kernels (no BLAS, safe inside ``prange``).

All matrices are C-contiguous float64 and lower-triangular factors are stored
in the lower triangle; the strict upper triangle is ignored.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit

#: Above this order a dense factorisation calls LAPACK through NumPy (outside ``prange``).
LAPACK_MIN_ORDER = 96


@jit(internal=True)
def cholesky_lower_inplace(a: np.ndarray, n: int) -> bool:
    """Overwrite the leading ``n x n`` lower triangle of ``a`` with its Cholesky factor.

    Returns False (leaving ``a`` partly overwritten) when the matrix is not
    numerically positive definite.
    """
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= a[j, k] * a[j, k]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        a[j, j] = d
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= a[i, k] * a[j, k]
            a[i, j] = t / d
    return True


@jit(internal=True)
def cholesky_envelope(a, m, first):
    """In-place lower Cholesky factor of ``a[:m, :m]`` exploiting its envelope.

    ``first[i]`` receives the first non-zero column of row i; the factor keeps
    that envelope, so rows that gained no fill (e.g. a grouping factor nested in
    term 0) cost almost nothing.  Returns False if not positive definite.
    """
    for i in range(m):
        f = i
        for j in range(i):
            if a[i, j] != 0.0:
                f = j
                break
        first[i] = f
    for i in range(m):
        fi = first[i]
        for j in range(fi, i + 1):
            acc = a[i, j]
            for kk in range(max(fi, first[j]), j):
                acc -= a[i, kk] * a[j, kk]
            if j < i:
                a[i, j] = acc / a[j, j]
            elif acc > 0.0:
                a[i, i] = math.sqrt(acc)
            else:
                return False
    return True


@jit(inline=True)
def assign(dst, src):
    """``dst[i] = src[i]`` for every i (a loop compiles far faster than ``dst[:] = src``)."""
    for i in range(src.size):
        dst[i] = src[i]


def assign_numpy(dst, src):
    """:func:`assign` for code run by the interpreter (:func:`vctest.kernels._jit.interpreted`):
    the same copy, without a Python loop over the elements."""
    dst[: src.size] = src


@jit(inline=True)
def identity(d, scale):
    """``scale * I`` of order ``d``."""
    out = np.zeros((d, d))
    for i in range(d):
        out[i, i] = scale
    return out


@jit(inline=True)
def max_abs(x):
    """``max |x_i|`` (0 for an empty array)."""
    m = 0.0
    for i in range(x.size):
        m = max(m, abs(x[i]))
    return m


@jit(inline=True)
def scaled_at_least(x, scale, lower):
    """``max(x_i * scale_i, lower_i)`` elementwise (a new array)."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = max(x[i] * scale[i], lower[i])
    return out
