"""Small dense linear-algebra kernels (no BLAS, safe inside ``prange``), and one
blocked inverse by BLAS for large blocks (:func:`cholesky_inverse`, outside ``prange``).

All matrices are C-contiguous float64 and lower-triangular factors are stored
in the lower triangle; the strict upper triangle is ignored.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit

#: Above this order a dense factorisation calls LAPACK through NumPy (outside ``prange``).
LAPACK_MIN_ORDER = 96

#: Order of the diagonal blocks of :func:`cholesky_inverse`.
INVERSE_BLOCK = 128


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


@jit(internal=True)
def cholesky_inverse(low, m, nb):
    """``S^-1 = L^-T L^-1`` (full and symmetric, ``(m, m)``) from the lower Cholesky
    factor ``L`` of ``S`` in the leading ``m x m`` lower triangle of ``low``.

    Blocked, last block first, with the matrix products by BLAS (``np.dot``):
    for ``L = [L11, 0; L21, L22]`` with ``L11`` the next diagonal block (order at
    most ``nb``) and ``Z22 = (L22 L22')^-1`` already known,

        W = L21 L11^-1,  Z21 = -Z22 W,  Z11 = L11^-T L11^-1 + W' Z22 W,

    so the work is ``2 m^3 / 3`` flops, nearly all in ``Z22 W`` (LAPACK's
    ``potri`` does the same count; an inverse through an LU factorisation and a
    product ``L^-T L^-1`` costs six times as many).  Calls BLAS: never inside
    ``prange``.
    """
    z = np.zeros((m, m))
    j1 = m
    while j1 > 0:
        j0 = max(0, j1 - nb)
        b = j1 - j0
        li = np.zeros((b, b))  # L11^-1 (lower) by loops, row i from rows < i
        for i in range(b):
            d = low[j0 + i, j0 + i]
            for kk in range(i):
                a = low[j0 + i, j0 + kk] / d
                for j in range(kk + 1):
                    li[i, j] -= a * li[kk, j]
            li[i, i] = 1.0 / d
        lit = np.empty((b, b))  # C-contiguous copies by loops: np.dot of (C, C) arrays only
        for r in range(b):
            for c in range(b):
                lit[r, c] = li[c, r]
        z11 = np.dot(lit, li)
        if j1 < m:
            l21 = np.empty((m - j1, b))
            z22 = np.empty((m - j1, m - j1))
            for r in range(m - j1):
                for c in range(b):
                    l21[r, c] = low[j1 + r, j0 + c]
                for c in range(m - j1):
                    z22[r, c] = z[j1 + r, j1 + c]
            w = np.dot(l21, li)
            zw = np.dot(z22, w)  # -Z21
            wt = np.empty((b, m - j1))
            for r in range(m - j1):
                for c in range(b):
                    wt[c, r] = w[r, c]
            wzw = np.dot(wt, zw)
            for r in range(b):
                for c in range(b):
                    z11[r, c] += wzw[r, c]
            for r in range(m - j1):
                for c in range(b):
                    z[j1 + r, j0 + c] = -zw[r, c]
                    z[j0 + c, j1 + r] = -zw[r, c]
        for r in range(b):
            for c in range(b):
                z[j0 + r, j0 + c] = 0.5 * (z11[r, c] + z11[c, r])
        j1 = j0
    return z


@jit(inline=True)
def lower_inverse(low, n, out):
    """``out[:n, :n] = L^-1`` (zeros above the diagonal) for the lower triangle ``L``
    of ``low[:n, :n]``, by forward substitution, row by row."""
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = 0.0
        out[i, i] = 1.0 / low[i, i]
        for j in range(i):
            acc = 0.0
            for kk in range(j, i):
                acc -= low[i, kk] * out[kk, j]
            out[i, j] = acc / low[i, i]


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
