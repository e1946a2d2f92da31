"""The expected Fisher information of an LMM's covariance parameters (dense, small n).

For ``y ~ N(X beta, V)`` with ``V = sigma^2 W^{-1} + sum_j Z_j (I ⊗ Sigma_j) Z_j'``
and covariance parameters ``psi = (sigma^2, vech(Sigma_1), vech(Sigma_2), ...)``
(each ``Sigma_j`` in theta's order: column-major lower triangle), the expected
information is

    I[a, b] = 1/2 tr(P dV/dpsi_a P dV/dpsi_b)

with ``P = V^{-1}`` (ML) or the REML projection ``V^{-1} - V^{-1} X (X' V^{-1}
X)^{-1} X' V^{-1}`` (Harville 1977, JASA 72:320-338); under ML the fixed effects
are orthogonal to ``psi``.  ``dV/dSigma_j[a, b]`` is ``Z_ja Z_jb' + Z_jb Z_ja'``
(``Z_ja Z_ja'`` on the diagonal), where ``Z_ja`` holds column ``a`` of the term
on each level's rows, so every trace is a sum over blocks of ``M = Z' P Z``:
``tr(P Z_ja Z_jb' P Z_kc Z_kd') = sum(M[jb, kc] * M[ja, kd])``.

This is what the chi-bar-square weights of a test of several variances need
(Self & Liang 1987; Stram & Lee 1994): the covariance of the tested variances'
estimators is the matching block of ``I^{-1}``, evaluated at the null fit.
Dense ``n x n`` algebra: up to :data:`MAX_N` rows.
"""

from __future__ import annotations

import numpy as np

from vctest.formula.design import Design

__all__ = ["MAX_N", "covariance_information"]

#: Largest number of rows for the dense information.
MAX_N = 4000


def _term_columns(design: Design) -> list[tuple[int, int, np.ndarray]]:
    """``(block, column, Z_ja)`` for every column of every term (``Z_ja`` dense n x levels)."""
    out = []
    n = design.n
    for j, blk in enumerate(design.blocks):
        for a in range(blk.k):
            z = np.zeros((n, blk.n_levels))
            z[np.arange(n), blk.codes] = blk.columns[:, a]
            out.append((j, a, z))
    return out


def covariance_information(design: Design, theta: np.ndarray, sigma: float, *,
                           reml: bool) -> np.ndarray:
    """The expected information of ``(sigma^2, vech(Sigma_1), ...)`` at ``theta``, ``sigma``.

    Parameters
    ----------
    design : Design
        The model's design (its prior weights are used).
    theta : ndarray
        Relative covariance factors in lme4's order (``Sigma_j = sigma^2 T_j T_j'``);
        zeros where a variance is on its boundary.
    sigma : float
        Residual standard deviation.
    reml : bool
        The REML information (``P`` the REML projection) or the ML one.

    Returns
    -------
    ndarray, shape (1 + len(theta), 1 + len(theta))
        Row/column 0 is ``sigma^2``; row ``1 + i`` is the covariance element
        that theta entry ``i`` sits at.

    Raises
    ------
    ValueError
        If the design has more than :data:`MAX_N` rows, or ``V`` is not positive
        definite.

    Examples
    --------
    >>> import vctest
    >>> from vctest.formula.design import build_design
    >>> d = build_design("Yield ~ 1 + (1 | Batch)", vctest.datasets.load("Dyestuff"))
    >>> info = covariance_information(d, np.array([0.5]), 40.0, reml=False)
    >>> lam = 40.0**2 * (1 + 5 * 0.25)   # sigma^2 + m sigma_a^2, 6 groups of m = 5
    >>> bool(np.isclose(info[1, 1], 0.5 * 6 * 25 / lam**2))
    True
    """
    n = design.n
    if n > MAX_N:
        raise ValueError(f"the information matrix is computed densely, for at most {MAX_N} "
                         f"rows; the model has {n}.")
    theta = np.asarray(theta, dtype=float)
    s2 = float(sigma) ** 2
    w = np.ones(n) if design.prior_weights is None else np.asarray(design.prior_weights, float)
    cols = _term_columns(design)
    # V = sigma^2 (W^-1 + sum_j Z_j (I ⊗ T_j T_j') Z_j')
    v = np.diag(s2 / w)
    pos = 0
    index: dict[tuple[int, int], int] = {}
    for i, (j, a, _) in enumerate(cols):
        index[j, a] = i
    elements: list[tuple[int, int, int]] = []
    for j, blk in enumerate(design.blocks):
        k = blk.k
        t = np.zeros((k, k))
        for c in range(k):
            for r in range(c, k):
                t[r, c] = theta[pos]
                elements.append((j, r, c))
                pos += 1
        cov = s2 * t @ t.T
        for a in range(k):
            for b in range(k):
                if cov[a, b] != 0.0:
                    v += cov[a, b] * (cols[index[j, a]][2] @ cols[index[j, b]][2].T)
    try:
        chol = np.linalg.cholesky(v)
    except np.linalg.LinAlgError as exc:
        raise ValueError("the marginal covariance V is not positive definite.") from exc
    vinv = np.linalg.inv(chol)
    p_mat = vinv.T @ vinv
    if reml and design.X.shape[1]:
        vx = p_mat @ design.X
        p_mat = p_mat - vx @ np.linalg.solve(design.X.T @ vx, vx.T)
    zs = [z for _, _, z in cols]
    sizes = [z.shape[1] for z in zs]
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    zall = np.hstack(zs) if zs else np.zeros((n, 0))
    pz = p_mat @ zall
    m = zall.T @ pz
    e = 1.0 / np.sqrt(w)  # dV/dsigma^2 = E E', E = diag(w^{-1/2})
    pe_z = e[:, None] * pz  # E' P Z
    pe_e = e[:, None] * p_mat * e[None, :]  # E' P E

    def blk_m(u: int, v_: int) -> np.ndarray:
        return m[edges[u]:edges[u + 1], edges[v_]:edges[v_ + 1]]

    def outer_pairs(j: int, r: int, c: int) -> list[tuple[int, int]]:
        """dV of Sigma_j[r, c] as a sum of Z_x Z_y' (column indices x, y)."""
        x, y = index[j, r], index[j, c]
        return [(x, x)] if r == c else [(x, y), (y, x)]

    q = 1 + len(elements)
    info = np.zeros((q, q))
    info[0, 0] = 0.5 * float(np.sum(pe_e * pe_e))
    for i1, (j, r, c) in enumerate(elements, start=1):
        terms1 = outer_pairs(j, r, c)
        # tr(P E E' P Z_x Z_y') = sum((E'P Z_y) * (E'P Z_x))
        info[0, i1] = info[i1, 0] = 0.5 * sum(
            float(np.sum(pe_z[:, edges[y]:edges[y + 1]] * pe_z[:, edges[x]:edges[x + 1]]))
            for x, y in terms1)
        for i2 in range(i1, q):
            jj, rr, cc = elements[i2 - 1]
            total = 0.0
            for x, y in terms1:
                for u, v_ in outer_pairs(jj, rr, cc):
                    # tr(P Z_x Z_y' P Z_u Z_v') = sum(M[y, u] * M[x, v])
                    total += float(np.sum(blk_m(y, u) * blk_m(x, v_)))
            info[i1, i2] = info[i2, i1] = 0.5 * total
    return info
