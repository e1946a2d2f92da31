"""Laplace approximation for GLMMs (binomial, Poisson): families and PIRLS.

For a GLMM with linear predictor eta = offset + X beta + Z Lambda(theta) u,
u ~ N(0, I), lme4's Laplace approximation (``nAGQ = 1``; Bates et al. 2015 and
the lme4 GLMM documentation) of -2 log-likelihood is

    -2 l(theta, beta) ~= aic(mu(u*)) + ||u*||^2 + log|L|^2,
    L L' = Lambda'Z' W Z Lambda + I,

where ``aic`` is R's ``family$aic`` (-2 sum_i log p(y_i | mu_i), normalising
constants included), u* the conditional mode and W the PIRLS weights at u*.
Here ``aic = sum of deviance residuals + sat(y)`` with the saturated-model
constant ``sat`` formed once per response (:func:`saturated_constant`).

u* is found by penalised iteratively reweighted least squares (PIRLS): Fisher
scoring (Newton for the canonical links) on ``pdev(u) = sum dev_i + ||u||^2``
with step halving.  It stops when the next full step is below ``tol``, so the
log-determinant is taken with the weights *at* the returned mode (lme4 takes
it one iteration earlier, which moves its -2 logLik of cbpp by 6e-4 at its
default tolPwrss = 1e-7, and by ~1e-8 relative at 1e-12).
``joint=True`` iterates over (u, beta) together, lme4's nAGQ = 0 stage.

Layout of the penalised system (the blocked idea of :mod:`vctest.kernels.lmm`,
rebuilt each iteration because W changes): random-effects term 0 (most
levels) is block diagonal, one k0 x k0 block per level; every other
random-effect column (and X in the joint system) forms a dense "rest" block;
the coupling of each term-0 level to the rest is sparse, and the rest block is
factored by an envelope Cholesky, so a factor nested in term 0 (grouseticks'
LOCATION, BROOD) gains no fill.  The structure tuple
``ws = (dims, k, nlev, toff, roff, codes, zcols, zoff, bptr, bidx, rowslot, x)``
is built by :class:`vctest.model.glmm.GeneralizedLinearMixedModel`:

* ``dims = [n, p, m_re, kmax]`` (int64), ``m_re`` the order of the random
  part of the rest block;
* ``k, nlev`` columns and levels per term; ``toff`` theta offsets (J + 1);
  ``roff[j]`` offset of term j >= 1 in the rest block;
* ``codes (J, n)``, ``zcols (n, sum k)``, ``zoff (J + 1)`` the terms' rows;
* ``bptr (nlev0 + 1)``, ``bidx``: for level g of term 0 the rest positions
  it co-occurs with (sorted), followed by the p X positions ``m_re + i``;
* ``rowslot (n, J - 1)``: absolute slot in ``bidx`` of row r's term-j block;
* ``x (n, p)`` the fixed-effect matrix.

u is ordered as lme4 orders it: term by term, level by level, k_j per level.
Families: 0 binomial (response a proportion, prior weights = trials), 1
Poisson.  Links: 0 logit, 1 probit, 2 cloglog (binomial), 3 log (Poisson).
All kernels are pure loops (no BLAS), so they are safe inside ``prange``.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.linalg import cholesky_lower_inplace
from vctest.kernels.lmm import theta_to_factors

BINOMIAL, POISSON = 0, 1
LOGIT, PROBIT, CLOGLOG, LOG = 0, 1, 2, 3

#: Status of :func:`pirls` (and :func:`vctest.kernels.glm.glm_irls`).
PIRLS_OK, PIRLS_NOT_PD, PIRLS_MAXIT, PIRLS_STALLED = 0, 1, 2, 3

_ETA_MAX = 700.0
_PROBIT_MAX = 37.0
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: Step halvings tried per PIRLS / IRLS iteration.
MAX_HALVINGS = 40


@jit
def family_row(fam, link, eta, y, wt):
    """One observation at linear predictor ``eta``: ``(mu, w, score, dev)``.

    ``w = wt mu'(eta)^2 / V(mu)`` (the PIRLS weight), ``score = wt mu'(eta)
    (y - mu) / V(mu)`` and ``dev`` the deviance residual (R's
    ``family$dev.resids``).  Logs of mu and 1 - mu are taken from eta
    directly, so extreme eta does not produce log(0).
    """
    if fam == POISSON:
        e = min(eta, _ETA_MAX)
        mu = math.exp(e)
        dev = 2.0 * wt * ((y * (math.log(y) - e) if y > 0.0 else 0.0) - (y - mu))
        return mu, wt * mu, wt * (y - mu), dev
    if link == LOGIT:
        if eta >= 0.0:
            ex = math.exp(-eta)
            l1p = math.log1p(ex)
            mu = 1.0 / (1.0 + ex)
            one_m = ex / (1.0 + ex)
            log_mu, log_1m = -l1p, -eta - l1p
        else:
            ex = math.exp(eta)
            l1p = math.log1p(ex)
            mu = ex / (1.0 + ex)
            one_m = 1.0 / (1.0 + ex)
            log_mu, log_1m = eta - l1p, -l1p
        w = wt * mu * one_m
        score = wt * (y - mu)
    else:
        if link == PROBIT:
            e = min(max(eta, -_PROBIT_MAX), _PROBIT_MAX)
            mu = 0.5 * math.erfc(-e / _SQRT2)
            one_m = 0.5 * math.erfc(e / _SQRT2)
            log_mu, log_1m = math.log(mu), math.log(one_m)
            dens = math.exp(-0.5 * e * e) * _INV_SQRT_2PI
        else:  # cloglog
            e = min(max(eta, -_ETA_MAX), _ETA_MAX)
            ee = math.exp(e)
            one_m = math.exp(-ee)
            mu = -math.expm1(-ee)
            log_mu, log_1m = math.log(mu), -ee
            dens = math.exp(e - ee)
        v = mu * one_m
        if v > 1e-300:
            ratio = dens / v
            w = wt * dens * ratio
            score = wt * ratio * (y - mu)
        else:
            w = 0.0
            score = 0.0
    a = y * (math.log(y) - log_mu) if y > 0.0 else 0.0
    b = (1.0 - y) * (math.log(1.0 - y) - log_1m) if y < 1.0 else 0.0
    return mu, w, score, 2.0 * wt * (a + b)


@jit
def inverse_link(fam, link, eta, out):
    """mu = g^{-1}(eta) for every element (``out`` filled in place)."""
    for i in range(eta.size):
        out[i] = family_row(fam, link, eta[i], 0.0, 0.0)[0]


@jit
def saturated_constant(fam, y, wt):
    """``-2 log p(y | mu = y)`` summed: R's ``aic`` = sum of deviance residuals + this."""
    s = 0.0
    for i in range(y.size):
        yi, wi = y[i], wt[i]
        if wi <= 0.0:
            continue
        if fam == POISSON:
            s -= 2.0 * wi * ((yi * math.log(yi) if yi > 0.0 else 0.0) - yi
                             - math.lgamma(yi + 1.0))
        else:
            k = wi * yi
            ll = math.lgamma(wi + 1.0) - math.lgamma(k + 1.0) - math.lgamma(wi - k + 1.0)
            if k > 0.0:
                ll += k * math.log(yi)
            if wi - k > 0.0:
                ll += (wi - k) * math.log(1.0 - yi)
            s -= 2.0 * ll
    return s


@jit
def theta_scale(ws, d):
    """Root-mean-square of the random-effect column each theta entry multiplies."""
    dims, k, zcols, zoff = ws[0], ws[1], ws[6], ws[7]
    n = dims[0]
    out = np.empty(d)
    pos = 0
    for j in range(k.size):
        kj = k[j]
        rms = np.empty(kj)
        for c in range(kj):
            s = 0.0
            for r in range(n):
                s += zcols[r, zoff[j] + c] ** 2
            rms[c] = math.sqrt(s / n) if s > 0.0 else 1.0
        for c in range(kj):
            for r in range(c, kj):
                out[pos] = rms[r]
                pos += 1
    return out


@jit
def column_scale(x):
    """Root-mean-square of each column of ``x`` (1 for a zero column)."""
    n, p = x.shape
    out = np.empty(p)
    for i in range(p):
        s = 0.0
        for r in range(n):
            s += x[r, i] * x[r, i]
        out[i] = math.sqrt(s / n) if s > 0.0 else 1.0
    return out


@jit
def linear_predictor(t, ws, u, beta, offset, eta):
    """eta = offset + X beta + Z Lambda u (``eta`` filled); ``t`` from theta_to_factors."""
    dims, k, nlev, roff, codes = ws[0], ws[1], ws[2], ws[4], ws[5]
    zcols, zoff, x = ws[6], ws[7], ws[11]
    n, p = dims[0], dims[1]
    q0 = nlev[0] * k[0]
    for r in range(n):
        e = offset[r]
        for i in range(p):
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


@jit
def family_rows(fam, link, eta, y, wt, w, score):
    """Fill PIRLS weights and scores at ``eta``; return the sum of deviance residuals."""
    total = 0.0
    for r in range(eta.size):
        _, wr, sr, dr = family_row(fam, link, eta[r], y[r], wt[r])
        w[r] = wr
        score[r] = sr
        total += dr
    return total


@jit
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


@jit
def pwls_solve(t, ws, w, s, joint, sol, lxx):
    """Solve the penalised weighted least-squares system of one PIRLS step.

    Minimises ``||W^(1/2) z - W^(1/2) (Z Lambda u [+ X beta])||^2 + ||u||^2``
    given ``w`` (weights) and ``s = W z`` (weighted working response).
    ``sol`` receives u (and beta after it when ``joint``); ``lxx`` the lower
    Cholesky factor of beta's Schur complement (joint only).  Returns
    ``(log|L|^2, ok)`` with L L' = Lambda'Z'WZ Lambda + I.
    """
    dims, k, nlev, _toff, roff, codes, zcols, zoff, bptr, bidx, rowslot, x = ws
    n, p, m_re = dims[0], dims[1], dims[2]
    nterms = k.size
    k0, nlev0 = k[0], nlev[0]
    q0 = nlev0 * k0
    px = p if joint else 0
    m = m_re + px
    d1 = np.zeros((nlev0, k0, k0))
    b0 = np.zeros((nlev0, k0))
    bval = np.zeros((bidx.size, k0))
    c = np.zeros((m, m))
    br = np.zeros(m)
    a0 = np.empty(k0)
    cmax = px
    for j in range(1, nterms):
        cmax += k[j]
    pos = np.empty(cmax, np.int64)
    val = np.empty(cmax)
    slot = np.empty(cmax, np.int64)
    for r in range(n):
        wr, sr, g = w[r], s[r], codes[0, r]
        for a in range(k0):
            acc = 0.0
            for cc in range(a, k0):
                acc += zcols[r, zoff[0] + cc] * t[0, cc, a]
            a0[a] = acc
        for a in range(k0):
            b0[g, a] += sr * a0[a]
            for b in range(k0):
                d1[g, a, b] += wr * a0[a] * a0[b]
        cnt = 0
        for j in range(1, nterms):
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
            for f in range(cnt):
                c[pos[e], pos[f]] += wv * val[f]
    for i in range(m_re):
        c[i, i] += 1.0

    logdet = 0.0
    for g in range(nlev0):
        lg = d1[g]
        for a in range(k0):
            lg[a, a] += 1.0
        if not cholesky_lower_inplace(lg, k0):
            return np.inf, False
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
    first = np.empty(m, np.int64)
    if not cholesky_envelope(c, m, first):
        return np.inf, False
    for i in range(m_re):
        logdet += 2.0 * math.log(c[i, i])
    for i in range(m):  # forward, then back substitution
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
    return logdet, True


@jit
def pirls(theta, beta0, u0, ws, y, wt, offset, fam, link, joint, maxit, tol, u, beta, lxx):
    """Conditional modes by PIRLS at ``theta`` (and ``beta0`` unless ``joint``).

    Starts from ``u0`` (and ``beta0``); writes the mode to ``u`` and ``beta``
    (``beta = beta0`` unless ``joint``).  Returns ``(dev, usq, logdet, iters,
    status)``: sum of deviance residuals, ||u||^2 and log|L|^2 at the mode,
    and a ``PIRLS_*`` status.  Converged when the largest change the next
    full step would make (absolute in u, relative to 1 + |beta| in beta) is
    at most ``tol``.
    """
    dims, k, toff = ws[0], ws[1], ws[3]
    n, p, kmax = dims[0], dims[1], dims[3]
    q = u0.size
    x = ws[11]
    t = theta_to_factors(theta, k, toff, kmax)
    u[:] = u0
    beta[:] = beta0
    eta = np.empty(n)
    w = np.empty(n)
    score = np.empty(n)
    teta = np.empty(n)
    tw = np.empty(n)
    tscore = np.empty(n)
    s = np.empty(n)
    tu = np.empty(q)
    tb = np.empty(p)
    sol = np.empty(q + p)
    linear_predictor(t, ws, u, beta, offset, eta)
    dev = family_rows(fam, link, eta, y, wt, w, score)
    usq = 0.0
    for i in range(q):
        usq += u[i] * u[i]
    logdet = np.inf
    for it in range(maxit):
        for r in range(n):
            fixed = offset[r]
            if not joint:
                for i in range(p):
                    fixed += x[r, i] * beta[i]
            s[r] = w[r] * (eta[r] - fixed) + score[r]
        logdet, ok = pwls_solve(t, ws, w, s, joint, sol, lxx)
        if not ok:
            return dev, usq, np.inf, it + 1, PIRLS_NOT_PD
        delta = 0.0
        for i in range(q):
            delta = max(delta, abs(sol[i] - u[i]))
        if joint:
            for i in range(p):
                delta = max(delta, abs(sol[q + i] - beta[i]) / (1.0 + abs(beta[i])))
        if delta <= tol:
            return dev, usq, logdet, it + 1, PIRLS_OK
        pdev = dev + usq
        step = 1.0
        accepted = False
        tdev = dev
        tusq = usq
        for _ in range(MAX_HALVINGS):
            tusq = 0.0
            for i in range(q):
                tu[i] = u[i] + step * (sol[i] - u[i])
                tusq += tu[i] * tu[i]
            for i in range(p):
                tb[i] = beta[i] + step * (sol[q + i] - beta[i]) if joint else beta[i]
            linear_predictor(t, ws, tu, tb, offset, teta)
            tdev = family_rows(fam, link, teta, y, wt, tw, tscore)
            if tdev + tusq <= pdev + 1e-13 * (1.0 + abs(pdev)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            # no decrease along the Newton direction: a numerical stall at the mode
            return dev, usq, logdet, it + 1, PIRLS_OK if delta < 1e-6 else PIRLS_STALLED
        u[:] = tu
        beta[:] = tb
        eta, teta = teta, eta
        w, tw = tw, w
        score, tscore = tscore, score
        dev, usq = tdev, tusq
    return dev, usq, logdet, maxit, PIRLS_MAXIT


@jit
def laplace(theta, beta0, u0, ws, y, wt, offset, fam, link, sat, joint, maxit, tol, u, beta,
            lxx):
    """Laplace -2 log-likelihood at ``theta`` (and ``beta0`` unless ``joint``).

    Returns ``(m2ll, dev, status)``: lme4's ``-2 logLik`` (``aic + ||u||^2 +
    log|L|^2``; +inf unless PIRLS converged) and the sum of deviance
    residuals at the mode (lme4's ``deviance()``).  ``sat`` is
    :func:`saturated_constant` of the response.  Modes go to ``u``, ``beta``.
    """
    dev, usq, logdet, _, status = pirls(theta, beta0, u0, ws, y, wt, offset, fam, link, joint,
                                        maxit, tol, u, beta, lxx)
    if status != PIRLS_OK or not math.isfinite(dev + logdet):
        return np.inf, dev, status
    return dev + sat + usq + logdet, dev, status


@jit
def fixed_effects_factor(theta, beta, u, ws, y, wt, offset, fam, link, lxx):
    """Lower Cholesky factor (into ``lxx``) of beta's block of the joint penalised
    system at ``(theta, beta, u)``: ``(L L')^{-1}`` approximates Cov(beta-hat).
    Returns False if the system is not positive definite."""
    dims, k, toff = ws[0], ws[1], ws[3]
    n, p = dims[0], dims[1]
    t = theta_to_factors(theta, k, toff, dims[3])
    eta = np.empty(n)
    w = np.empty(n)
    score = np.empty(n)
    linear_predictor(t, ws, u, beta, offset, eta)
    family_rows(fam, link, eta, y, wt, w, score)
    s = np.empty(n)
    for r in range(n):
        s[r] = w[r] * (eta[r] - offset[r]) + score[r]
    sol = np.empty(u.size + p)
    joint = p >= 0  # a run-time True: a literal would compile another specialisation
    _, ok = pwls_solve(t, ws, w, s, joint, sol, lxx)
    return ok
