"""Laplace approximation for GLMMs by penalised iteratively reweighted least squares.

For a GLMM with linear predictor eta = offset + X beta + Z Lambda(theta) u,
u ~ N(0, I), the Laplace approximation to -2 log-likelihood at (theta, beta)
is (Bates et al. 2015; the lme4 GLMM vignette)

    -2 l(theta, beta) ~= sum_i -2 log p(y_i | mu_i(u*)) + ||u*||^2 + log|L|^2,
    L L' = Lambda'Z' W Z Lambda + I,

with u* the conditional mode (found here by PIRLS with step halving) and W
the GLM working weights at u*.  ``joint=True`` runs PIRLS over (u, beta)
together (lme4's nAGQ = 0 stage).  Families: 0 = binomial (logit), 1 =
Poisson (log).  Binomial responses are proportions with the trials as prior
weights.  Kernels are pure functions on arrays; ``A = Z Lambda`` is formed
densely (fine for the small and medium designs GLMM tests use).
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.lmm import theta_to_factors

BINOMIAL, POISSON = 0, 1


@jit
def _lgamma(x):
    return math.lgamma(x)


@jit
def family_terms(fam, eta, y, wt, mu, mueta, var):
    """mu, dmu/deta and the variance function at eta (outputs filled in place)."""
    for i in range(eta.size):
        if fam == BINOMIAL:
            e = min(max(eta[i], -30.0), 30.0)
            m = 1.0 / (1.0 + math.exp(-e))
            mu[i] = m
            mueta[i] = max(m * (1.0 - m), 1e-300)
            var[i] = max(m * (1.0 - m), 1e-300)
        else:
            e = min(eta[i], 700.0)
            m = math.exp(e)
            mu[i] = m
            mueta[i] = max(m, 1e-300)
            var[i] = max(m, 1e-300)


@jit
def minus2_loglik_terms(fam, y, mu, wt):
    """sum_i -2 log p(y_i | mu_i) with the normalising constants (as R's logLik)."""
    s = 0.0
    for i in range(y.size):
        if fam == BINOMIAL:
            n = wt[i]
            k = y[i] * n
            m = min(max(mu[i], 1e-300), 1.0 - 1e-16)
            lc = _lgamma(n + 1.0) - _lgamma(k + 1.0) - _lgamma(n - k + 1.0)
            ll = lc + (k * math.log(m) if k > 0 else 0.0) + (
                (n - k) * math.log(1.0 - m) if n - k > 0 else 0.0)
            s -= 2.0 * ll
        else:
            m = max(mu[i], 1e-300)
            s -= 2.0 * wt[i] * (y[i] * math.log(m) - m - _lgamma(y[i] + 1.0))
    return s


@jit
def deviance_residuals(fam, y, mu, wt):
    """sum of squared deviance residuals (R's ``family$dev.resids``)."""
    s = 0.0
    for i in range(y.size):
        m = mu[i]
        if fam == BINOMIAL:
            yi = y[i]
            a = yi * math.log(yi / m) if yi > 0 else 0.0
            b = (1.0 - yi) * math.log((1.0 - yi) / (1.0 - m)) if yi < 1 else 0.0
            s += 2.0 * wt[i] * (a + b)
        else:
            a = y[i] * math.log(y[i] / m) if y[i] > 0 else 0.0
            s += 2.0 * wt[i] * (a - (y[i] - m))
    return s


@jit
def zlambda(theta, codes, zcols, zoff, k, coff, q, kmax):
    """Dense A = Z Lambda(theta), shape (n, q)."""
    n = codes.shape[1]
    t = theta_to_factors(theta, k, _offsets(k), kmax)
    a = np.zeros((n, q))
    for j in range(k.size):
        kj = k[j]
        for r in range(n):
            base = coff[j] + codes[j, r] * kj
            for cp in range(kj):  # column c' of level block: sum_c z_rc T[c, c']
                s = 0.0
                for c in range(cp, kj):
                    s += zcols[r, zoff[j] + c] * t[j, c, cp]
                a[r, base + cp] = s
    return a


@jit
def _offsets(k):
    out = np.zeros(k.size, np.int64)
    pos = 0
    for j in range(k.size):
        out[j] = pos
        pos += k[j] * (k[j] + 1) // 2
    return out


@jit
def _chol_solve_logdet(m, rhs):
    """Solve m x = rhs (m SPD) and return (x, log det m, ok)."""
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(rhs))):
        return rhs * np.nan, np.inf, False
    try:
        low = np.linalg.cholesky(m)
    except Exception:
        return rhs * np.nan, np.inf, False
    z = np.linalg.solve(low, rhs)
    x = np.linalg.solve(low.T, z)
    ld = 0.0
    for i in range(low.shape[0]):
        ld += 2.0 * math.log(low[i, i])
    return x, ld, True


@jit
def pirls(fam, y, wt, offset, x, a, beta, u0, joint, maxit, tol):
    """Conditional modes by PIRLS; returns (u, beta, laplace, deviance, ok, iters).

    ``deviance`` is the sum of the conditional deviance residuals at the mode
    (lme4's ``deviance()`` for a GLMM).

    ``joint``: update beta with u (nAGQ = 0 stage); otherwise beta is fixed.
    ``laplace`` is -2 log-likelihood by the Laplace approximation.
    """
    n, q = a.shape
    p = x.shape[1]
    u = u0.copy()
    b = beta.copy()
    mu = np.empty(n)
    mueta = np.empty(n)
    var = np.empty(n)
    eta = offset + x @ b + a @ u
    family_terms(fam, eta, y, wt, mu, mueta, var)
    pdev = deviance_residuals(fam, y, mu, wt) + u @ u
    ok = True
    it = 0
    dim = q + p if joint else q
    for it in range(maxit):  # noqa: B007 - the count is returned
        w = wt * mueta * mueta / var
        zres = (y - mu) / mueta
        if joint:
            g = np.empty((n, dim))
            g[:, :q] = a
            g[:, q:] = x
            cur = np.concatenate((u, b))
        else:
            g = a
            cur = u
        gw = g.T * w
        m = gw @ g
        for i in range(q):
            m[i, i] += 1.0
        target = g @ cur + zres
        rhs = gw @ target
        new, _, ok = _chol_solve_logdet(m, rhs)
        if not ok:
            break
        step = 1.0
        accepted = False
        for _ in range(30):
            trial = cur + step * (new - cur)
            tu = trial[:q]
            tb = trial[q:] if joint else b
            eta = offset + x @ tb + a @ tu
            family_terms(fam, eta, y, wt, mu, mueta, var)
            pnew = deviance_residuals(fam, y, mu, wt) + tu @ tu
            if pnew <= pdev + 1e-10 * (1.0 + abs(pdev)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            # keep the last evaluated state consistent with (u, b)
            eta = offset + x @ b + a @ u
            family_terms(fam, eta, y, wt, mu, mueta, var)
            break
        u = trial[:q].copy()
        if joint:
            b = trial[q:].copy()
        change = pdev - pnew
        pdev = pnew
        if change < tol * (1.0 + abs(pdev)):
            break
    # Laplace approximation at the mode: L L' = A'WA + I (u-block only)
    w = wt * mueta * mueta / var
    m = (a.T * w) @ a
    for i in range(q):
        m[i, i] += 1.0
    _, logdet, ok2 = _chol_solve_logdet(m, np.zeros(q))
    devres = deviance_residuals(fam, y, mu, wt)
    lap = minus2_loglik_terms(fam, y, mu, wt) + u @ u + logdet
    return u, b, lap, devres, ok and ok2, it + 1


@jit
def glm_irls(fam, y, wt, offset, x, beta0, maxit, tol):
    """A GLM fitted by IRLS: (beta, -2 log-likelihood, ok)."""
    n = x.shape[0]
    b = beta0.copy()
    mu = np.empty(n)
    mueta = np.empty(n)
    var = np.empty(n)
    eta = offset + x @ b
    family_terms(fam, eta, y, wt, mu, mueta, var)
    dev = deviance_residuals(fam, y, mu, wt)
    ok = True
    for _ in range(maxit):
        w = wt * mueta * mueta / var
        target = (eta - offset) + (y - mu) / mueta
        xw = x.T * w
        new, _, ok = _chol_solve_logdet(xw @ x, xw @ target)
        if not ok:
            break
        step = 1.0
        for _ in range(30):
            tb = b + step * (new - b)
            eta = offset + x @ tb
            family_terms(fam, eta, y, wt, mu, mueta, var)
            dnew = deviance_residuals(fam, y, mu, wt)
            if dnew <= dev + 1e-10 * (1.0 + abs(dev)):
                break
            step *= 0.5
        b = tb
        change = dev - dnew
        dev = dnew
        if abs(change) < tol * (1.0 + abs(dev)):
            break
    return b, minus2_loglik_terms(fam, y, mu, wt), ok
