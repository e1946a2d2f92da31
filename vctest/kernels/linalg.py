"""Small dense linear-algebra kernels (no BLAS, safe inside ``prange``).

All matrices are C-contiguous float64 and lower-triangular factors are stored
in the lower triangle; the strict upper triangle is ignored.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit

#: Above this order a dense factorisation calls LAPACK through NumPy.
LAPACK_MIN_ORDER = 96


@jit
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


@jit
def cholesky_dense(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cholesky factor of a symmetric matrix given by its lower triangle.

    Small orders use :func:`cholesky_lower_inplace` on a copy; large ones call
    LAPACK (``np.linalg.cholesky``) after a cheap positivity check of the
    diagonal.
    """
    n = a.shape[0]
    if n < LAPACK_MIN_ORDER:
        out = a.copy()
        ok = cholesky_lower_inplace(out, n)
        return out, ok
    sym = np.empty_like(a)
    for i in range(n):
        if not a[i, i] > 0.0:
            return sym, False
        for j in range(i + 1):
            sym[i, j] = a[i, j]
            sym[j, i] = a[i, j]
    low = np.linalg.cholesky(sym)
    for i in range(n):
        if not low[i, i] > 0.0:
            return low, False
    return low, True


@jit
def forward_solve_rows(low: np.ndarray, b: np.ndarray, nrows: int) -> None:
    """Solve ``X L' = B`` in place for the first ``nrows`` rows of ``b``.

    ``low`` is k x k lower triangular; each row x of X satisfies L x = b_row.
    """
    k = low.shape[0]
    for r in range(nrows):
        for i in range(k):
            s = b[r, i]
            for j in range(i):
                s -= low[i, j] * b[r, j]
            b[r, i] = s / low[i, i]
