"""The one bounded quasi-Newton optimiser of the engine, over any objective code.

Refits in a bootstrap must not leave compiled code (a Python-level
``scipy.optimize`` call per replicate costs milliseconds and cannot run in
``prange``), so this is a small projected BFGS method:

* the objective is chosen by an integer code (:data:`~vctest.kernels.types.PROFILED`,
  :data:`~vctest.kernels.types.LAPLACE_JOINT`, :data:`~vctest.kernels.types.LAPLACE`)
  and evaluated in the optimiser's units: ``asinh(theta * tscale)`` for a
  variance parameter, ``theta * tscale`` for the others, ``beta * bscale``
  (:func:`vctest.kernels.objective.theta_of`), so a covariate's units do not
  change the path and a variance far from its bound is a few steps away;
* the profiled criterion's gradient, and the Laplace objectives' for the
  canonical links (logit, Poisson's log), in closed form
  (:mod:`vctest.kernels.gradient`); other links by finite differences --
  central in the interior, second-order one-sided near a lower bound, so the
  objective is never evaluated outside its domain (the second differences
  that scale the Laplace fits' first inverse Hessian are taken the same way);
* an active set: a parameter at its bound with a positive derivative is held
  there; the inverse-Hessian approximation acts on the free parameters;
* a projected backtracking (Armijo) line search, steps capped at
  ``max(1, |x|)``; BFGS updates only when the curvature condition holds, with
  a restart to steepest descent otherwise;
* the first step, taken before any curvature is known (an identity inverse
  Hessian whose scale means nothing), goes at most half-way to each bound:
  landing on a variance's bound from it cost InstEval 14 evaluations (33 instead
  of 19) and the sleepstudy ``(Days | Subject)`` bootstrap's refits 3.5 per
  replicate (37.6 instead of 34.2, and more refits that did not converge: 4
  against 2 in 3,000) while the fit re-learnt that coordinate's scale;
* after the search, lme4's ``restart_edge`` and a boundary snap
  (:func:`optimize`).

:func:`optimize`, :func:`bfgs` and :func:`derivatives` are kernels of their
own, and call each other, :func:`~vctest.kernels.objective.evaluate` and the
gradient through addresses (:mod:`vctest.kernels.calls`): each is compiled once,
not again inside its callers.

It stops when the projected gradient is below ``gtol * (1 + |f|)``, or (a Laplace
objective) when the quadratic model's decrease along the search direction,
``-g'd``, is below ``ftol * (1 + |f|)`` (status 1: PIRLS's tolerance leaves noise
in f that a line search cannot resolve, so it would only halve its step down to
``xtol``), or when an
iteration changes f by less than ``ftol * (1 + |f|)`` and x by less than
``xtol``, or when the line search has halved its step below ``xtol`` without a
decrease (status 1 too: near the optimum of a criterion summed over millions of
rows the gradient can stay above ``gtol`` while every decrease left is below f's
rounding, and halving on would only spend evaluations).  Status codes:
:data:`vctest.kernels.types.STATUS_TEXT`.  The Laplace objectives start PIRLS
from the modes at the current iterate (``ub``, ``bb``, updated on every accepted
step), so finite differences see a smooth function.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.calls import call_at
from vctest.kernels.gradient import laplace_gradient, profiled_gradient
from vctest.kernels.linalg import assign, identity, max_abs, scaled_at_least
from vctest.kernels.objective import evaluate, theta_of
from vctest.kernels.pwls import theta_to_factors
from vctest.kernels.types import (
    CALL_BFGS,
    CALL_DERIVATIVES,
    CALL_EVALUATE,
    CALL_GRADIENT,
    GLM,
    LAPLACE,
    PROFILED,
)

_H_REL = 1e-6
#: A variance parameter this close to its bound (scaled units) is probed for a restart.
EDGE_PROBE = 1e-4
#: ... and this close is tried on the bound (lme4's boundary.tol).
BOUNDARY_SNAP = 1e-5


@jit(internal=True)
def derivatives(code, x, lower, f0, current, st, data, ctl, tscale, bscale, sat, ub, bb, h_rel,
                ncoord, grad, curv, scr):
    """The gradient of the first ``ncoord`` coordinates into ``grad`` and, when ``curv``
    has entries, second differences into ``curv``.  Returns #evaluations.

    The profiled criterion's gradient is analytic (:mod:`vctest.kernels.gradient`): one
    evaluation at ``x`` for its modes and factor, or none when ``current`` (the last
    evaluation was at ``x``: ``scr`` holds its factor and ``ub``/``bb`` its modes; the
    criterion is a function of ``x`` alone, so evaluating again would give the same
    numbers).  So is the Laplace objectives' with a canonical link when ``current``
    (:func:`~vctest.kernels.gradient.laplace_gradient`, at the modes of that
    evaluation).  The others are finite differences.
    """
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    if code == PROFILED and curv.size == 0:
        gth = np.full(tscale.size, np.nan)
        u, beta, ok = ub, bb, True  # the gradient only reads the modes
        if not current:
            u, beta = uo, bo
            ok = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                         (code, x, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx,
                          scr))[0] < np.inf
        if ok:
            t = theta_to_factors(theta_of(x, lower, tscale), st)
            call_at(profiled_gradient, ctl.calls, CALL_GRADIENT,
                    (t, st, data, ctl.lapack_min, u, beta, scr, gth))
        for i in range(ncoord):  # d theta / d x: cosh(x) / tscale for a variance parameter
            dtheta = math.cosh(x[i]) if math.isfinite(lower[i]) else 1.0
            grad[i] = gth[i] * dtheta / tscale[i]
        return 0 if current else 1
    if code != GLM and curv.size == 0 and current:
        # the Laplace objectives' analytic gradient at the current evaluation's modes
        d = tscale.size
        gfull = np.empty(d + bb.size)
        t = theta_to_factors(theta_of(x, lower, tscale), st)
        if call_at(laplace_gradient, ctl.calls, CALL_GRADIENT,
                   (t, st, data, code != LAPLACE, ctl.lapack_min, ub, bb, scr, gfull)):
            for i in range(ncoord):
                if i < d:
                    dtheta = math.cosh(x[i]) if math.isfinite(lower[i]) else 1.0
                    grad[i] = gfull[i] * dtheta / tscale[i]
                else:
                    grad[i] = gfull[i] / bscale[i - d]
            return 0
    xt = x.copy()
    for i in range(ncoord):
        h = h_rel * max(1.0, abs(x[i]))
        one_sided = x[i] - h < lower[i]
        xt[i] = x[i] + h
        f1 = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                     (code, xt, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx,
                      scr))[0]
        xt[i] = x[i] + 2.0 * h if one_sided else x[i] - h
        f2 = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                     (code, xt, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx,
                      scr))[0]
        xt[i] = x[i]
        if one_sided:
            grad[i] = (-3.0 * f0 + 4.0 * f1 - f2) / (2.0 * h)
        else:
            grad[i] = (f1 - f2) / (2.0 * h)
        if curv.size:
            curv[i] = (f0 - 2.0 * f1 + f2) / (h * h) if one_sided else (
                f1 - 2.0 * f0 + f2) / (h * h)
    return 2 * ncoord


@jit(internal=True)
def bfgs(code, x0, lower, hinv0, scale_first, st, data, ctl, tscale, bscale, sat, ub, bb, scr):
    """Projected BFGS on objective ``code`` from ``x0`` (scaled units) with inverse Hessian
    ``hinv0`` (scaled by the first curvature pair when ``scale_first``).

    ``ub``/``bb`` hold the modes at the current iterate (updated in place).
    Returns ``(x, f, n_evals, n_iter, status)``.  The gradient is taken at one
    place, the top of the loop.
    """
    d = x0.size
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    none = np.empty(0)
    x = scaled_at_least(x0, np.ones(d), lower)
    f = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                (code, x, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx, scr))[0]
    nev = 1
    if not math.isfinite(f):
        return x, f, nev, 0, 4
    assign(ub, uo)
    assign(bb, bo)
    hinv = hinv0.copy()
    first = scale_first
    free = np.empty(d, dtype=np.bool_)
    direction = np.empty(d)
    g = np.empty(d)
    gprev = np.empty(d)
    xprev = np.empty(d)
    xnew = np.empty(d)
    hy = np.empty(d)
    fprev = f
    have_prev = False
    status = 2
    it = 0
    while True:
        # x was the last point evaluated: its factor is in scr and its modes in ub/bb
        nev += call_at(derivatives, ctl.calls, CALL_DERIVATIVES,
                       (code, x, lower, f, True, st, data, ctl, tscale, bscale, sat, ub, bb,
                        _H_REL, d, g, none, scr))
        if have_prev:
            sy = 0.0
            ss = 0.0
            yy = 0.0
            smax = 0.0
            for i in range(d):
                si = x[i] - xprev[i]
                yi = g[i] - gprev[i]
                sy += si * yi
                ss += si * si
                yy += yi * yi
                smax = max(smax, abs(si))
            if sy > 1e-12 * math.sqrt(ss * yy):
                if first:
                    hinv = identity(d, sy / yy)
                rho = 1.0 / sy
                for i in range(d):
                    acc = 0.0
                    for j in range(d):
                        acc += hinv[i, j] * (g[j] - gprev[j])
                    hy[i] = acc
                yhy = 0.0
                for i in range(d):
                    yhy += (g[i] - gprev[i]) * hy[i]
                for i in range(d):
                    si = x[i] - xprev[i]
                    for j in range(d):
                        sj = x[j] - xprev[j]
                        hinv[i, j] += (-rho * (si * hy[j] + hy[i] * sj)
                                       + (rho * rho * yhy + rho) * si * sj)
            first = False
            if abs(fprev - f) <= ctl.ftol * (1.0 + abs(fprev)) and smax <= ctl.xtol:
                status = 1
                break
        if it >= ctl.maxiter:
            break
        it += 1
        pg = 0.0
        for i in range(d):
            at_bound = math.isfinite(lower[i]) and x[i] <= lower[i] + 1e-14 * max(
                1.0, abs(lower[i]))
            free[i] = not (at_bound and g[i] > 0.0)
            if free[i]:
                pg = max(pg, abs(g[i]))
        if pg <= ctl.gtol * (1.0 + abs(f)):
            status = 0
            break
        slope = 0.0
        for i in range(d):
            s = 0.0
            if free[i]:
                for j in range(d):
                    if free[j]:
                        s -= hinv[i, j] * g[j]
            direction[i] = s
            slope += s * g[i]
        if code != PROFILED and slope < 0.0 and -slope <= ctl.ftol * (1.0 + abs(f)):
            # the quadratic model predicts a decrease below ftol: a Laplace objective
            # carries PIRLS's convergence noise, which a line search cannot resolve
            status = 1
            break
        if not slope < 0.0:  # not a descent direction: restart from steepest descent
            hinv = identity(d, 1.0)
            for i in range(d):
                direction[i] = -g[i] if free[i] else 0.0
        if first and it == 1:
            # the first step knows no curvature (hinv is the identity): it goes at most
            # half-way to a bound, coordinate by coordinate (still a descent direction),
            # rather than landing on the bound with an unscaled step
            for i in range(d):
                if direction[i] < 0.0 and math.isfinite(lower[i]):
                    direction[i] = max(direction[i], -0.5 * (x[i] - lower[i]))
        cap = max(1.0, max_abs(x))
        dmax = max_abs(direction)
        if dmax > cap:
            for i in range(d):
                direction[i] *= cap / dmax
        alpha = 1.0
        accepted = False
        fnew = f
        for _ in range(40):
            lin = 0.0
            step = 0.0
            for i in range(d):
                xnew[i] = max(lower[i], x[i] + alpha * direction[i])
                lin += g[i] * (xnew[i] - x[i])
                step = max(step, abs(xnew[i] - x[i]))
            if step <= ctl.xtol:
                break  # no step longer than xtol: a decrease would be below f's rounding
            fnew = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                           (code, xnew, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo,
                            lxx, scr))[0]
            nev += 1
            if math.isfinite(fnew) and fnew <= f + 1e-4 * lin:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            status = 1 if step <= ctl.xtol else 3
            break
        assign(ub, uo)
        assign(bb, bo)
        assign(xprev, x)
        assign(gprev, g)
        fprev = f
        assign(x, xnew)
        f = fnew
        have_prev = True
    return x, f, nev, it, status


@jit(internal=True)
def optimize(code, x0, lower, hinv0, scale_first, edges, is_diag, below, st, data, ctl, tscale,
             bscale, sat, ub, bb, scr):
    """Minimise objective ``code`` from ``x0``; returns ``(x, f, n_evals, n_iter, status)``.

    One projected BFGS run (:func:`bfgs`), then, when ``edges``, lme4's
    ``restart_edge`` and the boundary snap.  The objective depends on a variance
    parameter through its square, so its derivative at the bound is zero and a
    projected gradient method can stop there on a saddle.  Each variance
    parameter within :data:`EDGE_PROBE` of its bound is probed that far inside
    -- with the entries below it in its column of T (``below[i]`` of them) as
    they are and with their signs flipped, which with the diagonal at 0 does
    not change the model but decides which way the objective falls -- and if
    the objective drops, the search restarts from the best of 0.01, 0.1, 1
    above the bound (at most ``ctl.restarts`` times, kept only if it ends
    lower).  Finally a variance parameter within :data:`BOUNDARY_SNAP` of its
    bound is moved onto it when that does not raise the objective.  ``ub``/``bb``
    receive the modes at the result.
    """
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    x = x0.copy()
    f = np.inf
    nev = 0
    nit = 0
    status = 4
    start = x0.copy()
    ub_try = ub.copy()
    bb_try = bb.copy()
    for attempt in range(ctl.restarts + 1 if edges else 1):
        xa, fa, na, ita, sta = call_at(bfgs, ctl.calls, CALL_BFGS,
                                       (code, start, lower, hinv0, scale_first, st, data, ctl,
                                        tscale, bscale, sat, ub_try, bb_try, scr))
        nev += na
        nit += ita
        if attempt > 0 and not fa <= f:
            break
        x, f, status = xa, fa, sta
        assign(ub, ub_try)
        assign(bb, bb_try)
        if not (edges and math.isfinite(f)):
            break
        start = x.copy()
        moved = False
        for i in range(is_diag.size):
            if not is_diag[i] or x[i] - lower[i] > EDGE_PROBE:
                continue
            best = f
            for sgn in (1.0, -1.0):
                if sgn < 0.0 and below[i] == 0:
                    continue
                probe = x.copy()
                for r in range(1, below[i] + 1):
                    probe[i + r] = sgn * x[i + r]
                probe[i] = x[i] + EDGE_PROBE
                nev += 1
                if not call_at(evaluate, ctl.calls, CALL_EVALUATE,
                               (code, probe, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo,
                                bo, lxx, scr))[0] < f:
                    continue
                for value in (1e-2, 1e-1, 1.0):
                    probe[i] = lower[i] + value
                    fv = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                                 (code, probe, lower, st, data, ctl, tscale, bscale, sat, ub, bb,
                                  uo, bo, lxx, scr))[0]
                    nev += 1
                    if fv < best:
                        best = fv
                        for r in range(below[i] + 1):
                            start[i + r] = probe[i + r]
                        moved = True
        if not moved:
            break
        assign(ub_try, ub)
        assign(bb_try, bb)
    if edges and math.isfinite(f):
        for i in range(is_diag.size):
            gap = x[i] - lower[i]
            if is_diag[i] and 0.0 < gap < BOUNDARY_SNAP:
                trial = x.copy()
                trial[i] = lower[i]
                ft = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                             (code, trial, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo,
                              bo, lxx, scr))[0]
                nev += 1
                if ft <= f:
                    x, f = trial, ft
                    assign(ub, uo)
    return x, f, nev, nit, status
