"""Two-stage Laplace fits of GLMMs, entirely in Numba.

:func:`glmm_refit` (and :func:`glmm_fit`, which also returns the modes) follows
lme4's ``glmer`` with ``nAGQ = 1``:

1. theta alone, with (u, beta) found jointly by PIRLS at each theta (lme4's
   nAGQ = 0 stage; skipped when ``ctrl[0] == 0``, then one joint PIRLS at the
   start theta supplies beta);
2. (theta, beta) together, with u by PIRLS (the Laplace approximation proper).

Both stages minimise with a projected BFGS method like
:mod:`vctest.kernels.optimize` (finite-difference gradients, central in the
interior and one-sided near a bound; backtracking line search; steps capped at
1 in scaled units).  The search runs in ``x = theta * theta_scale`` and
``x = beta * column_rms(X)``.  Stage 2 starts from a good inverse Hessian:
beta's block is ``0.5 (L_X L_X')^{-1}`` from the joint PIRLS system (the
inverse Hessian of -2 log-likelihood in beta at fixed theta) and theta's
diagonal comes from second differences.  Each objective evaluation starts
PIRLS from the modes at the current iterate, so finite differences see a
smooth function.  After stage 2, a variance parameter that ended within 1e-4
of its bound is probed 1e-4 inside and, if the objective falls, restarted from
the best of 0.01, 0.1, 1 (lme4's ``restart_edge``); one within 1e-5 is moved
onto the bound when that does not raise the objective.

Everything is array in / array out and BLAS-free, so :func:`glmm_refit` (and
:func:`vctest.kernels.glm.glm_refit` for a GLM null model) can run inside a
``prange`` loop over bootstrap replicates.

``ctrl`` (float64 array, see :class:`vctest.model.glmm.GlmmSettings`):
``[two_stage, maxiter, gtol, ftol, xtol, pirls_maxit, pirls_tol, restarts]``.

Status codes: 0 converged (projected gradient), 1 converged (small change),
2 iteration limit, 3 line search failed, 4 objective not finite at the start,
5 PIRLS failed at the final estimate.
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.glmm import (
    PIRLS_OK,
    column_scale,
    laplace,
    saturated_constant,
    theta_scale,
)

STATUS_TEXT = (
    "projected gradient below tolerance",
    "relative change in objective and parameters below tolerance",
    "iteration limit reached",
    "line search failed to decrease the objective",
    "objective not finite at the starting values",
    "PIRLS failed at the final estimate",
)

_H_REL = 1e-6
_MAX_STEP = 1.0
_EDGE_PROBE = 1e-4
_SNAP = 1e-5


@jit
def _objective(mode, xv, prob, ub, bb, uo, bo, lxx):
    """Stage ``mode`` objective at ``xv`` (PIRLS from ``ub``/``bb``; modes to ``uo``/``bo``)."""
    ws, y, wt, offset, fam, link, pmaxit, ptol, sat, tscale, bscale = prob
    d = tscale.size
    theta = np.empty(d)
    for i in range(d):
        theta[i] = xv[i] / tscale[i]
    joint = mode == 1
    beta = bb.copy()
    if not joint:
        for i in range(bscale.size):
            beta[i] = xv[d + i] / bscale[i]
    f, _, _ = laplace(theta, beta, ub, ws, y, wt, offset, fam, link, sat, joint, pmaxit, ptol,
                      uo, bo, lxx)
    return f


@jit
def _gradient(mode, x, lower, f0, prob, ub, bb, grad):
    """Finite-difference gradient; returns the number of evaluations."""
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    xt = x.copy()
    for i in range(x.size):
        h = _H_REL * max(1.0, abs(x[i]))
        if x[i] - h < lower[i]:
            xt[i] = x[i] + h
            f1 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            xt[i] = x[i] + 2.0 * h
            f2 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            grad[i] = (-3.0 * f0 + 4.0 * f1 - f2) / (2.0 * h)
        else:
            xt[i] = x[i] + h
            f1 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            xt[i] = x[i] - h
            f2 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            grad[i] = (f1 - f2) / (2.0 * h)
        xt[i] = x[i]
    return 2 * x.size


@jit
def _theta_curvature(mode, x, lower, f0, prob, ub, bb, ntheta, hinv):
    """Diagonal of ``hinv`` for the first ``ntheta`` coordinates from second differences."""
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    h = 1e-3
    xt = x.copy()
    for i in range(ntheta):
        if x[i] - h < lower[i]:
            xt[i] = x[i] + h
            f1 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            xt[i] = x[i] + 2.0 * h
            f2 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            c = (f0 - 2.0 * f1 + f2) / (h * h)
        else:
            xt[i] = x[i] + h
            f1 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            xt[i] = x[i] - h
            f2 = _objective(mode, xt, prob, ub, bb, uo, bo, lxx)
            c = (f1 - 2.0 * f0 + f2) / (h * h)
        xt[i] = x[i]
        hinv[i, i] = 1.0 / c if c > 1e-6 and math.isfinite(c) else 1.0
    return 2 * ntheta


@jit
def _minimize(mode, x0, lower, prob, ub, bb, hinv0, maxiter, gtol, ftol, xtol):
    """Projected BFGS on the stage-``mode`` objective from ``x0`` with inverse Hessian ``hinv0``.

    ``ub``/``bb`` hold the modes at the current iterate (updated in place).
    Returns ``(x, f, n_evals, n_iter, status)``.
    """
    d = x0.size
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    x = np.maximum(x0, lower)
    f = _objective(mode, x, prob, ub, bb, uo, bo, lxx)
    nev = 1
    if not math.isfinite(f):
        return x, f, nev, 0, 4
    ub[:] = uo
    bb[:] = bo
    g = np.empty(d)
    nev += _gradient(mode, x, lower, f, prob, ub, bb, g)
    hinv = hinv0.copy()
    free = np.empty(d, dtype=np.bool_)
    direction = np.empty(d)
    gnew = np.empty(d)
    xnew = np.empty(d)
    hy = np.empty(d)
    status = 2
    it = 0
    while it < maxiter:
        it += 1
        pg = 0.0
        for i in range(d):
            at_bound = math.isfinite(lower[i]) and x[i] <= lower[i] + 1e-14 * max(
                1.0, abs(lower[i]))
            free[i] = not (at_bound and g[i] > 0.0)
            if free[i]:
                pg = max(pg, abs(g[i]))
        if pg <= gtol * (1.0 + abs(f)):
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
        if not slope < 0.0:  # not a descent direction: restart from steepest descent
            hinv[:, :] = np.eye(d)
            for i in range(d):
                direction[i] = -g[i] if free[i] else 0.0
        dmax = np.max(np.abs(direction))
        if dmax > _MAX_STEP:
            direction *= _MAX_STEP / dmax
        alpha = 1.0
        accepted = False
        fnew = f
        for _ in range(40):
            lin = 0.0
            for i in range(d):
                xnew[i] = max(lower[i], x[i] + alpha * direction[i])
                lin += g[i] * (xnew[i] - x[i])
            fnew = _objective(mode, xnew, prob, ub, bb, uo, bo, lxx)
            nev += 1
            if math.isfinite(fnew) and fnew <= f + 1e-4 * lin:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            status = 3
            break
        ub[:] = uo
        bb[:] = bo
        nev += _gradient(mode, xnew, lower, fnew, prob, ub, bb, gnew)
        sy = 0.0
        ss = 0.0
        yy = 0.0
        smax = 0.0
        for i in range(d):
            si = xnew[i] - x[i]
            yi = gnew[i] - g[i]
            sy += si * yi
            ss += si * si
            yy += yi * yi
            smax = max(smax, abs(si))
        if sy > 1e-12 * math.sqrt(ss * yy):
            rho = 1.0 / sy
            for i in range(d):
                acc = 0.0
                for j in range(d):
                    acc += hinv[i, j] * (gnew[j] - g[j])
                hy[i] = acc
            yhy = 0.0
            for i in range(d):
                yhy += (gnew[i] - g[i]) * hy[i]
            for i in range(d):
                si = xnew[i] - x[i]
                for j in range(d):
                    sj = xnew[j] - x[j]
                    hinv[i, j] += (-rho * (si * hy[j] + hy[i] * sj)
                                   + (rho * rho * yhy + rho) * si * sj)
        small = abs(f - fnew) <= ftol * (1.0 + abs(f)) and smax <= xtol
        x[:] = xnew
        f = fnew
        g[:] = gnew
        if small:
            status = 1
            break
    return x, f, nev, it, status


@jit
def _stage2_restarts(mode, x, f, lower, is_diag, below, prob, ub, bb, hinv0, ctrl):
    """Edge restarts and boundary snapping after stage 2 (``mode`` = 2); returns
    ``(x, f, n_evals, status)``.

    ``below[i]`` is the number of off-diagonal parameters under diagonal i in
    its column of T.  With that diagonal at 0 the sign of those entries does
    not change the model, but it decides which way the objective falls when
    the diagonal leaves the bound, so both signs are probed.
    """
    maxiter, gtol, ftol, xtol = int(ctrl[1]), ctrl[2], ctrl[3], ctrl[4]
    restarts = int(ctrl[7])
    ntheta = is_diag.size
    uo = np.empty(ub.size)
    bo = np.empty(bb.size)
    lxx = np.empty((bb.size, bb.size))
    nev = 0
    status = -1
    for _ in range(restarts):
        start = x.copy()
        moved = False
        for i in range(ntheta):
            if not is_diag[i] or x[i] - lower[i] > _EDGE_PROBE:
                continue
            best = f
            for sgn in (1.0, -1.0):
                if sgn < 0.0 and below[i] == 0:
                    continue
                probe = x.copy()
                for r in range(1, below[i] + 1):
                    probe[i + r] = sgn * x[i + r]
                probe[i] = x[i] + _EDGE_PROBE
                nev += 1
                if not _objective(mode, probe, prob, ub, bb, uo, bo, lxx) < f:
                    continue
                for value in (1e-2, 1e-1, 1.0):
                    probe[i] = lower[i] + value
                    fv = _objective(mode, probe, prob, ub, bb, uo, bo, lxx)
                    nev += 1
                    if fv < best:
                        best = fv
                        for r in range(below[i] + 1):
                            start[i + r] = probe[i + r]
                        moved = True
        if not moved:
            break
        ub2 = ub.copy()
        bb2 = bb.copy()
        x2, f2, nev2, _, st2 = _minimize(mode, start, lower, prob, ub2, bb2, hinv0, maxiter, gtol,
                                         ftol, xtol)
        nev += nev2
        if not f2 <= f:
            break
        x, f, status = x2, f2, st2
        ub[:] = ub2
        bb[:] = bb2
    for i in range(ntheta):
        gap = x[i] - lower[i]
        if is_diag[i] and 0.0 < gap < _SNAP:
            trial = x.copy()
            trial[i] = lower[i]
            ft = _objective(mode, trial, prob, ub, bb, uo, bo, lxx)
            nev += 1
            if ft <= f:
                x, f = trial, ft
                ub[:] = uo
    return x, f, nev, status


@jit
def _beta_hinv(lxx, bscale, hinv, off):
    """``hinv[off:, off:] = 0.5 S (L L')^{-1} S`` with ``S = diag(bscale)``."""
    p = bscale.size
    linv = np.zeros((p, p))
    for c in range(p):  # columns of L^{-1} by forward substitution
        for i in range(c, p):
            acc = 1.0 if i == c else 0.0
            for j in range(c, i):
                acc -= lxx[i, j] * linv[j, c]
            linv[i, c] = acc / lxx[i, i]
    for a in range(p):
        for b in range(p):
            acc = 0.0
            for i in range(max(a, b), p):
                acc += linv[i, a] * linv[i, b]
            hinv[off + a, off + b] = 0.5 * bscale[a] * bscale[b] * acc


@jit
def glmm_fit(y, wt, offset, ws, fam, link, theta0, beta0, ctrl):
    """Two-stage Laplace fit of a GLMM (see the module docstring).

    Parameters
    ----------
    y, wt, offset : ndarray (n,)
        Response (proportions for binomial, counts for Poisson), prior
        weights (binomial trials) and offset.
    ws : tuple
        Structure tuple (:mod:`vctest.kernels.glmm`).
    fam, link : int
        Family and link codes.
    theta0, beta0 : ndarray
        Starting values.
    ctrl : ndarray
        Settings (module docstring).

    Returns
    -------
    theta, beta, u : ndarray
    m2ll : float
        -2 log-likelihood (Laplace), lme4's ``-2 * logLik``.
    dev : float
        Sum of deviance residuals at the modes, lme4's ``deviance()``.
    n_evals : int
    status : int
    """
    dims, k, nlev, toff = ws[0], ws[1], ws[2], ws[3]
    x = ws[11]
    p, m_re = dims[1], dims[2]
    d = toff[toff.size - 1]
    q = nlev[0] * k[0] + m_re
    two_stage = ctrl[0] != 0.0
    maxiter, gtol, ftol, xtol = int(ctrl[1]), ctrl[2], ctrl[3], ctrl[4]
    pmaxit, ptol = int(ctrl[5]), ctrl[6]
    lower = np.full(d, -np.inf)
    is_diag = np.zeros(d, dtype=np.bool_)
    below = np.zeros(d, dtype=np.int64)
    for j in range(k.size):
        pos = toff[j]
        for c in range(k[j]):
            for r in range(c, k[j]):
                if r == c:
                    lower[pos] = 0.0
                    is_diag[pos] = True
                    below[pos] = k[j] - 1 - c
                pos += 1
    tscale = theta_scale(ws, d)
    bscale = column_scale(x)
    sat = saturated_constant(fam, y, wt)
    prob = (ws, y, wt, offset, fam, link, pmaxit, ptol, sat, tscale, bscale)
    # stage codes from an array, not literals: Numba compiles a separate
    # specialisation for every literal argument value
    modes = np.arange(1, 3)
    s1, s2 = modes[0], modes[1]
    ub = np.zeros(q)
    bb = beta0.copy()
    xt = np.maximum(theta0 * tscale, lower)
    nev = 0
    uo = np.empty(q)
    bo = np.empty(p)
    lxx = np.zeros((p, p))
    if two_stage:
        f1 = _objective(s1, xt, prob, ub, bb, uo, bo, lxx)
        nev += 1
        if math.isfinite(f1):
            ub[:] = uo
            bb[:] = bo
        h1 = np.eye(d)
        nev += _theta_curvature(s1, xt, lower, f1, prob, ub, bb, d, h1)
        xt, _, n1, _, _ = _minimize(s1, xt, lower, prob, ub, bb, h1, maxiter, gtol, ftol, xtol)
        nev += n1
    f1 = _objective(s1, xt, prob, ub, bb, uo, bo, lxx)
    nev += 1
    hinv = np.eye(d + p)
    if math.isfinite(f1):
        ub[:] = uo
        bb[:] = bo
        _beta_hinv(lxx, bscale, hinv, d)
    x2 = np.empty(d + p)
    lower2 = np.full(d + p, -np.inf)
    for i in range(d):
        x2[i] = xt[i]
        lower2[i] = lower[i]
    for i in range(p):
        x2[d + i] = bb[i] * bscale[i]
    f2 = _objective(s2, x2, prob, ub, bb, uo, bo, lxx)
    nev += 1
    if math.isfinite(f2):
        ub[:] = uo
        nev += _theta_curvature(s2, x2, lower2, f2, prob, ub, bb, d, hinv)
    x2, f2, n2, _, status = _minimize(s2, x2, lower2, prob, ub, bb, hinv, maxiter, gtol, ftol,
                                      xtol)
    nev += n2
    if math.isfinite(f2):
        x2, f2, n3, st3 = _stage2_restarts(s2, x2, f2, lower2, is_diag, below, prob, ub, bb,
                                           hinv, ctrl)
        nev += n3
        if st3 >= 0:
            status = st3
    theta = np.empty(d)
    beta = np.empty(p)
    for i in range(d):
        theta[i] = max(x2[i] / tscale[i], lower[i])
    for i in range(p):
        beta[i] = x2[d + i] / bscale[i]
    u = np.empty(q)
    m2ll, dev, pst = laplace(theta, beta, ub, ws, y, wt, offset, fam, link, sat, s2 == s1,
                             pmaxit, ptol, u, bo, lxx)
    nev += 1
    if pst != PIRLS_OK and status != 4:
        status = 5
    return theta, beta, u, m2ll, dev, nev, status


@jit
def glmm_refit(y, wt, offset, ws, fam, link, theta0, beta0, ctrl):
    """:func:`glmm_fit` without the modes: ``(theta, beta, m2ll, n_evals, status)``.

    The call a ``prange`` bootstrap makes per replicate: every argument is an
    array or a scalar (C-contiguous, writable float64 / int64 arrays: another
    layout compiles another specialisation).  Arguments as :func:`glmm_fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from vctest import datasets
    >>> from vctest.formula import build_design
    >>> from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmSettings
    >>> m = GeneralizedLinearMixedModel.from_design(build_design(
    ...     "cbind(incidence, size - incidence) ~ period + (1 | herd)", datasets.load("cbpp")),
    ...     "binomial")
    >>> theta, beta, m2ll, n_evals, status = glmm_refit(
    ...     m.y, m.weights, m.offset, m.ws, m.fam_code, m.link_code, np.ones(1), np.zeros(4),
    ...     GlmmSettings().as_array())
    >>> round(float(m2ll), 4), round(float(theta[0]), 4), status in (0, 1)
    (184.0526, 0.6423, True)
    """
    theta, beta, _, m2ll, _, nev, status = glmm_fit(y, wt, offset, ws, fam, link, theta0,
                                                    beta0, ctrl)
    return theta, beta, m2ll, nev, status
