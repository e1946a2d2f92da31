"""The one penalised weighted least-squares core of every model.

Given theta (through the relative covariance factors ``T_j``), weights ``w``
and a weighted working response ``s = W z``, :func:`pwls` solves

    min_{u, beta} ||W^(1/2) (z - Z Lambda u - X beta)||^2 + ||u||^2

(or over u alone, beta fixed, when ``joint`` is False) by the blocked Cholesky
factor ``L`` of ``[Lambda'Z'WZ Lambda + I, Lambda'Z'WX; ., X'WX]`` (Bates et
al. 2015, JSS 67(1), section 3).  A linear mixed model calls it once per theta
with the prior weights (its profiled criterion, :mod:`vctest.kernels.objective`);
the Laplace approximation of a GLMM iterates it with the PIRLS weights; a GLM
is the same system with no random effects.

PIRLS assembles the system from the rows at each iteration (:func:`assemble`,
its weights change); a Gaussian model forms its raw cross-products once per
response (:func:`cross_products`, of the response in the engine's centred and
scaled units) and applies the factors per theta in O(q) (:func:`apply_factors`).
:func:`factor_solve` then factors the blocks as
:class:`vctest.kernels.types.Structure` describes: term 0 block diagonal, the
rest dense and factored by an envelope Cholesky (a factor nested in term 0
gains no fill), or by LAPACK when its order reaches ``lapack_min`` (outside
``prange`` only).  Work arrays are allocated once per fit (:func:`scratch`).
All loops; no BLAS inside the bootstrap.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.linalg import assign, cholesky_envelope, cholesky_lower_inplace
from vctest.kernels.types import Scratch


@jit(inline=True)
def theta_to_factors(theta, st):
    """Relative covariance factors ``T_j`` (lower triangular, ``(J, kmax, kmax)``).

    Parameters of term j are its lower triangle in column-major order, as lme4
    orders them: (T11, T21, ..., Tk1, T22, ...).
    """
    k, toff = st.k, st.toff
    t = np.zeros((k.size, max(st.kmax, 1), max(st.kmax, 1)))
    for j in range(k.size):
        pos = toff[j]
        for c in range(k[j]):
            for r in range(c, k[j]):
                t[j, r, c] = theta[pos]
                pos += 1
    return t


@jit(internal=True)
def linear_predictor(t, st, u, beta, offset, eta):
    """``eta = offset + X beta + Z Lambda u`` (``eta`` filled); ``t`` from theta_to_factors."""
    k, roff, codes, zcols, zoff, x = st.k, st.roff, st.codes, st.zcols, st.zoff, st.x
    q0 = st.nlev[0] * k[0]
    for r in range(st.n):
        e = offset[r]
        for i in range(st.p):
            e += x[r, i] * beta[i]
        for j in range(k.size):
            kj = k[j]
            base = codes[0, r] * kj if j == 0 else q0 + roff[j] + codes[j, r] * kj
            for c in range(kj):
                s = 0.0
                for c2 in range(c + 1):
                    s += t[j, c, c2] * u[base + c2]
                e += zcols[r, zoff[j] + c] * s
        eta[r] = e


@jit(internal=True)
def pwls(t, st, w, s, joint, lapack_min, sol, lxx, scr):
    """Solve one penalised weighted least-squares system from the rows.

    Parameters
    ----------
    t : (J, kmax, kmax)
        Relative covariance factors.
    st : Structure
    w, s : (n,)
        Weights and weighted working response ``W z``.
    joint : bool
        Solve for (u, beta) together (else u alone).
    lapack_min : int
        Factor a dense rest block of this order or more by LAPACK.
    sol : (q + p,)
        Receives u, then beta (when ``joint``).
    lxx : (p, p)
        Receives the lower Cholesky factor ``R_X'`` of beta's Schur complement
        (when ``joint``).
    scr : Scratch
        Work arrays (:func:`scratch`), overwritten.

    Returns
    -------
    logdet_l : float
        ``log|L|^2`` of the random-effects part.
    logdet_x : float
        ``log|R_X|^2`` (0 unless ``joint``).
    ok : bool
        False when a factorisation failed.
    """
    assemble(t, st, w, s, joint, st.n >= 0, scr)  # a run-time True (one specialisation)
    return factor_solve(st, joint, lapack_min, sol, lxx, scr)


@jit(inline=True)
def row_entries(r, t, st, a0, pos, val, slot):
    """Row ``r``'s entries of ``Lambda' z_r`` with the factors ``t``: term 0's ``k0``
    into ``a0``; every other term's into ``val``, with their rest positions in
    ``pos`` and their slots in ``bidx`` in ``slot``.  Returns how many went to ``val``."""
    k, roff, codes, zcols, zoff, rowslot = st.k, st.roff, st.codes, st.zcols, st.zoff, st.rowslot
    k0 = k[0]
    for a in range(k0):
        acc = 0.0
        for cc in range(a, k0):
            acc += zcols[r, zoff[0] + cc] * t[0, cc, a]
        a0[a] = acc
    cnt = 0
    for j in range(1, k.size):
        kj = k[j]
        base = roff[j] + codes[j, r] * kj
        sl = rowslot[r, j - 1]
        for cc in range(kj):
            acc = 0.0
            for c2 in range(cc, kj):
                acc += zcols[r, zoff[j] + c2] * t[j, c2, cc]
            pos[cnt] = base + cc
            val[cnt] = acc
            slot[cnt] = sl + cc
            cnt += 1
    return cnt


@jit(internal=True)
def assemble(t, st, w, s, joint, lower_only, scr):
    """The system's blocks from the rows into ``scr`` (``d1, b0, bval, c, br``),
    with the factors ``t`` applied (identity factors: the raw cross-products).

    ``lower_only``: only the lower triangle of the rest block ``c`` (all that
    :func:`factor_solve` reads; half the work per row for a dense X), else the
    whole symmetric block (the raw cross-products the gradient and
    :func:`apply_factors` read)."""
    k, nlev, codes = st.k, st.nlev, st.codes
    bptr, bidx, x = st.bptr, st.bidx, st.x
    n, p, m_re = st.n, st.p, st.m_re
    k0, nlev0 = k[0], nlev[0]
    m = m_re + (p if joint else 0)
    d1, b0, bval, c, br, a0 = scr.d1, scr.b0, scr.bval, scr.c, scr.br, scr.a0
    pos, val, slot = scr.pos, scr.val, scr.slot
    for g in range(nlev0):
        for a in range(k0):
            b0[g, a] = 0.0
            for b in range(k0):
                d1[g, a, b] = 0.0
    for i in range(bidx.size):
        for a in range(k0):
            bval[i, a] = 0.0
    for i in range(m):
        br[i] = 0.0
        for j in range(m):
            c[i, j] = 0.0
    for r in range(n):
        wr, sr, g = w[r], s[r], codes[0, r]
        cnt = row_entries(r, t, st, a0, pos, val, slot)
        for a in range(k0):
            b0[g, a] += sr * a0[a]
            for b in range(k0):
                d1[g, a, b] += wr * a0[a] * a0[b]
        if joint:
            xs = bptr[g + 1] - p
            for i in range(p):
                pos[cnt] = m_re + i
                val[cnt] = x[r, i]
                slot[cnt] = xs + i
                cnt += 1
        for e in range(cnt):
            wv = wr * val[e]
            br[pos[e]] += sr * val[e]
            for a in range(k0):
                bval[slot[e], a] += wv * a0[a]
            if lower_only:  # a row's positions ascend (terms by roff, then X)
                for f in range(e + 1):
                    c[pos[e], pos[f]] += wv * val[f]
            else:
                for f in range(cnt):
                    c[pos[e], pos[f]] += wv * val[f]


@jit(inline=True)
def apply_factors(t, st, scr):
    """Apply the factors ``t`` to the raw cross-products ``scr.x*`` (joint system):
    ``d1 = T0' D1 T0`` per level, ``bval = T_rest' B T0``, ``c = Lambda_rest' C
    Lambda_rest``, ``b0 = T0' b0``, ``br = Lambda_rest' br`` -- O(q), no pass over the rows."""
    k, bptr, bidx = st.k, st.bptr, st.bidx
    k0, nlev0, m_re = k[0], st.nlev[0], st.m_re
    m = m_re + st.p
    d1, b0, bval, c, br, a0 = scr.d1, scr.b0, scr.bval, scr.c, scr.br, scr.a0
    xd1, xb0, xbval, xc, xbr = scr.xd1, scr.xb0, scr.xbval, scr.xc, scr.xbr
    for g in range(nlev0):
        for a in range(k0):
            acc = 0.0
            for e in range(a, k0):
                acc += t[0, e, a] * xb0[g, e]
            b0[g, a] = acc
            for b in range(k0):
                acc = 0.0
                for e in range(a, k0):
                    for f in range(b, k0):
                        acc += t[0, e, a] * xd1[g, e, f] * t[0, f, b]
                d1[g, a, b] = acc
    for u in range(bidx.size):  # columns: B T0
        for a in range(k0):
            acc = 0.0
            for e in range(a, k0):
                acc += xbval[u, e] * t[0, e, a]
            a0[a] = acc
        for a in range(k0):
            bval[u, a] = a0[a]
    for g in range(nlev0):  # rows of the random-effect blocks: T_j' B
        for u in range(bptr[g], bptr[g + 1]):
            i = bidx[u]
            if i >= m_re or scr.pwithin[i] != 0:
                continue
            kj = k[scr.pterm[i]]
            for cc in range(kj):  # ascending: row cc reads rows >= cc only
                for a in range(k0):
                    acc = 0.0
                    for e in range(cc, kj):
                        acc += t[scr.pterm[i], e, cc] * bval[u + e, a]
                    bval[u + cc, a] = acc
    for i in range(m):
        br[i] = xbr[i]
    for i in range(m_re):
        if scr.pwithin[i] != 0:
            continue
        j = scr.pterm[i]
        for cc in range(k[j]):
            acc = 0.0
            for e in range(cc, k[j]):
                acc += t[j, e, cc] * br[i + e]
            br[i + cc] = acc
    scalar = True  # every rest term one column: Lambda_rest diagonal, c = lam_i C_ij lam_j
    for j in range(1, k.size):
        scalar = scalar and k[j] == 1
    if scalar:
        lam = np.ones(m)
        for i in range(m_re):
            lam[i] = t[scr.pterm[i], 0, 0]
        for i in range(m):
            for col in range(m):
                c[i, col] = (lam[i] * xc[i, col]) * lam[col]
    else:
        for i in range(m):  # row by row (contiguous): row i of Lambda_rest' C, times Lambda_rest
            if i < m_re:
                j, cc = scr.pterm[i], scr.pwithin[i]
                for col in range(m):
                    acc = 0.0
                    for e in range(cc, k[j]):
                        acc += t[j, e, cc] * xc[i - cc + e, col]
                    c[i, col] = acc
            else:
                for col in range(m):
                    c[i, col] = xc[i, col]
            for ib in range(m_re):
                if scr.pwithin[ib] != 0:
                    continue
                j = scr.pterm[ib]
                for cc in range(k[j]):  # ascending: column cc reads columns >= cc only
                    acc = 0.0
                    for e in range(cc, k[j]):
                        acc += c[i, ib + e] * t[j, e, cc]
                    c[i, ib + cc] = acc


@jit(internal=True)
def factor_solve(st, joint, lapack_min, sol, lxx, scr):
    """Factor the assembled system in ``scr`` and solve it (see :func:`pwls`)."""
    k, nlev, bptr, bidx = st.k, st.nlev, st.bptr, st.bidx
    p, m_re = st.p, st.m_re
    k0, nlev0 = k[0], nlev[0]
    q0 = nlev0 * k0
    px = p if joint else 0
    m = m_re + px
    d1, b0, bval, c, br, a0 = scr.d1, scr.b0, scr.bval, scr.c, scr.br, scr.a0
    first = scr.first
    for i in range(m):
        first[i] = 0
    for i in range(m_re):
        c[i, i] += 1.0

    logdet = 0.0
    for g in range(nlev0):
        lg = d1[g]
        for a in range(k0):
            lg[a, a] += 1.0
        if not cholesky_lower_inplace(lg, k0):
            return np.inf, np.inf, False
        for a in range(k0):
            logdet += 2.0 * math.log(lg[a, a])
            acc = b0[g, a]
            for b in range(a):
                acc -= lg[a, b] * b0[g, b]
            b0[g, a] = acc / lg[a, a]
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - (p - px)
        for u in range(ns):  # rows of L21: solve x L' = b
            for a in range(k0):
                acc = bval[s0 + u, a]
                for b in range(a):
                    acc -= lg[a, b] * bval[s0 + u, b]
                bval[s0 + u, a] = acc / lg[a, a]
        for u in range(ns):
            iu = bidx[s0 + u]
            acc = 0.0
            for a in range(k0):
                acc += bval[s0 + u, a] * b0[g, a]
            br[iu] -= acc
            for v in range(u + 1):
                iv = bidx[s0 + v]
                acc = 0.0
                for a in range(k0):
                    acc += bval[s0 + u, a] * bval[s0 + v, a]
                c[iu, iv] -= acc
    if m >= lapack_min:
        for i in range(m):
            if not c[i, i] > 0.0:
                return np.inf, np.inf, False
        low = np.linalg.cholesky(c[:m, :m])  # reads the lower triangle only
        for i in range(m):
            if not low[i, i] > 0.0:
                return np.inf, np.inf, False
            for j in range(i + 1):
                c[i, j] = low[i, j]
    elif not cholesky_envelope(c, m, first):
        return np.inf, np.inf, False
    for i in range(m_re):
        logdet += 2.0 * math.log(c[i, i])
    logdet_x = 0.0
    for i in range(m_re, m):
        logdet_x += 2.0 * math.log(c[i, i])
    for i in range(m):  # forward, then back substitution
        acc = br[i]
        for j in range(first[i], i):
            acc -= c[i, j] * br[j]
        br[i] = acc / c[i, i]
    for i in range(m - 1, -1, -1):  # by rows of L (contiguous): L[i, j] is 0 for j < first[i]
        br[i] /= c[i, i]
        for j in range(first[i], i):
            br[j] -= c[i, j] * br[i]
    for i in range(m):
        sol[q0 + i] = br[i]
    if joint:
        for i in range(p):
            for j in range(p):
                lxx[i, j] = c[m_re + i, m_re + j] if j <= i else 0.0
    for g in range(nlev0):
        lg = d1[g]
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - (p - px)
        for a in range(k0):
            acc = b0[g, a]
            for u in range(ns):
                acc -= bval[s0 + u, a] * br[bidx[s0 + u]]
            a0[a] = acc
        for a in range(k0 - 1, -1, -1):
            acc = a0[a]
            for b in range(a + 1, k0):
                acc -= lg[b, a] * a0[b]
            a0[a] = acc / lg[a, a]
            sol[g * k0 + a] = a0[a]
    return logdet, logdet_x, True


@jit
def scratch(st):
    """The work arrays of one fit of the model with structure ``st``."""
    n, p, k = st.n, st.p, st.k
    k0, nlev0 = k[0], st.nlev[0]
    m = st.m_re + p
    q = nlev0 * k0 + st.m_re
    cmax = p
    for j in range(1, k.size):
        cmax += k[j]
    pterm = np.zeros(st.m_re, np.int64)
    pwithin = np.zeros(st.m_re, np.int64)
    for j in range(1, k.size):
        for i in range(st.nlev[j] * k[j]):
            pterm[st.roff[j] + i] = j
            pwithin[st.roff[j] + i] = i % k[j]
    return Scratch(np.zeros((nlev0, k0, k0)), np.zeros((nlev0, k0)),
                   np.zeros((st.bidx.size, k0)), np.zeros((m, m)), np.zeros(m), np.zeros(k0),
                   np.zeros(cmax, np.int64), np.zeros(cmax), np.zeros(cmax, np.int64),
                   np.zeros(m, np.int64), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n),
                   np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(q), np.zeros(p),
                   np.zeros(q + p), np.zeros(q + p), np.zeros((nlev0, k0, k0)),
                   np.zeros((nlev0, k0)), np.zeros((st.bidx.size, k0)), np.zeros((m, m)),
                   np.zeros(m), np.zeros(1), pterm, pwithin)


@jit
def cross_products(st, w, y, scr):
    """The raw cross-products of a Gaussian model into ``scr.x*`` (once per response)."""
    t = np.zeros((st.k.size, max(st.kmax, 1), max(st.kmax, 1)))
    for j in range(st.k.size):
        for c in range(st.k[j]):
            t[j, c, c] = 1.0
    s = scr.s
    yy = 0.0
    for r in range(st.n):
        s[r] = w[r] * y[r]
        yy += s[r] * y[r]
    scr.yy[0] = yy
    joint = st.n >= 0  # a run-time True: a literal would compile another specialisation
    assemble(t, st, w, s, joint, st.n < 0, scr)  # the whole block: a run-time False
    assign(scr.xd1.reshape(-1), scr.d1.reshape(-1))
    assign(scr.xb0.reshape(-1), scr.b0.reshape(-1))
    assign(scr.xbval.reshape(-1), scr.bval.reshape(-1))
    assign(scr.xc.reshape(-1), scr.c.reshape(-1))
    assign(scr.xbr, scr.br)


@jit(internal=True)
def solve_factored(st, joint, b0, br, sol, scr):
    """Solve the system factored by the last :func:`factor_solve` in ``scr`` for another
    right-hand side: ``b0`` (term 0, ``(nlev0, k0)``) and ``br`` (the rest, length
    ``m_re + p`` when ``joint``, else ``m_re``), both overwritten; the solution (u,
    then beta when ``joint``) goes to ``sol``.  The same substitutions as
    :func:`factor_solve`'s, without factoring again."""
    k, bptr, bidx = st.k, st.bptr, st.bidx
    p = st.p
    k0, nlev0 = k[0], st.nlev[0]
    q0 = nlev0 * k0
    px = p if joint else 0
    m = st.m_re + px
    d1, bval, c, first, a0 = scr.d1, scr.bval, scr.c, scr.first, scr.a0
    for g in range(nlev0):
        lg = d1[g]
        for a in range(k0):
            acc = b0[g, a]
            for b in range(a):
                acc -= lg[a, b] * b0[g, b]
            b0[g, a] = acc / lg[a, a]
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - (p - px)
        for u in range(ns):
            acc = 0.0
            for a in range(k0):
                acc += bval[s0 + u, a] * b0[g, a]
            br[bidx[s0 + u]] -= acc
    for i in range(m):
        acc = br[i]
        for j in range(first[i], i):
            acc -= c[i, j] * br[j]
        br[i] = acc / c[i, i]
    for i in range(m - 1, -1, -1):
        acc = br[i]
        for j in range(i + 1, m):
            if first[j] <= i:
                acc -= c[j, i] * br[j]
        br[i] = acc / c[i, i]
    for i in range(m):
        sol[q0 + i] = br[i]
    for g in range(nlev0):
        lg = d1[g]
        s0 = bptr[g]
        ns = bptr[g + 1] - s0 - (p - px)
        for a in range(k0):
            acc = b0[g, a]
            for u in range(ns):
                acc -= bval[s0 + u, a] * br[bidx[s0 + u]]
            a0[a] = acc
        for a in range(k0 - 1, -1, -1):
            acc = a0[a]
            for b in range(a + 1, k0):
                acc -= lg[b, a] * a0[b]
            a0[a] = acc / lg[a, a]
            sol[g * k0 + a] = a0[a]
