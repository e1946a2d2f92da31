"""Generalised linear models (binomial, Poisson) by IRLS, in Numba.

:func:`glm_refit` fits the model without random effects -- the null model of
a likelihood-ratio test of every variance component of a GLMM -- and returns
R's ``-2 * logLik``.  Families, links and the deviance are those of
:mod:`vctest.kernels.glmm`; IRLS (Fisher scoring) halves its step while the
deviance rises.  BLAS-free, so it can run inside ``prange``.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.glmm import (
    CLOGLOG,
    MAX_HALVINGS,
    PIRLS_MAXIT,
    PIRLS_NOT_PD,
    PIRLS_OK,
    PIRLS_STALLED,
    POISSON,
    PROBIT,
    family_rows,
    saturated_constant,
)
from vctest.kernels.linalg import cholesky_lower_inplace

#: Status of an IRLS run whose deviance converged while a coefficient kept moving:
#: (quasi-)complete separation, the MLE is at infinity but the likelihood is at its
#: supremum (R's glm reports convergence with "fitted probabilities 0 or 1").
GLM_SEPARATED = 4


@jit
def _glm_start_eta(fam, link, y, wt, eta):
    """R's ``mustart`` mapped through the link (probit started from logit / 1.6)."""
    for r in range(y.size):
        if fam == POISSON:
            eta[r] = math.log(y[r] + 0.1)
        else:
            m = (wt[r] * y[r] + 0.5) / (wt[r] + 1.0)
            if link == CLOGLOG:
                eta[r] = math.log(-math.log(1.0 - m))
            else:
                eta[r] = math.log(m / (1.0 - m)) / (1.6 if link == PROBIT else 1.0)


@jit
def glm_irls(y, wt, offset, x, fam, link, beta0, use_start, maxit, tol, beta, lxx):
    """A GLM by IRLS with step halving; returns ``(dev, iters, status)``.

    Starts from ``beta0`` when ``use_start`` else from R's ``mustart``.
    ``beta`` receives the estimate, ``lxx`` the lower Cholesky factor of
    X'WX at it.  Converged when the next full step changes no coefficient by
    more than ``tol * (1 + |beta|)``.  If that never happens within ``maxit``
    iterations but the last step changed the deviance by less than
    ``1e-10 (|dev| + 0.1)`` (R's criterion, tightened), the status is
    :data:`GLM_SEPARATED`: a coefficient diverges, the deviance does not.
    """
    n, p = x.shape
    eta = np.empty(n)
    w = np.empty(n)
    score = np.empty(n)
    teta = np.empty(n)
    tw = np.empty(n)
    tscore = np.empty(n)
    sol = np.empty(p)
    tb = np.empty(p)
    beta[:] = beta0
    if use_start:
        for r in range(n):
            e = offset[r]
            for i in range(p):
                e += x[r, i] * beta[i]
            eta[r] = e
    else:
        _glm_start_eta(fam, link, y, wt, eta)
    dev = family_rows(fam, link, eta, y, wt, w, score)
    first = not use_start
    change = math.inf
    for it in range(maxit):
        for i in range(p):
            acc = 0.0
            for r in range(n):
                acc += x[r, i] * (w[r] * (eta[r] - offset[r]) + score[r])
            sol[i] = acc
            for j in range(i + 1):
                acc = 0.0
                for r in range(n):
                    acc += x[r, i] * w[r] * x[r, j]
                lxx[i, j] = acc
        if not cholesky_lower_inplace(lxx, p):
            return dev, it + 1, PIRLS_NOT_PD
        for i in range(p):
            acc = sol[i]
            for j in range(i):
                acc -= lxx[i, j] * sol[j]
            sol[i] = acc / lxx[i, i]
        for i in range(p - 1, -1, -1):
            acc = sol[i]
            for j in range(i + 1, p):
                acc -= lxx[j, i] * sol[j]
            sol[i] = acc / lxx[i, i]
        delta = 0.0
        for i in range(p):
            delta = max(delta, abs(sol[i] - beta[i]) / (1.0 + abs(beta[i])))
        if delta <= tol and not first:
            return dev, it + 1, PIRLS_OK
        step = 1.0
        accepted = False
        tdev = dev
        for _ in range(MAX_HALVINGS):
            for i in range(p):
                tb[i] = sol[i] if first else beta[i] + step * (sol[i] - beta[i])
            for r in range(n):
                e = offset[r]
                for i in range(p):
                    e += x[r, i] * tb[i]
                teta[r] = e
            tdev = family_rows(fam, link, teta, y, wt, tw, tscore)
            if first or tdev <= dev + 1e-13 * (1.0 + abs(dev)):
                accepted = math.isfinite(tdev)
                break
            step *= 0.5
        if not accepted:
            return dev, it + 1, PIRLS_OK if delta < 1e-6 else PIRLS_STALLED
        first = False
        change = abs(dev - tdev)
        beta[:] = tb
        eta, teta = teta, eta
        w, tw = tw, w
        score, tscore = tscore, score
        dev = tdev
    if change <= 1e-10 * (abs(dev) + 0.1):
        return dev, maxit, 4  # GLM_SEPARATED
    return dev, maxit, PIRLS_MAXIT


@jit
def glm_refit(y, wt, offset, x, fam, link, beta0, maxit, tol):
    """A GLM by IRLS: ``(beta, m2ll, n_iter, status)``.

    ``beta0`` is a warm start when all its entries are finite, otherwise IRLS
    starts from R's ``mustart``.  ``m2ll`` is -2 log-likelihood (R's
    ``-2 * logLik``); status 0 means converged (codes of
    :data:`vctest.kernels.glmm.PIRLS_OK` and friends).

    Examples
    --------
    >>> import numpy as np
    >>> from vctest import datasets
    >>> from vctest.formula import build_design
    >>> d = build_design("cbind(incidence, size - incidence) ~ period", datasets.load("cbpp"))
    >>> beta, m2ll, n_iter, status = glm_refit(d.y, d.weights, np.zeros(d.n), d.X, 0, 0,
    ...                                        np.full(4, np.nan), 100, 1e-12)
    >>> round(float(m2ll), 4), status
    (198.0584, 0)
    """
    p = x.shape[1]
    beta = np.empty(p)
    lxx = np.zeros((p, p))
    use_start = bool(np.all(np.isfinite(beta0)))
    start = beta0.copy() if use_start else np.zeros(p)
    dev, iters, status = glm_irls(y, wt, offset, x, fam, link, start, use_start, maxit, tol,
                                  beta, lxx)
    return beta, dev + saturated_constant(fam, y, wt), iters, status
