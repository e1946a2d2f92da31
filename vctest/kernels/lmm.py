"""Profiled deviance of a linear mixed model on blocked cross-products.

The model is y = X beta + sum_j Z_j b_j + e with b_j = Lambda_j u_j,
Lambda_j = I (x) T_j and T_j lower triangular (k_j x k_j) built from theta.
Following Bates et al. (2015, JSS 67(1), section 3) the profiled deviance needs
the Cholesky factor of the penalised cross-product matrix of [Z Lambda, X, y].

Layout (the decisions that make it fast):

* term 0 (the grouping factor with most levels) has a block-diagonal diagonal
  block ``D1`` -- one k0 x k0 block per level -- so its factor costs
  O(levels * k0^3);
* every other random-effect column, the columns of X and y form the "rest"
  space of order m, held as one dense symmetric matrix ``C``;
* the off-diagonal block between the rest space and term 0 is sparse: for
  level g of term 0 only the rest positions that co-occur with g (plus all X
  and y positions) are stored (``Bptr``/``Bidx``/``Bval``).

Cross-products are formed once per design by :func:`assemble`; a new response
changes only the y parts (:func:`update_response`).  All functions are pure:
they allocate their own scratch and never mutate their inputs except the
explicit output arguments of the assembly kernels.

The workspace is a tuple ``ws`` of arrays (see :func:`vctest.model.lmm`):
``(dims, k, nlev, toff, roff, pos_term, pos_within, D1, Bptr, Bidx, Bval, C)``
with ``dims = [n, p, m_re, m, kmax, reml]``.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.linalg import cholesky_dense, cholesky_lower_inplace, forward_solve_rows

LOG_2PI = math.log(2.0 * math.pi)


@jit
def theta_to_factors(theta: np.ndarray, k: np.ndarray, toff: np.ndarray, kmax: int) -> np.ndarray:
    """Relative covariance factors T_j (lower triangular) from theta.

    Parameters of term j are its lower triangle in column-major order, as
    lme4 orders them: (T11, T21, ..., Tk1, T22, ...).
    """
    nterms = k.size
    t = np.zeros((nterms, kmax, kmax))
    for j in range(nterms):
        pos = toff[j]
        for c in range(k[j]):
            for r in range(c, k[j]):
                t[j, r, c] = theta[pos]
                pos += 1
    return t


@jit
def assemble(codes, zcols, zoff, k, roff, x, y, w, bptr, rowslot, dims, d1, bval, c):
    """Accumulate the cross-products D1, Bval and C (outputs, zeroed here).

    ``w`` are case weights (ones for an LMM; the PIRLS weights for a GLMM).
    """
    n, p, m_re, m = dims[0], dims[1], dims[2], dims[3]
    nterms = k.size
    k0 = k[0]
    d1[:] = 0.0
    bval[:] = 0.0
    c[:] = 0.0
    npos = m
    pos = np.empty(npos, dtype=np.int64)
    val = np.empty(npos)
    for r in range(n):
        wr = w[r]
        g = codes[0, r]
        for a in range(k0):
            za = zcols[r, zoff[0] + a]
            for b in range(k0):
                d1[g, a, b] += wr * za * zcols[r, zoff[0] + b]
        # rest-space entries of this row
        cnt = 0
        for j in range(1, nterms):
            base = roff[j] + codes[j, r] * k[j]
            s = rowslot[r, j - 1]
            for cc in range(k[j]):
                zj = zcols[r, zoff[j] + cc]
                pos[cnt] = base + cc
                val[cnt] = zj
                cnt += 1
                for a in range(k0):
                    bval[s + cc, a] += wr * zj * zcols[r, zoff[0] + a]
        s0 = bptr[g + 1] - (p + 1)
        for i in range(p):
            pos[cnt] = m_re + i
            val[cnt] = x[r, i]
            cnt += 1
            for a in range(k0):
                bval[s0 + i, a] += wr * x[r, i] * zcols[r, zoff[0] + a]
        pos[cnt] = m - 1
        val[cnt] = y[r]
        cnt += 1
        for a in range(k0):
            bval[s0 + p, a] += wr * y[r] * zcols[r, zoff[0] + a]
        for u in range(cnt):
            wu = wr * val[u]
            for v in range(cnt):
                c[pos[u], pos[v]] += wu * val[v]


@jit
def update_response(codes, zcols, zoff, k, roff, x, y, w, bptr, dims, bval, c):
    """Replace the y parts of ``bval`` and ``c`` for a new response ``y``."""
    n, p, m_re, m = dims[0], dims[1], dims[2], dims[3]
    nterms = k.size
    k0 = k[0]
    nlev0 = bptr.size - 1
    for g in range(nlev0):
        s = bptr[g + 1] - 1
        for a in range(k0):
            bval[s, a] = 0.0
    c[m - 1, :] = 0.0
    c[:, m - 1] = 0.0
    for r in range(n):
        wy = w[r] * y[r]
        g = codes[0, r]
        s = bptr[g + 1] - 1
        for a in range(k0):
            bval[s, a] += wy * zcols[r, zoff[0] + a]
        for j in range(1, nterms):
            base = roff[j] + codes[j, r] * k[j]
            for cc in range(k[j]):
                c[base + cc, m - 1] += wy * zcols[r, zoff[j] + cc]
        for i in range(p):
            c[m_re + i, m - 1] += wy * x[r, i]
        c[m - 1, m - 1] += wy * y[r]
    for i in range(m - 1):
        c[m - 1, i] = c[i, m - 1]


@jit
def factorize(theta, ws):
    """Blocked Cholesky factor at ``theta``.

    Returns
    -------
    l11 : (nlev0, k0, k0) lower factors of term 0's diagonal blocks
    lc : (m, m) lower factor of the rest space (RE rest, X, y)
    ok : bool, False if a factorisation failed (theta outside the domain or a
         degenerate response)
    """
    dims, k, nlev, toff, _roff, pos_term, pos_within, d1, bptr, bidx, bval, c = ws
    m = dims[3]
    m_re = dims[2]
    kmax = dims[4]
    nterms = k.size
    k0 = k[0]
    nlev0 = nlev[0]
    t = theta_to_factors(theta, k, toff, kmax)

    # term 0: L11_g = chol(T0' D1_g T0 + I)
    l11 = np.empty((nlev0, k0, k0))
    tmp = np.empty((k0, k0))
    for g in range(nlev0):
        for a in range(k0):
            for b in range(k0):
                s = 0.0
                for e in range(k0):
                    s += d1[g, a, e] * t[0, e, b]
                tmp[a, b] = s
        for a in range(k0):
            for b in range(k0):
                s = 0.0
                for e in range(k0):
                    s += t[0, e, a] * tmp[e, b]
                l11[g, a, b] = s + (1.0 if a == b else 0.0)
        if not cholesky_lower_inplace(l11[g], k0):
            return l11, c, False

    # rest space: Ct = Lambda' C Lambda + I on the random-effect part
    ct = c.copy()
    if nterms > 1:
        for i in range(m_re):
            if pos_within[i] != 0:
                continue
            j = pos_term[i]
            kj = k[j]
            for col in range(m):  # rows i..i+kj-1 <- T_j' rows
                for cc in range(kj):  # ascending: row cc reads rows >= cc only
                    s = 0.0
                    for e in range(cc, kj):
                        s += t[j, e, cc] * ct[i + e, col]
                    ct[i + cc, col] = s
        for i in range(m_re):
            if pos_within[i] != 0:
                continue
            j = pos_term[i]
            kj = k[j]
            for row in range(m):  # columns i..i+kj-1 <- columns * T_j
                for cc in range(kj):
                    s = 0.0
                    for e in range(cc, kj):
                        s += ct[row, i + e] * t[j, e, cc]
                    ct[row, i + cc] = s
        for i in range(m_re):
            ct[i, i] += 1.0

    # subtract L21_g L21_g' for every level of term 0
    maxnnz = 0
    for g in range(nlev0):
        maxnnz = max(maxnnz, bptr[g + 1] - bptr[g])
    wbuf = np.empty((maxnnz, k0))
    for g in range(nlev0):
        s0 = bptr[g]
        ns = bptr[g + 1] - s0
        # rows: Lambda_rest' B_g
        for u in range(ns):
            i = bidx[s0 + u]
            if i < m_re:
                j = pos_term[i]
                cw = pos_within[i]
                first = u - cw
                for a in range(k0):
                    s = 0.0
                    for e in range(cw, k[j]):
                        s += t[j, e, cw] * bval[s0 + first + e, a]
                    wbuf[u, a] = s
            else:
                for a in range(k0):
                    wbuf[u, a] = bval[s0 + u, a]
        # columns: * T0
        for u in range(ns):
            for a in range(k0):
                s = 0.0
                for e in range(a, k0):
                    s += wbuf[u, e] * t[0, e, a]
                tmp[0, a] = s
            for a in range(k0):
                wbuf[u, a] = tmp[0, a]
        forward_solve_rows(l11[g], wbuf, ns)
        for u in range(ns):
            iu = bidx[s0 + u]
            for v in range(u + 1):
                iv = bidx[s0 + v]
                s = 0.0
                for a in range(k0):
                    s += wbuf[u, a] * wbuf[v, a]
                ct[iu, iv] -= s

    lc, ok = cholesky_dense(ct)
    return l11, lc, ok


@jit
def deviance_parts(theta, ws):
    """(log|L|^2, log|R_X|^2, pwrss, ok) at ``theta``."""
    dims = ws[0]
    p, m_re, m = dims[1], dims[2], dims[3]
    l11, lc, ok = factorize(theta, ws)
    if not ok:
        return np.inf, np.inf, np.nan, False
    logdet_l = 0.0
    for g in range(l11.shape[0]):
        for a in range(l11.shape[1]):
            logdet_l += 2.0 * math.log(l11[g, a, a])
    for i in range(m_re):
        logdet_l += 2.0 * math.log(lc[i, i])
    logdet_rx = 0.0
    for i in range(m_re, m_re + p):
        logdet_rx += 2.0 * math.log(lc[i, i])
    r = lc[m - 1, m - 1]
    return logdet_l, logdet_rx, r * r, True


@jit
def objective(theta, ws):
    """Profiled deviance (ML) or REML criterion at ``theta``; +inf if undefined."""
    dims = ws[0]
    n, p, reml = dims[0], dims[1], dims[5]
    logdet_l, logdet_rx, pwrss, ok = deviance_parts(theta, ws)
    if not ok or not pwrss > 0.0:
        return np.inf
    if reml != 0:
        nr = n - p
        return logdet_l + logdet_rx + nr * (1.0 + LOG_2PI + math.log(pwrss / nr))
    return logdet_l + n * (1.0 + LOG_2PI + math.log(pwrss / n))
