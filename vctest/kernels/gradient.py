"""The analytic gradient of the profiled (RE)ML criterion with respect to theta.

With ``A = Lambda~' M'WM Lambda~ + diag(I_q, 0)`` the blocked system of
:mod:`vctest.kernels.pwls` (``M = [Z, X]``, ``Lambda~ = diag(Lambda, I_p)``,
``Lambda = sum_i theta_i E_i``), the profiled criterion is

    f = log|A_*| + nr * log(r^2) + const,

with ``A_* = A`` and ``nr = n - p`` for REML, ``A_* = A_ZZ`` (the random-effect
block) and ``nr = n`` for ML, and ``r^2`` the penalised weighted residual sum
of squares at the conditional modes ``(u, beta)``.  Then

    d log|A_*| / d theta_i = 2 tr(A_*^-1 Lambda~' G E_i),  G = M'WM,
    d r^2 / d theta_i      = -2 g' E_i u,  g = M'W (y - M Lambda~ (u, beta))

(the second by the envelope theorem: ``r^2`` is a minimum over ``(u, beta)``).
``E_i`` picks entry ``(a, b)`` of a term's factor ``T_j`` at every level, so
the trace needs the entries of ``A_*^-1`` on the pattern of ``A`` only (a
selected inverse; Takahashi et al. 1973): with the factor
``L = [L_D, 0; L_BD, L_S]`` of :func:`vctest.kernels.pwls.factor_solve`
(``L_D`` block diagonal over the levels of term 0), ``S^-1 = (L_S L_S')^-1``
is formed densely (the "rest" block fills in: the s-d co-occurrences of
InstEval leave ~98% of ``L_S`` non-zero), from order ``lapack_min`` on by
:func:`vctest.kernels.linalg.cholesky_inverse` (blocked, BLAS products,
``2 m^3 / 3`` flops), and per level g of term
0 ``V_g = L_BD,g L_g^-1``, ``Sigma_{R,g} = -S^-1 V_g`` on the level's rest
positions and ``Sigma_gg = D_g^-1 - V_g' Sigma_{R,g}``.  The cost is one dense
inverse of the rest block plus O(sum over levels of their rest positions
squared): about one more evaluation, against 2 d evaluations for central
differences.  ``g`` is summed from the residuals (no cancellation of
cross-products), except for a term whose factor's diagonal is at least 1 (its
variances at least the residual's): there the residuals' group sums cancel to
``u / theta`` and lose digits, so ``g`` comes from the normal equations
``T_j' g = u`` instead.
"""

from __future__ import annotations

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.linalg import INVERSE_BLOCK, cholesky_inverse
from vctest.kernels.objective import profiled
from vctest.kernels.pwls import cross_products, linear_predictor, scratch, theta_to_factors


@jit
def profiled_gradient(t, st, data, lapack_min, u, beta, scr, grad):
    """The gradient of the profiled criterion at the factors ``t`` into ``grad`` (length
    of theta, theta's units; column-major lower triangles as in theta).

    Call it right after :func:`vctest.kernels.objective.profiled` succeeded at the same
    ``t``: ``scr`` holds that evaluation's factor and ``u``/``beta`` its modes.
    Returns ``r^2`` recomputed from the residuals.
    """
    n, p, m_re = st.n, st.p, st.m_re
    k, nlev, roff, toff, bptr, bidx = st.k, st.nlev, st.roff, st.toff, st.bptr, st.bidx
    codes, zcols, zoff = st.codes, st.zcols, st.zoff
    k0, nlev0 = k[0], nlev[0]
    q0 = nlev0 * k0
    q = q0 + m_re
    reml = data.reml != 0
    mm = m_re + (p if reml else 0)
    nr = n - p if reml else n
    w, y = data.wt, data.y
    d1, bval, c, xd1, xbval, xc = scr.d1, scr.bval, scr.c, scr.xd1, scr.xbval, scr.xc
    pterm, pwithin = scr.pterm, scr.pwithin
    for i in range(grad.size):
        grad[i] = 0.0

    # g = Z'W(y - eta) from the residuals, and r^2
    eta = scr.eta
    linear_predictor(t, st, u, beta, data.offset, eta)
    gz = np.zeros(q)
    r2 = 0.0
    for r in range(n):
        e = y[r] - eta[r]
        we = w[r] * e
        r2 += we * e
        g = codes[0, r]
        for a in range(k0):
            gz[g * k0 + a] += we * zcols[r, zoff[0] + a]
        for j in range(1, k.size):
            base = q0 + roff[j] + codes[j, r] * k[j]
            for a in range(k[j]):
                gz[base + a] += we * zcols[r, zoff[j] + a]
    for i in range(q):
        r2 += u[i] * u[i]
    dr2 = np.zeros(grad.size)
    for j in range(k.size):
        kj = k[j]
        start = 0 if j == 0 else q0 + roff[j]
        pos = toff[j]
        small = False
        for a in range(kj):
            small = small or not abs(t[j, a, a]) >= 1.0
        if not small:
            # a term whose variances are at least the residual's: its g is a sum of residuals
            # that cancel to u / theta, so take it from the normal equations T_j' g = u
            for lev in range(nlev[j]):
                b0 = start + lev * kj
                for a in range(kj - 1, -1, -1):
                    acc = u[b0 + a]
                    for e in range(a + 1, kj):
                        acc -= t[j, e, a] * gz[b0 + e]
                    gz[b0 + a] = acc / t[j, a, a]
        for b in range(kj):
            for a in range(b, kj):
                acc = 0.0
                for lev in range(nlev[j]):
                    acc += gz[start + lev * kj + a] * u[start + lev * kj + b]
                dr2[pos] = -2.0 * acc
                pos += 1

    # S^-1 of the leading mm x mm block (L_S in the lower triangle of c): blocked, by BLAS,
    # from order lapack_min on (outside prange, as the factorisation), else by loops; the
    # diagonal blocks (inverted by loops) are of order at most lapack_min
    if mm >= lapack_min:
        sinv = cholesky_inverse(c, mm, min(INVERSE_BLOCK, lapack_min))
    else:
        linv = np.zeros((mm, mm))
        for i in range(mm):
            linv[i, i] = 1.0 / c[i, i]
            for j in range(i):
                acc = 0.0
                for kk in range(j, i):
                    acc -= c[i, kk] * linv[kk, j]
                linv[i, j] = acc / c[i, i]
        sinv = np.zeros((mm, mm))
        for i in range(mm):
            for j in range(i + 1):
                acc = 0.0
                for kk in range(i, mm):
                    acc += linv[kk, i] * linv[kk, j]
                sinv[i, j] = acc
                sinv[j, i] = acc

    # rest x rest: sum_e S^-1[d, e] (Lambda_rest' G_rest)[e, c] for the parameter pairs
    tr = np.zeros(grad.size)
    fcol = np.zeros(mm)
    scalar = True  # every rest term one column: Lambda_rest diagonal (lam)
    for j in range(1, k.size):
        scalar = scalar and k[j] == 1
    lam = np.ones(mm)
    for e in range(m_re):
        lam[e] = t[pterm[e], 0, 0]
    for j in range(1, k.size):
        kj = k[j]
        for lev in range(nlev[j]):
            blk = roff[j] + lev * kj
            for a in range(kj):
                cpos = blk + a
                if scalar:  # column cpos of Lambda_rest' G_rest (G symmetric: row cpos)
                    acc = 0.0
                    for e in range(mm):
                        acc += sinv[cpos, e] * (lam[e] * xc[cpos, e])
                    tr[toff[j]] += acc
                    continue
                for e in range(mm):
                    if e < m_re:
                        jj, cc = pterm[e], pwithin[e]
                        acc = 0.0
                        for f in range(cc, k[jj]):
                            acc += t[jj, f, cc] * xc[cpos, e - cc + f]
                        fcol[e] = acc
                    else:
                        fcol[e] = xc[cpos, e]
                for b in range(a + 1):
                    acc = 0.0
                    for e in range(mm):
                        acc += sinv[blk + b, e] * fcol[e]
                    tr[toff[j] + b * kj - b * (b - 1) // 2 + (a - b)] += acc

    # term 0, level by level: Sigma_gg, Sigma_{R,g} on the level's rest positions
    dinv = np.zeros((k0, k0))
    lginv = np.zeros((k0, k0))
    ft0 = np.zeros((k0, k0))
    nsmax = 0
    for g in range(nlev0):
        nsmax = max(nsmax, bptr[g + 1] - bptr[g])
    v = np.empty((nsmax, k0))  # V_g = L_BD,g L_g^-1
    srg = np.empty((nsmax, k0))  # Sigma_{R,g} = -S^-1 V_g on the level's rest rows
    for g in range(nlev0):
        lg = d1[g]
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - (0 if reml else p)
        for i in range(k0):  # L_g^-1 (lower)
            for j in range(k0):
                lginv[i, j] = 0.0
            lginv[i, i] = 1.0 / lg[i, i]
            for j in range(i):
                acc = 0.0
                for kk in range(j, i):
                    acc -= lg[i, kk] * lginv[kk, j]
                lginv[i, j] = acc / lg[i, i]
        for i in range(k0):  # D_g^-1 = L_g^-T L_g^-1
            for j in range(k0):
                acc = 0.0
                for kk in range(max(i, j), k0):
                    acc += lginv[kk, i] * lginv[kk, j]
                dinv[i, j] = acc
        for s in range(ns):
            for j in range(k0):
                acc = 0.0
                for kk in range(j, k0):
                    acc += bval[s0 + s, kk] * lginv[kk, j]
                v[s, j] = acc
        for s in range(ns):  # S^-1 symmetric: each pair (s, s2 < s) read once
            ds = bidx[s0 + s]
            z = sinv[ds, ds]
            for j in range(k0):
                srg[s, j] = -z * v[s, j]
            for s2 in range(s):
                z = sinv[ds, bidx[s0 + s2]]
                for j in range(k0):
                    srg[s, j] -= z * v[s2, j]
                    srg[s2, j] -= z * v[s, j]
        for i in range(k0):  # Sigma_gg = D_g^-1 - V_g' Sigma_{R,g}
            for j in range(k0):
                acc = dinv[i, j]
                for s in range(ns):
                    acc -= v[s, i] * srg[s, j]
                dinv[i, j] = acc
        for e in range(k0):  # T0' G_gg
            for a in range(k0):
                acc = 0.0
                for f in range(e, k0):
                    acc += t[0, f, e] * xd1[g, f, a]
                ft0[e, a] = acc
        # term 0's parameters: Sigma_gg T0'G_gg + Sigma_{g,R} (Lambda_rest' G_{R,g})
        for b in range(k0):
            for a in range(b, k0):
                acc = 0.0
                for e in range(k0):
                    acc += dinv[b, e] * ft0[e, a]
                for s in range(ns):
                    i = bidx[s0 + s]
                    if i < m_re:
                        jj, cc = pterm[i], pwithin[i]
                        fb = 0.0
                        for f in range(cc, k[jj]):
                            fb += t[jj, f, cc] * xbval[s0 + s - cc + f, a]
                    else:
                        fb = xbval[s0 + s, a]
                    acc += srg[s, b] * fb
                tr[toff[0] + b * k0 - b * (b - 1) // 2 + (a - b)] += acc
        # the other terms' parameters: Sigma_{d,(g,.)} (T0' G_{(g,.),c})
        for s in range(ns):
            i = bidx[s0 + s]
            if i >= m_re or pwithin[i] != 0:
                continue
            jj = pterm[i]
            kj = k[jj]
            for a in range(kj):
                for b in range(a + 1):
                    acc = 0.0
                    for e in range(k0):
                        fe = 0.0
                        for f in range(e, k0):
                            fe += t[0, f, e] * xbval[s0 + s + a, f]
                        acc += srg[s + b, e] * fe
                    tr[toff[jj] + b * kj - b * (b - 1) // 2 + (a - b)] += acc
    for i in range(grad.size):
        grad[i] = 2.0 * tr[i] + nr * dr2[i] / r2
    return r2


@jit
def criterion_and_gradient(st, data, theta, lapack_min):
    """``(f, grad)``: the profiled criterion at ``theta`` and its gradient (a Gaussian
    model, engine units); ``f`` is +inf (and ``grad`` NaN) where it is undefined.

    An entry for tests and diagnostics; the optimiser calls
    :func:`profiled_gradient` directly.
    """
    scr = scratch(st)
    cross_products(st, data.wt, data.y, scr)
    t = theta_to_factors(theta, st)
    q = st.nlev[0] * st.k[0] + st.m_re
    u = np.zeros(q)
    beta = np.zeros(st.p)
    lxx = np.zeros((st.p, st.p))
    grad = np.full(theta.size, np.nan)
    f, _ = profiled(t, st, data, lapack_min, u, beta, lxx, scr)
    if f < np.inf:
        profiled_gradient(t, st, data, lapack_min, u, beta, scr, grad)
    return f, grad
