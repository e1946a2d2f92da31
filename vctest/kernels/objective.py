"""The objectives of the one engine: profiled (RE)ML, PIRLS and the Laplace approximation.

* :func:`profiled` -- a linear mixed model's profiled deviance (ML) or REML
  criterion at theta (Bates et al. 2015, eqs. 34 and 41), from cross-products
  of the response in the engine's centred and scaled units; when the penalised
  residual sum of squares is below 1e-4 of ``y'Wy`` (the subtraction would cost
  digits) it is summed from the residuals of the solved system instead.
* :func:`pirls` -- the conditional modes (and, ``joint``, the fixed effects)
  of a GLMM by penalised iteratively reweighted least squares, with step
  halving; with no random effects it is a GLM's IRLS, started from R's
  ``mustart`` and aware of separation.
* :func:`evaluate` -- the objective chosen by its code: the profiled criterion,
  lme4's Laplace approximation of -2 log-likelihood (``nAGQ = 1``):
  ``aic(mu(u*)) + ||u*||^2 + log|L|^2``, with R's ``aic`` = deviance +
  :func:`~vctest.kernels.families.saturated_constant`, or a GLM's.

:func:`profiled` and :func:`pirls` are inlined into :func:`evaluate_profiled`
and :func:`evaluate_pirls`; :func:`evaluate` calls those two through their
addresses (:mod:`vctest.kernels.calls`), so each is compiled once.

PIRLS stops when the next full step is below ``tol``, so the log-determinant
is taken with the weights at the returned mode (lme4 takes it one iteration
earlier, which moves its -2 logLik of cbpp by 6e-4 at its default
tolPwrss = 1e-7, and by about 1e-8 relative at 1e-12).
"""

from __future__ import annotations

import math

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.calls import call_at
from vctest.kernels.families import MAX_HALVINGS, family_rows
from vctest.kernels.linalg import assign
from vctest.kernels.pwls import (
    apply_factors,
    factor_solve,
    linear_predictor,
    pwls,
    theta_to_factors,
)
from vctest.kernels.types import (
    CALL_PIRLS,
    CALL_PROFILED,
    CLOGLOG,
    GLM,
    LAPLACE,
    PIRLS_MAXIT,
    PIRLS_NOT_PD,
    PIRLS_OK,
    PIRLS_SEPARATED,
    PIRLS_STALLED,
    POISSON,
    PROBIT,
    PROFILED,
)

LOG_2PI = math.log(2.0 * math.pi)


@jit(inline=True)
def profiled(t, st, data, lapack_min, u, beta, lxx, scr):
    """Profiled criterion at the factors ``t``: ``(f, pwrss)``; f = +inf if undefined.

    REML when ``data.reml`` is 1.  The conditional modes go to ``u``, the
    profiled fixed effects to ``beta`` and the factor ``R_X'`` to ``lxx``.  The
    system comes from the raw cross-products in ``scr`` (formed once per
    response by :func:`vctest.kernels.pwls.cross_products`), so an evaluation
    costs O(q), not O(n).  pwrss is ``y'Wy - rhs' solution``; when that
    difference is below 1e-4 y'Wy (a fit so tight that the subtraction would
    cost digits) it is summed from the residuals instead.
    """
    n, p, q = st.n, st.p, u.size
    y, w = data.y, data.wt
    sol, rhs = scr.sol, scr.rhs
    apply_factors(t, st, scr)
    q0 = st.nlev[0] * st.k[0]
    for g in range(st.nlev[0]):
        for a in range(st.k[0]):
            rhs[g * st.k[0] + a] = scr.b0[g, a]
    for i in range(st.m_re + p):
        rhs[q0 + i] = scr.br[i]
    joint = st.n >= 0  # a run-time True: a literal would compile another specialisation
    logdet, logdet_x, ok = factor_solve(st, joint, lapack_min, sol, lxx, scr)
    if not ok:
        return np.inf, np.nan
    for i in range(q):
        u[i] = sol[i]
    for i in range(p):
        beta[i] = sol[q + i]
    yy = scr.yy[0]
    fitted = 0.0
    for i in range(q + p):
        fitted += rhs[i] * sol[i]
    pwrss = yy - fitted
    if not pwrss > 1e-4 * yy:
        eta = scr.eta
        linear_predictor(t, st, u, beta, data.offset, eta)
        pwrss = 0.0
        for r in range(n):
            e = y[r] - eta[r]
            pwrss += w[r] * e * e
        for i in range(q):
            pwrss += u[i] * u[i]
    if not (pwrss > 0.0 and math.isfinite(logdet + logdet_x)):
        return np.inf, pwrss
    if data.reml != 0:
        nr = n - p
        return logdet + logdet_x + nr * (1.0 + LOG_2PI + math.log(pwrss / nr)), pwrss
    return logdet + n * (1.0 + LOG_2PI + math.log(pwrss / n)), pwrss


@jit(inline=True)
def _mustart_eta(data, eta):
    """R's ``mustart`` mapped through the link (probit started from logit / 1.6)."""
    y, wt = data.y, data.wt
    for r in range(y.size):
        if data.fam == POISSON:
            eta[r] = math.log(y[r] + 0.1)
        else:
            mu = (wt[r] * y[r] + 0.5) / (wt[r] + 1.0)
            if data.link == CLOGLOG:
                eta[r] = math.log(-math.log(1.0 - mu))
            else:
                eta[r] = math.log(mu / (1.0 - mu)) / (1.6 if data.link == PROBIT else 1.0)


@jit(inline=True)
def pirls(t, st, data, joint, from_mustart, maxit, tol, lapack_min, u, beta, lxx, scr):
    """Conditional modes by PIRLS; ``u`` and ``beta`` hold the start and receive the mode.

    ``joint`` iterates over (u, beta) together (beta is held otherwise);
    ``from_mustart`` starts from R's ``mustart`` instead of ``(u, beta)`` and
    takes the first step in full (a GLM's IRLS).  Returns ``(dev, usq,
    logdet, iters, status)``: the sum of deviance residuals, ``||u||^2`` and
    ``log|L|^2`` at the mode, and a ``PIRLS_*`` status.  Converged when the
    largest change the next full step would make (absolute in u, relative to
    ``1 + |beta|`` in beta) is at most ``tol``.  A run whose penalised deviance
    converged while a coefficient kept moving within ``maxit`` iterations is
    ``PIRLS_SEPARATED`` (a GLM with separation: R's glm reports it converged).
    """
    n, p, q = st.n, st.p, u.size
    fam, link, y, wt, offset, x = data.fam, data.link, data.y, data.wt, data.offset, st.x
    eta, w, score, teta, tw, tscore = scr.eta, scr.w, scr.score, scr.teta, scr.tw, scr.tscore
    s, tu, tb, sol = scr.s, scr.tu, scr.tb, scr.sol
    if from_mustart:
        _mustart_eta(data, eta)
    else:
        linear_predictor(t, st, u, beta, offset, eta)
    dev = family_rows(fam, link, eta, y, wt, w, score)
    usq = 0.0
    for i in range(q):
        usq += u[i] * u[i]
    logdet = np.inf
    first = from_mustart
    change = np.inf
    for it in range(maxit):
        for r in range(n):
            fixed = offset[r]
            if not joint:
                for i in range(p):
                    fixed += x[r, i] * beta[i]
            s[r] = w[r] * (eta[r] - fixed) + score[r]
        logdet, _, ok = pwls(t, st, w, s, joint, lapack_min, sol, lxx, scr)
        if not ok:
            return dev, usq, np.inf, it + 1, PIRLS_NOT_PD
        delta = 0.0
        for i in range(q):
            delta = max(delta, abs(sol[i] - u[i]))
        if joint:
            for i in range(p):
                delta = max(delta, abs(sol[q + i] - beta[i]) / (1.0 + abs(beta[i])))
        if delta <= tol and not first:
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
            linear_predictor(t, st, tu, tb, offset, teta)
            tdev = family_rows(fam, link, teta, y, wt, tw, tscore)
            if first or tdev + tusq <= pdev + 1e-13 * (1.0 + abs(pdev)):
                accepted = math.isfinite(tdev)
                break
            step *= 0.5
        if not accepted:
            # no decrease along the Newton direction: a numerical stall at the mode, or
            # (a GLM whose deviance has converged while a coefficient diverges) separation
            if delta < 1e-6:
                return dev, usq, logdet, it + 1, PIRLS_OK
            if q == 0 and change <= 1e-10 * (abs(dev) + 0.1):
                return dev, usq, logdet, it + 1, PIRLS_SEPARATED
            return dev, usq, logdet, it + 1, PIRLS_STALLED
        first = False
        change = abs(pdev - tdev - tusq)
        assign(u, tu)
        assign(beta, tb)
        eta, teta = teta, eta
        w, tw = tw, w
        score, tscore = tscore, score
        dev, usq = tdev, tusq
    if q == 0 and change <= 1e-10 * (abs(dev) + 0.1):
        return dev, usq, logdet, maxit, PIRLS_SEPARATED
    return dev, usq, logdet, maxit, PIRLS_MAXIT


@jit(inline=True)
def theta_of(x, lower, tscale):
    """theta from the optimiser's units: ``sinh(x) / tscale`` for a variance parameter
    (finite ``lower``), ``x / tscale`` for the others.

    A variance parameter is searched as ``asinh(theta * tscale)``: the same as
    ``theta * tscale`` near its bound (so the boundary checks are unchanged), and
    logarithmic far from it, so a group spread a million times the residual is a
    few steps away and its derivative is well scaled.
    """
    theta = np.empty(tscale.size)
    for i in range(tscale.size):
        theta[i] = (math.sinh(x[i]) if math.isfinite(lower[i]) else x[i]) / tscale[i]
    return theta


@jit(inline=True)
def x_of(theta, lower, tscale, x):
    """The optimiser's units of ``theta`` into the first entries of ``x`` (see :func:`theta_of`)."""
    for i in range(tscale.size):
        v = theta[i] * tscale[i]
        x[i] = math.asinh(v) if math.isfinite(lower[i]) else v


@jit
def evaluate_profiled(xv, lower, st, data, ctl, tscale, uo, bo, lxx, scr):
    """:data:`PROFILED` at ``xv``: ``(f, pwrss, PIRLS_OK, 1)`` (see :func:`evaluate`)."""
    t = theta_to_factors(theta_of(xv, lower, tscale), st)
    f, pwrss = profiled(t, st, data, ctl.lapack_min, uo, bo, lxx, scr)
    return f, pwrss, PIRLS_OK, 1


@jit
def evaluate_pirls(code, xv, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx,
                   scr):
    """:data:`LAPLACE_JOINT`, :data:`LAPLACE` or :data:`GLM` at ``xv`` (see :func:`evaluate`)."""
    t = theta_to_factors(theta_of(xv, lower, tscale), st)
    d = tscale.size
    assign(uo, ub)
    from_mustart = False
    for i in range(bscale.size):
        bo[i] = xv[d + i] / bscale[i] if code == LAPLACE else bb[i]
        if not math.isfinite(bo[i]):
            from_mustart = True
    if from_mustart:
        for i in range(bscale.size):
            bo[i] = 0.0
    dev, usq, logdet, iters, status = pirls(t, st, data, code != LAPLACE,
                                            from_mustart and code == GLM, ctl.pirls_maxit,
                                            ctl.pirls_tol, ctl.lapack_min, uo, bo, lxx, scr)
    if code == GLM:
        return dev + sat, dev, status, iters
    if status != PIRLS_OK or not math.isfinite(dev + logdet):
        return np.inf, dev, status, iters
    return dev + sat + usq + logdet, dev, status, iters


@jit(internal=True)
def evaluate(code, xv, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx, scr):
    """Objective ``code`` at the optimiser's parameters ``xv``: ``(f, dev, status, iters)``.

    ``xv`` holds theta in the optimiser's units (:func:`theta_of`; ``lower``
    marks the variance parameters), then ``beta * bscale`` for :data:`LAPLACE`.
    PIRLS starts from ``ub``/``bb``; the modes (Gaussian: the profiled u and
    beta) go to ``uo``/``bo`` and ``R_X'`` to ``lxx``; ``scr`` are the fit's work
    arrays (:func:`vctest.kernels.pwls.scratch`).  ``dev`` is the penalised
    residual sum of squares (Gaussian) or the sum of deviance residuals;
    ``status`` the PIRLS status and ``iters`` its iterations (0 and 1 for Gaussian).
    ``f`` is +inf where the objective is undefined; for :data:`GLM` it is
    ``dev + sat`` whatever the status.

    The two kinds are separate kernels (:func:`evaluate_profiled`,
    :func:`evaluate_pirls`), called through their addresses in ``ctl.calls``
    (:mod:`vctest.kernels.calls`): each is compiled once, not again inside
    every caller.  A single fit driven from Python
    (:func:`vctest.kernels.engine.run_fit`) compiles only the one its model
    needs; compiling this dispatcher types, and so compiles, both.
    """
    if code == PROFILED:
        return call_at(evaluate_profiled, ctl.calls, CALL_PROFILED,
                       (xv, lower, st, data, ctl, tscale, uo, bo, lxx, scr))
    return call_at(evaluate_pirls, ctl.calls, CALL_PIRLS,
                   (code, xv, lower, st, data, ctl, tscale, bscale, sat, ub, bb, uo, bo, lxx,
                    scr))
