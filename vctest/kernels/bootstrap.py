"""Parametric bootstrap of two nested models of any family, in parallel over replicates.

One replicate: seed a xoshiro256** stream from the replicate's own 64-bit seed,
simulate a response from the fitted null model (:func:`simulate`: spherical
random effects ``u ~ N(0, I)`` term by term and level by level, then Gaussian
residuals in row order (sd sigma / sqrt(prior weight)) or the binomial / Poisson
response given the mean),
and refit both models from warm starts with the one engine
(:func:`vctest.kernels.engine.fit_model`, called through its address in
``ctl.calls``, :mod:`vctest.kernels.calls`, so that the ``prange`` loop's
layers do not compile the engine again).  A full fit that ends worse than
the null fit is restarted from the null estimate embedded in the full space.
Every replicate writes only its own output rows, so the numbers do not
depend on the number of threads or on how the replicates are split into
batches.

A simulated Gaussian response is in the generating model's units; it enters
model m as ``data_m.resp_scale * y + data_m.resp_shift`` (each model works
on its own centred and scaled response, :mod:`vctest.model.structure`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from vctest.kernels._jit import interpreted, jit, prange
from vctest.kernels.calls import address_of, call_at
from vctest.kernels.engine import DRIVER_TIER, PYTHON_TWINS, fit_model, with_calls
from vctest.kernels.families import family_row
from vctest.kernels.pwls import linear_predictor, theta_to_factors
from vctest.kernels.random import binomial, poisson, seed_state, standard_normal
from vctest.kernels.tiers import Tier, run_rows
from vctest.kernels.types import BINOMIAL, CALL_FIT, CALL_REPLICATE, GAUSSIAN, Data, Start


@jit(internal=True)
def simulate(state, st, sim, out):
    """Draw one response of the model ``(st, sim)`` into ``out`` (see ``Sim``)."""
    n = st.n
    q = st.nlev[0] * st.k[0] + st.m_re
    gaussian = sim.fam == GAUSSIAN
    u = np.empty(q)
    for i in range(q):
        u[i] = standard_normal(state) * (sim.sigma if gaussian else 1.0)
    eta = np.empty(n)
    linear_predictor(theta_to_factors(sim.theta, st), st, u, np.zeros(st.p), sim.eta0, eta)
    for r in range(n):
        if gaussian:
            out[r] = eta[r] + sim.sigma * standard_normal(state) / math.sqrt(sim.weights[r])
            continue
        mu = family_row(sim.fam, sim.link, eta[r], 0.0, 0.0)[0]
        if sim.fam == BINOMIAL:
            m = int(sim.weights[r] + 0.5)  # trials are whole numbers >= 0
            out[r] = binomial(state, m, mu) / m if m > 0 else 0.0
        else:
            out[r] = float(poisson(state, mu))


@jit(inline=True)
def _refit(y, st, data, ctl, start):
    """Refit one model to the simulated ``y``: ``(theta, beta, f, n_evals, status)``."""
    ym = np.empty(y.size)
    for r in range(y.size):
        ym[r] = data.resp_scale * y[r] + data.resp_shift[r] if data.fam == GAUSSIAN else y[r]
    new = Data(ym, data.wt, data.offset, data.fam, data.link, data.reml, data.resp_scale,
               data.resp_shift)
    theta, beta, _, _, f, _, nev, status = call_at(fit_model, ctl.calls, CALL_FIT,
                                                   (st, new, ctl, start))
    return theta, beta, f, nev, status


@jit(internal=True)
def replicate(b, seeds, sim_st, sim, st0, data0, start0, st1, data1, start1, embed, ctl,
              simulate_only, y_out, obj_out, est0_out, est1_out, nev_out, status_out):
    """Replicate ``b`` of :func:`bootstrap`: simulate, refit both models, write row ``b``."""
    d0, d1 = start0.theta.size, start1.theta.size
    state = np.empty(4, dtype=np.uint64)
    seed_state(seeds[b], state)
    y = np.empty(sim_st.n)
    simulate(state, sim_st, sim, y)
    if simulate_only:
        for r in range(y.size):
            y_out[b, r] = y[r]
        return
    th0, b0, f0, nev0, s0 = _refit(y, st0, data0, ctl, start0)
    th1, b1, f1, nev1, s1 = _refit(y, st1, data1, ctl, start1)
    # the full model contains the null: a worse full fit is an optimiser
    # failure -- restart it from the null estimate embedded in the full space
    if f1 > f0 + 1e-9 * (1.0 + abs(f0)) and embed[0] != -1 and np.isfinite(f0):
        theta = np.zeros(d1)
        if embed[0] >= 0:
            for i in range(embed.size):
                theta[embed[i]] = th0[i]
        beta = b0.copy() if b0.size == b1.size else start1.beta.copy()
        restart = Start(theta, beta, start1.tscale, start1.bscale, start1.is_diag,
                        start1.below)
        th2, b2, f2, nev2, s2 = _refit(y, st1, data1, ctl, restart)
        nev1 += nev2
        if f2 < f1:
            th1, b1, f1, s1 = th2, b2, f2, s2
    obj_out[b, 0] = f0
    obj_out[b, 1] = f1
    for i in range(d0):
        est0_out[b, i] = th0[i]
    for i in range(b0.size):
        est0_out[b, d0 + i] = b0[i]
    for i in range(d1):
        est1_out[b, i] = th1[i]
    for i in range(b1.size):
        est1_out[b, d1 + i] = b1[i]
    nev_out[b, 0] = nev0
    nev_out[b, 1] = nev1
    status_out[b, 0] = s0
    status_out[b, 1] = s1


@jit(parallel=True)
def bootstrap(seeds, sim_st, sim, st0, data0, start0, st1, data1, start1, embed, ctl,
              simulate_only, y_out, obj_out, est0_out, est1_out, nev_out, status_out):
    """Simulate from the null and refit both models for every seed.

    Parameters
    ----------
    seeds : uint64[B]
        One seed per replicate.
    sim_st, sim : Structure, Sim
        The generating (null) model.
    st0, data0, start0 : Structure, Data, Start
        The null model, its data (the response is replaced) and warm start.
    st1, data1, start1 : the same for the full model.
    embed : int64[d0]
        Position of each null theta in the full theta; ``[-2]`` when the null
        has no random effects (it embeds at theta = 0); ``[-1]`` if the null
        does not embed simply.
    ctl : Settings
        With the addresses of :func:`~vctest.kernels.engine.with_calls` (``fit=True``)
        and of :func:`replicate` (slot :data:`~vctest.kernels.types.CALL_REPLICATE`).
    simulate_only : bool
        Only write the simulated responses to ``y_out`` (B x n); no refits.
    y_out, obj_out (B, 2), est0_out (B, d0 + p0), est1_out (B, d1 + p1),
    nev_out (B, 2), status_out (B, 2)
        Outputs (null, full); estimates are theta then beta.

    The ``prange`` body is one call of :func:`replicate` through its address:
    Numba builds four modules for a ``prange`` loop, and each would otherwise
    compile the replicate's code again.
    """
    for b in prange(seeds.size):
        # the index's type is Numba's choice: int64 as replicate's address expects
        call_at(replicate, ctl.calls, CALL_REPLICATE,
                (np.int64(b), seeds, sim_st, sim, st0, data0, start0, st1, data1, start1,
                 embed, ctl, simulate_only, y_out, obj_out, est0_out, est1_out, nev_out,
                 status_out))


BOOTSTRAP_TIER = Tier("parametric bootstrap", 30.0,
                      (bootstrap, replicate, *DRIVER_TIER.kernels))
"""The bootstrap's own kernels (about 30 CPU s to compile); :mod:`vctest.kernels.tiers`."""

_REPLICATE_PY = interpreted(replicate, compiled=(), python=PYTHON_TWINS)


def run_bootstrap_kernel(seeds, sim_st, sim, st0, data0, start0, st1, data1, start1, embed,
                         ctl, simulate_only, y_out, obj_out, est0_out, est1_out, nev_out,
                         status_out):
    """:func:`bootstrap` called from Python: the same arguments and numbers.

    ``ctl.calls`` may be empty (zeros).  Replicate ``b`` depends on
    ``seeds[b]`` only, so the replicates are done in chunks: as Python (the
    replicate's source, whose fits call the engine's kernels compiled or not
    as their tiers decide) while :data:`BOOTSTRAP_TIER` says compiling does not
    pay yet, then compiled (:func:`vctest.kernels.tiers.run_rows`), with the
    addresses of the engine's kernels (:func:`~vctest.kernels.engine.with_calls`)
    and of :func:`replicate` put in a copy of the table.
    """
    models = (sim_st, sim, st0, data0, start0, st1, data1, start1, embed)
    outs = (y_out, obj_out, est0_out, est1_out, nev_out, status_out)

    def compiled(lo, hi):
        c = with_calls(st1, data1, ctl, start1, fit=True)
        c = c._replace(calls=c.calls.copy())  # the shared table is not written into
        args = (seeds[lo:hi], *models, c, simulate_only, *(o[lo:hi] for o in outs))
        c.calls[CALL_REPLICATE] = address_of(replicate, numba.types.int64, *args)
        bootstrap(*args)

    def interpreted_rows(lo, hi):
        for b in range(lo, hi):
            _REPLICATE_PY(np.int64(b), seeds, *models, ctl, simulate_only, *outs)

    with np.errstate(over="ignore"):  # uint64 wrap-around, by design, when run as Python
        run_rows(BOOTSTRAP_TIER, seeds.size, compiled, interpreted_rows, first=2)
