"""Parametric bootstrap of two nested linear mixed models, in parallel over replicates.

One replicate: seed a xoshiro256** stream from the replicate's own 64-bit seed,
simulate a response from the fitted null model

    y* = X beta0 + sum_j Z_j (I (x) sigma0 T_j) u_j + sigma0 e,   u, e ~ N(0, I)

(random effects term by term and level by level, then the residuals in row
order), replace the y parts of each model's cross-products, and refit both
models with the bounded quasi-Newton kernel (warm starts).  Every replicate
writes only its own output rows, so the numbers do not depend on the number
of threads or on how the replicates are split into batches.

A model is passed as two tuples: its kernel workspace ``ws`` (see
:mod:`vctest.kernels.lmm`) and ``resp = (codes, zcols, zoff, x, lower,
is_diag, fixed)``, the arrays needed to rebuild the y parts and to optimise
(``fixed`` = 1 evaluates the objective at the start without optimising: a
linear model is represented as a mixed model whose only term has theta fixed
at 0).
"""

from __future__ import annotations

import numpy as np

from vctest.kernels._jit import jit, prange
from vctest.kernels.lmm import objective, theta_to_factors, update_response
from vctest.kernels.optimize import minimize_with_edge_restarts
from vctest.kernels.random import seed_state, standard_normal


@jit
def simulate_response(state, mu, codes, zcols, zoff, k, nlev, theta, toff, kmax, sigma,
                      out):
    """Draw one response from the null model into ``out``."""
    n = mu.size
    t = theta_to_factors(theta, k, toff, kmax)
    for r in range(n):
        out[r] = mu[r]
    u = np.empty(kmax)
    for j in range(k.size):
        kj = k[j]
        b = np.empty((nlev[j], kj))
        for g in range(nlev[j]):
            for c in range(kj):
                u[c] = standard_normal(state)
            for a in range(kj):
                s = 0.0
                for c in range(a + 1):
                    s += t[j, a, c] * u[c]
                b[g, a] = sigma * s
        for r in range(n):
            g = codes[j, r]
            s = 0.0
            for a in range(kj):
                s += zcols[r, zoff[j] + a] * b[g, a]
            out[r] += s
    for r in range(n):
        out[r] += sigma * standard_normal(state)


@jit
def refit(y, ws, resp, start, maxiter, gtol, ftol, xtol, restarts):
    """Refit one model to response ``y``: ``(theta, objective, n_evals, status)``."""
    codes, zcols, zoff, x, lower, is_diag, fixed, scale = resp
    dims, k = ws[0], ws[1]
    bval = ws[10].copy()
    c = ws[11].copy()
    w = np.ones(y.size)
    update_response(codes, zcols, zoff, k, ws[4], x, y, w, ws[8], dims, bval, c)
    wsb = (ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7], ws[8], ws[9], bval, c)
    if fixed:
        f = objective(start, wsb)
        return start.copy(), f, 1, 0 if np.isfinite(f) else 4
    th, f, nev, _, status = minimize_with_edge_restarts(
        start, lower, is_diag, wsb, maxiter, gtol, ftol, xtol, restarts, scale
    )
    return th, f, nev, status


@jit(parallel=True)
def lmm_bootstrap(seeds, sim, ws0, resp0, start0, ws1, resp1, start1, embed, settings,
                  obj_out, theta0_out, theta1_out, nev_out, status_out):
    """Simulate from the null and refit both models for every seed.

    Parameters
    ----------
    seeds : uint64[B]
        One seed per replicate.
    sim : tuple
        ``(mu, codes, zcols, zoff, k, nlev, theta, toff, kmax, sigma)`` of the
        null model (``k.size == 0`` for a linear model).
    ws0, resp0, start0 : null model workspace, response tuple, start theta.
    ws1, resp1, start1 : the same for the full model.
    embed : int64[d0]
        Position of each null theta in the full theta; ``[-2]`` when the null
        is a linear model (it embeds at theta = 0); ``[-1]`` if the null does
        not embed simply.  Used to restart a full fit that ended worse than
        the null fit.
    settings : float64[5]
        ``maxiter, gtol, ftol, xtol, restarts``.
    obj_out : float64[B, 2]; theta0_out : float64[B, d0]; theta1_out :
    float64[B, d1]; nev_out, status_out : int64[B, 2]
        Outputs (null, full).
    """
    nrep = seeds.size
    mu, codes, zcols, zoff, k, nlev, theta, toff, kmax, sigma = sim
    maxiter = int(settings[0])
    gtol, ftol, xtol = settings[1], settings[2], settings[3]
    restarts = int(settings[4])
    for b in prange(nrep):
        state = np.empty(4, dtype=np.uint64)
        seed_state(seeds[b], state)
        y = np.empty(mu.size)
        simulate_response(state, mu, codes, zcols, zoff, k, nlev, theta, toff, kmax, sigma, y)
        th0, f0, nev0, st0 = refit(y, ws0, resp0, start0, maxiter, gtol, ftol, xtol, restarts)
        th1, f1, nev1, st1 = refit(y, ws1, resp1, start1, maxiter, gtol, ftol, xtol, restarts)
        # the full model contains the null: a worse full fit is an optimiser
        # failure -- restart it from the null estimate embedded in the full space
        if f1 > f0 + 1e-9 * (1.0 + abs(f0)) and embed[0] != -1:
            start = np.zeros(start1.size)
            if embed[0] >= 0:
                for i in range(embed.size):
                    start[embed[i]] = th0[i]
            th2, f2, nev2, st2 = refit(y, ws1, resp1, start, maxiter, gtol, ftol, xtol,
                                       restarts)
            nev1 += nev2
            if f2 < f1:
                th1, f1, st1 = th2, f2, st2
        obj_out[b, 0] = f0
        obj_out[b, 1] = f1
        for i in range(th0.size):
            theta0_out[b, i] = th0[i]
        for i in range(th1.size):
            theta1_out[b, i] = th1[i]
        nev_out[b, 0] = nev0
        nev_out[b, 1] = nev1
        status_out[b, 0] = st0
        status_out[b, 1] = st1


@jit
def simulate_one(seed, sim):
    """The response of the replicate with 64-bit ``seed`` (as :func:`lmm_bootstrap` draws it)."""
    mu, codes, zcols, zoff, k, nlev, theta, toff, kmax, sigma = sim
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed, state)
    y = np.empty(mu.size)
    simulate_response(state, mu, codes, zcols, zoff, k, nlev, theta, toff, kmax, sigma, y)
    return y
