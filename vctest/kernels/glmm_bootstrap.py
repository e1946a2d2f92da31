"""Parametric bootstrap of two nested GLMMs (binomial, Poisson), in parallel over replicates.

One replicate: seed a xoshiro256** stream from the replicate's own 64-bit seed,
draw spherical random effects ``u ~ N(0, I)`` for the fitted null model, form

    eta* = eta0 + Z Lambda(theta0) u,   eta0 = offset + X beta0,

and draw the response given ``mu = g^{-1}(eta*)``: binomial successes out of
each row's trials (stored as proportions, as the models expect) or Poisson
counts.  Both models are then refitted with the Laplace kernels
(:func:`vctest.kernels.glmm_optimize.glmm_refit`, or
:func:`vctest.kernels.glm.glm_refit` when the null has no random effects),
warm-started at their estimates.  Every replicate writes only its own output
rows, so the numbers do not depend on the number of threads or on how the
replicates are split into batches.

Packed arguments
----------------
``sim = (eta0, theta, trials, fam, link, draw)`` with ``sim_ws``
    ``sim_ws`` the structure tuple (:mod:`vctest.kernels.glmm`) whose random
    effects are drawn, ``theta`` their parameters, ``draw`` 0 for a null
    with no random effects (then only the response is drawn).
``null = (x, theta, beta, is_glm)`` with ``null_ws``; ``full = (theta, beta)`` with ``full_ws``
    Warm starts and workspaces (``x`` the null's fixed-effect matrix, used
    when ``is_glm`` is 1; ``null_ws`` is then any valid structure, ignored).
``data = (wt, offset, fam, link)``
    Prior weights (binomial trials), offset and family codes.

The structure tuples travel as separate arguments: a ``prange`` loop cannot
take a tuple nested in a tuple.
"""

from __future__ import annotations

import numpy as np

from vctest.kernels._jit import jit, prange
from vctest.kernels.glm import glm_refit
from vctest.kernels.glmm import BINOMIAL, inverse_link, linear_predictor
from vctest.kernels.glmm_optimize import glmm_refit
from vctest.kernels.lmm import theta_to_factors
from vctest.kernels.random import binomial, poisson, seed_state, standard_normal


@jit
def simulate_glmm_response(state, sim, ws, out):
    """Draw one response of the null model into ``out`` (see the module docstring)."""
    eta0, theta, trials, fam, link, draw = sim
    k, nlev, toff = ws[1], ws[2], ws[3]
    n = eta0.size
    q = 0
    for j in range(k.size):
        q += k[j] * nlev[j]
    u = np.zeros(q)
    eta = np.empty(n)
    if draw:
        for i in range(q):
            u[i] = standard_normal(state)
        kmax = 1
        for j in range(k.size):
            kmax = max(kmax, k[j])
        t = theta_to_factors(theta, k, toff, kmax)
        linear_predictor(t, ws, u, np.zeros(ws[11].shape[1]), eta0, eta)
    else:
        for r in range(n):
            eta[r] = eta0[r]
    mu = np.empty(n)
    inverse_link(fam, link, eta, mu)
    for r in range(n):
        if fam == BINOMIAL:
            m = int(trials[r] + 0.5)  # trials are whole numbers >= 0
            out[r] = binomial(state, m, mu[r]) / m if m > 0 else 0.0
        else:
            out[r] = float(poisson(state, mu[r]))


@jit
def _refit_null(y, data, null, ws, ctrl):
    wt, offset, fam, link = data
    x, theta, beta, is_glm = null
    if is_glm:
        b, f, nit, st = glm_refit(y, wt, offset, x, fam, link, beta, int(ctrl[5]), ctrl[6])
        # glm_refit: 0 converged, 4 deviance converged under separation (the
        # log-likelihood is at its supremum, which is all the statistic needs);
        # anything else is a failed refit (optimiser code 5)
        return theta.copy(), b, f, nit, 0 if st == 0 or st == 4 else 5
    th, b, f, nev, st = glmm_refit(y, wt, offset, ws, fam, link, theta, beta, ctrl)
    return th, b, f, nev, st


@jit
def glmm_replicate(seed, sim, sim_ws, data, null, null_ws, full, ws1, embed, ctrl, est0_row,
                   est1_row):
    """One replicate: ``(f0, f1, n_evals0, n_evals1, status0, status1)``.

    The estimates go into ``est0_row`` and ``est1_row``: theta, then beta.
    """
    wt, offset, fam, link = data
    theta1, beta1 = full
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed, state)
    y = np.empty(offset.size)
    simulate_glmm_response(state, sim, sim_ws, y)
    th0, b0, f0, nev0, st0 = _refit_null(y, data, null, null_ws, ctrl)
    th1, b1, f1, nev1, st1 = glmm_refit(y, wt, offset, ws1, fam, link, theta1, beta1, ctrl)
    # the full model contains the null: a worse full fit is an optimiser failure --
    # restart it from the null estimate embedded in the full space
    if f1 > f0 + 1e-9 * (1.0 + abs(f0)) and embed[0] != -1 and np.isfinite(f0):
        start = np.zeros(theta1.size)
        if embed[0] >= 0:
            for i in range(embed.size):
                start[embed[i]] = th0[i]
        th2, b2, f2, nev2, st2 = glmm_refit(y, wt, offset, ws1, fam, link, start, b0.copy(),
                                            ctrl)
        nev1 += nev2
        if f2 < f1:
            th1, b1, f1, st1 = th2, b2, f2, st2
    for i in range(th0.size):
        est0_row[i] = th0[i]
    for i in range(b0.size):
        est0_row[th0.size + i] = b0[i]
    for i in range(th1.size):
        est1_row[i] = th1[i]
    for i in range(b1.size):
        est1_row[th1.size + i] = b1[i]
    return f0, f1, nev0, nev1, st0, st1


@jit(parallel=True)
def glmm_bootstrap(seeds, sim, sim_ws, data, null, null_ws, full, full_ws, embed, ctrl,
                   obj_out, est0_out, est1_out, nev_out, status_out):
    """Simulate from the null and refit both models for every seed.

    Parameters
    ----------
    seeds : uint64[B]
        One seed per replicate.
    sim, sim_ws, data, null, null_ws, full, full_ws : tuple
        See the module docstring.
    embed : int64[d0]
        Position of each null theta in the full theta; ``[-2]`` when the null
        is a GLM (it embeds at theta = 0); ``[-1]`` if the null does not embed
        simply.  A full fit that ends worse than the null fit is restarted
        from the null estimate embedded in the full space.
    ctrl : float64[8]
        :meth:`vctest.model.glmm.GlmmSettings.as_array`.
    obj_out : float64[B, 2]; est0_out : float64[B, d0 + p0]; est1_out :
    float64[B, d1 + p1]; nev_out, status_out : int64[B, 2]
        Outputs (null, full): -2 log-likelihoods, estimates (theta, then
        beta), Laplace evaluations and status codes
        (:data:`vctest.kernels.glmm_optimize.STATUS_TEXT`).
    """
    for b in prange(seeds.size):
        f0, f1, nev0, nev1, st0, st1 = glmm_replicate(
            seeds[b], sim, sim_ws, data, null, null_ws, full, full_ws, embed, ctrl,
            est0_out[b], est1_out[b])
        obj_out[b, 0] = f0
        obj_out[b, 1] = f1
        nev_out[b, 0] = nev0
        nev_out[b, 1] = nev1
        status_out[b, 0] = st0
        status_out[b, 1] = st1


@jit
def simulate_glmm_one(seed, sim, sim_ws):
    """The response of the replicate with 64-bit ``seed`` (as :func:`glmm_bootstrap` draws it)."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(seed, state)
    y = np.empty(sim[0].size)
    simulate_glmm_response(state, sim, sim_ws, y)
    return y
