"""Eigenvalues of one scalar random-effects term without a K x K matrix.

For a term with one column per level (``(1 | g)``, ``(0 + x | g)``), row i of
Z has a single non-zero entry ``z_i`` in column ``codes[i]``, so

    Z'Z     = D = diag(d_1 .. d_K),        d_k = sum of z_i^2 over level k,
    Z'P0 Z  = D - W W',                    W = Z'Q (K x p),

with ``Q`` an orthonormal basis of the columns of X (``P0 = I - QQ'``).  Let
``S_d`` be the m_d levels whose d_k equal one value d, and ``W_d`` their rows
of W.  Every vector v on ``S_d`` with ``W_d' v = 0`` satisfies
``(D - WW') v = d v``: d is an eigenvalue with multiplicity at least
``m_d - rank(W_d)``.  The rest of the spectrum lives on the span of the columns
of the ``W_d``; with ``W_d = Q_d C_d`` (``Q_d`` orthonormal, ``C_d`` of
``r_d = min(m_d, p)`` rows) it is the spectrum of the small matrix

    M = diag(d repeated r_d times, over the values d) - C C',   C = [C_d stacked],

of order ``R = sum_d min(m_d, p)``.  For ``m_d > p``, ``C_d`` is any p x p
matrix with ``C_d' C_d = W_d' W_d`` (here ``diag(sqrt(w)) V'`` from the
eigendecomposition of that Gram matrix); for ``m_d <= p``, ``C_d = W_d``.  The
work is O(n p + K p^2) and the memory O(K p + R^2).

For a random intercept the d_k are the group sizes, so R is at most p times
the number of distinct group sizes, whatever K is: one million groups give a
problem of a few dozen rows.  For a random slope with a continuous covariate
the d_k are all different, R = K and M is the dense problem; it is refused
with a ValueError when it needs more than :data:`DENSE_LIMIT_BYTES`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DENSE_LIMIT_BYTES", "dense_bytes", "scalar_term_spectrum"]

#: Largest dense eigenvalue problem (bytes of working memory) the exact test
#: solves: 4 GiB, an R x R problem with R about 16,000 (minutes of LAPACK).
DENSE_LIMIT_BYTES = 4 * 2**30


def dense_bytes(order: int) -> int:
    """Working memory of the dense symmetric eigenvalue problem of ``order`` rows.

    The matrix and the copy LAPACK works on (8 bytes per entry each), plus
    O(order) workspace.

    Examples
    --------
    >>> dense_bytes(10_000) / 2**30  # GiB
    1.49...
    """
    return 16 * order * order + 64 * order


def scalar_term_spectrum(
    x: np.ndarray,
    z: np.ndarray,
    codes: np.ndarray,
    n_levels: int,
    *,
    label: str = "the term",
    limit_bytes: int | None = None,
    q: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues of Z'P0Z and Z'Z for a term with one column per level.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        Fixed-effects design, full column rank (p may be 0).
    z : ndarray, shape (n,)
        The term's value on each row (1 for a random intercept).
    codes : ndarray of int, shape (n,)
        Level of each row, ``0 .. n_levels - 1``.
    n_levels : int
        Number of levels K.
    label : str
        The term, for the error message.
    limit_bytes : int, optional
        Largest dense sub-problem accepted (see :func:`dense_bytes`); default
        :data:`DENSE_LIMIT_BYTES`.
    q : ndarray, shape (n, p), optional
        ``numpy.linalg.qr(x)[0]`` when already known (it is computed otherwise).

    Returns
    -------
    values, counts : ndarray
        The eigenvalues of Z'P0Z as distinct-or-not values with multiplicities
        (``counts.sum() == n_levels``), negative rounding clipped to 0.
    xi : ndarray
        The eigenvalues of Z'Z (the d_k), in level order.

    Raises
    ------
    ValueError
        If the reduced problem would need more than ``limit_bytes``.

    Examples
    --------
    Balanced one-way layout, 4 groups of 3 and an intercept: the eigenvalues are
    3 (three times) and 0.

    >>> import numpy as np
    >>> codes = np.repeat(np.arange(4), 3)
    >>> v, c, xi = scalar_term_spectrum(np.ones((12, 1)), np.ones(12), codes, 4)
    >>> np.repeat(v, c).round(12).tolist(), xi.tolist()
    ([0.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0])
    """
    p = x.shape[1]
    ztz = np.bincount(codes, weights=z * z, minlength=n_levels)
    if p == 0:
        return ztz.copy(), np.ones(n_levels, dtype=np.int64), ztz
    if q is None:
        q, _ = np.linalg.qr(x)
    w = np.empty((n_levels, p))
    for i in range(p):
        w[:, i] = np.bincount(codes, weights=q[:, i] * z, minlength=n_levels)
    del q
    dvals, inv, mult = np.unique(ztz, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    big = mult > p
    small = ~big[inv]
    order = int(p * np.count_nonzero(big) + np.count_nonzero(small))
    need = dense_bytes(order)
    limit_bytes = DENSE_LIMIT_BYTES if limit_bytes is None else limit_bytes
    if need > limit_bytes:
        raise ValueError(
            f"the exact null of {label} needs the eigenvalues of a dense {order:,} x {order:,} "
            f"matrix (about {need / 2**30:.1f} GiB; the limit is {limit_bytes / 2**30:.1f} "
            "GiB): its levels have too few equal sums of squares to reduce the problem. Use "
            "method='bootstrap' (or method='asymptotic')."
        )
    ev, vec = np.linalg.eigh(_grams(w, inv, np.flatnonzero(big), mult))
    # C_d = diag(sqrt(ev)) V', so that C_d' C_d = V diag(ev) V' = W_d' W_d
    c_big = np.sqrt(np.clip(ev, 0.0, None))[:, :, None] * np.swapaxes(vec, 1, 2)
    c = np.concatenate([c_big.reshape(-1, p), w[small]])
    diag = np.concatenate([np.repeat(dvals[big], p), ztz[small]])
    m = c @ c.T
    np.negative(m, out=m)
    m[np.diag_indices_from(m)] += diag
    reduced = np.linalg.eigvalsh(m) if order else np.empty(0)
    del m
    values = np.clip(np.concatenate([reduced, dvals[big]]), 0.0, None)
    counts = np.concatenate([np.ones(order, dtype=np.int64), (mult[big] - p).astype(np.int64)])
    return values, counts, ztz


def _grams(w: np.ndarray, inv: np.ndarray, which: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """``W_d' W_d`` for the value sets listed in ``which`` (shape (len(which), p, p)).

    Each product is a BLAS matrix product over the set's rows: its blocked
    summation keeps a million-row sum accurate to about 1e-15 relative, where
    a running sum (``np.bincount``) loses four digits, and the smallest
    eigenvalues of ``M`` are differences of such sums.
    """
    p = w.shape[1]
    out = np.empty((which.size, p, p))
    if which.size == 0:
        return out
    order = np.argsort(inv, kind="stable")
    start = np.concatenate([[0], np.cumsum(mult)])
    for i, d in enumerate(which):
        rows = w[order[start[d]:start[d + 1]]]
        out[i] = rows.T @ rows
    return out
