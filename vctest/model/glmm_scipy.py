"""SciPy's bounded methods as second opinions on a GLMM fit (:func:`scipy_fit`).

Both of lme4's stages (see :mod:`vctest.model.glmm`) run with
``scipy.optimize.minimize(method=...)`` on the Laplace objective of the
kernels, searching the same scaled coordinates as the Numba optimiser, then the
same edge restarts and boundary snapping as :mod:`vctest.model.fit` applies to
LMMs.  Slower (a Python call per evaluation), but independent of the Numba
optimiser, which is what ``vctest.check``-style comparisons need.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["scipy_fit"]


def scipy_fit(model: Any, theta0: np.ndarray, beta0: np.ndarray, method: str,
              settings: Any) -> tuple:
    """Both stages with ``scipy.optimize.minimize(method=method)``.

    Returns ``(theta, beta, u, m2ll, deviance, n_evals, ok, message)`` as
    :func:`vctest.model.glmm.fit_glmm` needs them.
    """
    from scipy.optimize import minimize

    lay, ts, bs = model.layout, model.theta_scale, model.beta_scale
    d = lay.size
    state = {"u": np.zeros(model.q), "b": beta0.copy(), "n": 0}

    def stage(x: np.ndarray, joint: bool) -> float:
        state["n"] += 1
        beta = state["b"] if joint else x[d:] / bs
        r = model.laplace(np.maximum(x[:d] / ts, lay.lower), beta, u0=state["u"], joint=joint)
        if math.isfinite(r.m2ll):
            state["u"] = r.u
            if joint:
                state["b"] = r.beta
        return r.m2ll if math.isfinite(r.m2ll) else 1e300

    opts = {"L-BFGS-B": {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000},
            "Nelder-Mead": {"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20_000},
            "Powell": {"xtol": 1e-10, "ftol": 1e-13, "maxfev": 40_000}}[method]
    bounds1 = [(0.0, None) if diag else (None, None) for diag in lay.is_diagonal]
    x1 = theta0 * ts
    if settings.two_stage:
        x1 = minimize(stage, x1, args=(True,), method=method, bounds=bounds1, options=opts).x
    stage(x1, True)
    bounds = bounds1 + [(None, None)] * model.p
    x = np.concatenate([x1, state["b"] * bs])
    res = minimize(stage, x, args=(False,), method=method, bounds=bounds, options=opts)
    x, f = res.x, float(res.fun)
    below = np.zeros(d, dtype=int)  # off-diagonal entries under each diagonal of T
    for j, kj in enumerate(lay.k):
        pos = int(lay.offsets[j])
        for c in range(kj):
            below[pos] = kj - 1 - c
            pos += kj - c
    for _ in range(settings.restarts):  # lme4's restart_edge, as model/fit.py
        restart, moved, best = x.copy(), False, f
        for i in range(d):
            if not lay.is_diagonal[i] or x[i] > 1e-4:
                continue
            col = slice(i + 1, i + 1 + below[i])  # their sign is free while T[i, i] = 0
            for sign in (1.0, -1.0) if below[i] else (1.0,):
                probe = x.copy()
                probe[col] *= sign
                probe[i] += 1e-4
                if not stage(probe, False) < f:
                    continue
                for value in (1e-2, 1e-1, 1.0):
                    probe[i] = value
                    fv = stage(probe, False)
                    if fv < best:
                        best, moved = fv, True
                        restart[i:col.stop] = probe[i:col.stop]
        if not moved:
            break
        res2 = minimize(stage, restart, args=(False,), method=method, bounds=bounds,
                        options=opts)
        if not res2.fun <= f:
            break
        res, x, f = res2, res2.x, float(res2.fun)
    for i in range(d):  # onto the bound when that does not raise the objective
        if lay.is_diagonal[i] and 0.0 < x[i] < 1e-5:
            trial = x.copy()
            trial[i] = 0.0
            if stage(trial, False) <= f:
                x, f = trial, stage(trial, False)
    theta, beta = np.maximum(x[:d] / ts, lay.lower), x[d:] / bs
    r = model.laplace(theta, beta, u0=state["u"])
    return theta, beta, r.u, r.m2ll, r.deviance, state["n"], bool(res.success), str(res.message)
