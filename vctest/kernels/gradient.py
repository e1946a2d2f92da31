"""Analytic gradients: the profiled (RE)ML criterion in theta, the Laplace objectives.

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

The Laplace approximation of a GLMM (:func:`laplace_gradient`)
--------------------------------------------------------------
lme4's nAGQ = 1 objective is ``F = D(eta*) + ||u*||^2 + log|A|`` with ``eta =
offset + X beta + Z Lambda u``, ``u*`` the mode of the penalised deviance
(``u* = Lambda'Z's``, ``s`` the scores) and ``A = Lambda'Z'WZ Lambda + I`` at the
PIRLS weights ``W`` of the mode.  The penalised deviance is a minimum over u,
so (envelope theorem) its derivative is the partial one, ``-2 s' d eta`` at
fixed u.  ``log|A|`` moves with theta directly and with every weight, ``w_r``
through ``eta*_r``: ``d log|A| = 2 tr(A^-1 Lambda'Z'WZ dLambda) + c' d eta*``
with ``c_r = h_r dw_r/deta_r`` and the leverages ``h_r = a_r' A^-1 a_r``
(``a_r = Lambda' z_r``).  Differentiating ``u* = Lambda'Z's`` (for a canonical
link ``ds/deta = -W``) gives ``A du* = dLambda'Z's - Lambda'Z'W (Z dLambda u* + X
dbeta)``, so with one more solve ``v = A^-1 Lambda'Z'c`` and ``zeta = c - W Z
Lambda v``:

    dF/dbeta_k  = sum_r (zeta_r - 2 s_r) x_rk,
    dF/dtheta_i = (zeta - 2 s)' Z E_i u* + s' Z E_i v + 2 tr(A^-1 Lambda'Z'WZ E_i).

The leverages and the trace need ``A^-1`` only on the pattern of each row's
nonzeros: the selected inverse above (:func:`rest_inverse`,
:func:`level_inverse`), taken in one pass over the rows.  lme4's nAGQ = 0
objective (u and beta both modes, ``log|A|`` still of the random-effect block)
has the same gradient in theta with ``v`` from the joint system
``[A, Lambda'Z'WX; ., X'WX] (v, v_beta) = (Lambda'Z'c, X'c)`` and ``zeta = c -
W (Z Lambda v + X v_beta)``.  The cost is about one PIRLS iteration, against 2
(d + p) evaluations for central differences.  (The same derivation is the
basis of the gradients of Laplace approximations in e.g. Bates et al., lme4's
``glmer`` documentation, and TMB, Kristensen et al. 2016, J. Stat. Softw.
70(5), where it is done by automatic differentiation.)  Non-canonical links
(probit, cloglog) have ``ds/deta != -W``; they keep finite differences, as
does a rest block the engine factors by LAPACK (order ``lapack_min`` or more).
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.families import canonical_row
from vctest.kernels.linalg import INVERSE_BLOCK, cholesky_inverse, lower_inverse
from vctest.kernels.objective import pirls, profiled
from vctest.kernels.pwls import (
    cross_products,
    linear_predictor,
    row_entries,
    scratch,
    solve_factored,
    theta_to_factors,
)
from vctest.kernels.types import LOGIT, PIRLS_OK, POISSON


@jit(inline=True)
def rest_inverse(c, mm, lapack_min):
    """``S^-1`` of the leading ``mm x mm`` block of the rest block, from its lower
    Cholesky factor ``L_S`` in the lower triangle of ``c`` (dense, symmetric):
    blocked, by BLAS, from order ``lapack_min`` on (outside prange, as the
    factorisation; the diagonal blocks, inverted by loops, are of order at most
    ``lapack_min``), else by loops."""
    if mm < lapack_min:
        return rest_inverse_by_loops(c, mm)
    return cholesky_inverse(c, mm, min(INVERSE_BLOCK, lapack_min))


@jit(inline=True)
def rest_inverse_by_loops(c, mm):
    """:func:`rest_inverse` by loops (no LAPACK/BLAS code to compile)."""
    linv = np.zeros((mm, mm))
    lower_inverse(c, mm, linv)
    sinv = np.zeros((mm, mm))
    for i in range(mm):
        for j in range(i + 1):
            acc = 0.0
            for kk in range(i, mm):
                acc += linv[kk, i] * linv[kk, j]
            sinv[i, j] = acc
            sinv[j, i] = acc
    return sinv


@jit(inline=True)
def level_inverse(lg, bval, bidx, s0, ns, sinv, lginv, dinv, v, srg):
    """One level g of term 0 in the selected inverse: ``Sigma_gg`` into ``dinv``.

    ``lg`` is the level's factor ``L_g``, rows ``s0 .. s0 + ns - 1`` of ``bval``
    its coupling ``L_BD,g`` to the rest positions ``bidx[s0 + s]``, ``sinv`` the
    rest block's ``S^-1`` (:func:`rest_inverse`); ``lginv`` is work space.
    Rows ``0 .. ns - 1`` of ``v`` get ``V_g = L_BD,g L_g^-1`` and those of
    ``srg`` ``Sigma_{R,g} = -S^-1 V_g`` on the level's rest rows (``ns x k0``).
    """
    k0 = lg.shape[0]
    lower_inverse(lg, k0, lginv)  # L_g^-1 (lower)
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

    # S^-1 of the leading mm x mm block (L_S in the lower triangle of c)
    sinv = rest_inverse(c, mm, lapack_min)

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
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - (0 if reml else p)
        level_inverse(d1[g], bval, bidx, s0, ns, sinv, lginv, dinv, v, srg)
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


@jit
def laplace_gradient(t, st, data, joint, lapack_min, u, beta, scr, grad):
    """The gradient of the Laplace approximation of -2 log-likelihood at the factors ``t``
    and fixed effects ``beta`` into ``grad`` (theta, then beta; their units).

    Call it right after a PIRLS evaluation converged at the same ``t``: ``scr`` holds
    the factor at the mode and ``u`` (and ``beta``) the mode.  ``joint``: the
    evaluation was lme4's nAGQ = 0 objective, with (u, beta) by PIRLS together
    (beta is then a mode too and its entries of ``grad`` are the partial
    derivatives).  Returns False (``grad`` untouched) for a link that is not the
    family's canonical one (logit, Poisson's log), where the weights are not the
    observed information, and for a rest block of order ``lapack_min`` or more
    (its inverse here is by loops, to keep LAPACK's code out of this kernel's
    compilation; where the engine factors that block by LAPACK, finite
    differences cost less): the caller then takes finite differences.
    See the module docstring for the formulas.
    """
    if not (data.fam == POISSON or data.link == LOGIT) or st.m_re >= lapack_min:
        return False
    n, p, m_re = st.n, st.p, st.m_re
    k, roff, toff, bptr, bidx = st.k, st.roff, st.toff, st.bptr, st.bidx
    codes, zcols, zoff, x = st.codes, st.zcols, st.zoff, st.x
    k0, nlev0 = k[0], st.nlev[0]
    q0 = nlev0 * k0
    q = q0 + m_re
    y, wt = data.y, data.wt
    d1, bval, c = scr.d1, scr.bval, scr.c
    pos, val, slot, a0 = scr.pos, scr.val, scr.slot, scr.a0

    # weights w, scores s and dw/deta at the mode
    eta, w, s, wd = scr.eta, scr.w, scr.score, scr.tw
    linear_predictor(t, st, u, beta, data.offset, eta)
    for r in range(n):
        w[r], s[r], wd[r] = canonical_row(data.fam, eta[r], y[r], wt[r])

    # the selected inverse of A_ZZ (the random-effect block), as the profiled gradient's
    sinv = rest_inverse_by_loops(c, m_re)
    sigd = np.empty((nlev0, k0, k0))
    sigb = np.zeros((bidx.size, k0))
    lginv = np.zeros((k0, k0))
    nsmax = 0
    for g in range(nlev0):
        nsmax = max(nsmax, bptr[g + 1] - bptr[g])
    v = np.empty((nsmax, k0))
    srg = np.empty((nsmax, k0))
    for g in range(nlev0):
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - p
        level_inverse(d1[g], bval, bidx, s0, ns, sinv, lginv, sigd[g], v, srg)
        for i in range(ns):
            for a in range(k0):
                sigb[s0 + i, a] = srg[i, a]

    # rows: leverages h_r = a_r' A^-1 a_r (a_r = Lambda' z_r), tr(A^-1 Lambda'Z'WZ E_i),
    # and the right-hand side [Lambda'Z'c; X'c] with c = h dw/deta
    tr = np.zeros(grad.size)
    rb0 = np.zeros((nlev0, k0))
    rbr = np.zeros(m_re + (p if joint else 0))
    y0 = np.empty(k0)
    yr = np.empty(val.size)
    cw = np.empty(n)
    for r in range(n):
        g = codes[0, r]
        cnt = row_entries(r, t, st, a0, pos, val, slot)
        lev = 0.0
        for a in range(k0):
            acc = 0.0
            for b in range(k0):
                acc += sigd[g, a, b] * a0[b]
            for e in range(cnt):
                acc += sigb[slot[e], a] * val[e]
            y0[a] = acc
            lev += a0[a] * acc
        for e in range(cnt):
            acc = 0.0
            for a in range(k0):
                acc += sigb[slot[e], a] * a0[a]
            for f in range(cnt):
                acc += sinv[pos[e], pos[f]] * val[f]
            yr[e] = acc
            lev += val[e] * acc
        cr = wd[r] * lev
        cw[r] = cr
        for a in range(k0):
            rb0[g, a] += cr * a0[a]
        for e in range(cnt):
            rbr[pos[e]] += cr * val[e]
        if joint:
            for i in range(p):
                rbr[m_re + i] += cr * x[r, i]
        wr = w[r]
        for b in range(k0):  # term 0: E_i picks T0[a, b]
            for a in range(b, k0):
                tr[toff[0] + b * k0 - b * (b - 1) // 2 + (a - b)] += (
                    wr * zcols[r, zoff[0] + a] * y0[b])
        e0 = 0
        for j in range(1, k.size):
            kj = k[j]
            for b in range(kj):
                for a in range(b, kj):
                    tr[toff[j] + b * kj - b * (b - 1) // 2 + (a - b)] += (
                        wr * zcols[r, zoff[j] + a] * yr[e0 + b])
            e0 += kj

    # v = A^-1 [Lambda'Z'c; X'c] (the joint system when joint), psi = Z Lambda v + X v_beta
    sol = np.zeros(q + p)
    solve_factored(st, joint, rb0, rbr, sol, scr)
    v = np.empty(q)
    vb = np.zeros(p)
    for i in range(q):
        v[i] = sol[i]
    if joint:
        for i in range(p):
            vb[i] = sol[q + i]
    psi = scr.teta
    linear_predictor(t, st, v, vb, np.zeros(n), psi)

    # d/d beta: X'(zeta - 2 s); d/d theta_i: (zeta - 2 s)' Z E_i u + s' Z E_i v + 2 tr_i,
    # with zeta = c - W psi
    for i in range(grad.size):
        grad[i] = 2.0 * tr[i]
    d = grad.size - p
    for r in range(n):
        er = cw[r] - w[r] * psi[r] - 2.0 * s[r]
        sr = s[r]
        for i in range(p):
            grad[d + i] += er * x[r, i]
        for j in range(k.size):
            kj = k[j]
            base = codes[0, r] * kj if j == 0 else q0 + roff[j] + codes[j, r] * kj
            for b in range(kj):
                ub = er * u[base + b] + sr * v[base + b]
                for a in range(b, kj):
                    grad[toff[j] + b * kj - b * (b - 1) // 2 + (a - b)] += (
                        zcols[r, zoff[j] + a] * ub)
    return True


@jit
def laplace_and_gradient(st, data, theta, beta, joint, sat, lapack_min):
    """``(f, grad, ok)``: a Laplace objective at ``(theta, beta)`` (engine units; lme4's
    nAGQ = 0 objective when ``joint``, beta then the start of its PIRLS) and its gradient
    (theta, then beta); ``f`` is +inf and ``grad`` NaN where PIRLS fails, ``ok`` False
    for a non-canonical link.  ``sat`` is the family's saturated constant.

    An entry for tests and diagnostics (PIRLS to 1e-12); the optimiser calls
    :func:`laplace_gradient` directly.
    """
    scr = scratch(st)
    t = theta_to_factors(theta, st)
    p = beta.size
    u = np.zeros(st.nlev[0] * st.k[0] + st.m_re)
    b = beta.copy()
    lxx = np.zeros((p, p))
    grad = np.full(theta.size + p, np.nan)
    dev, usq, logdet, _, status = pirls(t, st, data, joint, False, 200, 1e-12, lapack_min, u,
                                        b, lxx, scr)
    if status != PIRLS_OK or not math.isfinite(dev + logdet):
        return np.inf, grad, False
    ok = laplace_gradient(t, st, data, joint, lapack_min, u, b, scr, grad)
    return dev + sat + usq + logdet, grad, ok
