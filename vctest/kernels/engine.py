"""Fitting any model of the engine: LM, LMM (profiled REML/ML), GLM (IRLS), GLMM (Laplace).

:func:`fit_model` is the serial entry point Python calls (one compiled
specialisation; ``settings.maxiter = 0`` evaluates at the start instead of
optimising, which is how single objective values, modes and fixed effects are
computed; ``maxiter < 0`` also returns a Gaussian model's analytic gradient of
the criterion, :mod:`vctest.kernels.gradient`, in theta's place), and what the
bootstrap kernel (:mod:`vctest.kernels.bootstrap`) calls per replicate.
Python calls it through :func:`run_fit`.

By family:

* Gaussian -- minimise the profiled criterion over theta (one BFGS run from an
  identity inverse Hessian scaled by the first curvature pair), then the edge
  restarts and the boundary snap; beta and u are the solution of the
  penalised system at the estimate.
* binomial / Poisson without random effects -- a GLM by IRLS (PIRLS with no
  u), from ``beta0`` when finite, else from R's ``mustart``.
* binomial / Poisson with random effects -- lme4's ``glmer`` with ``nAGQ = 1``:
  (1) theta alone with (u, beta) by PIRLS (lme4's nAGQ = 0 stage; skipped
  unless ``settings.two_stage``), (2) (theta, beta) together with u by PIRLS,
  started from an inverse Hessian whose beta block is ``0.5 (R_X R_X')^{-1}``
  (the inverse Hessian of -2 log-likelihood in beta at fixed theta) and whose
  theta diagonal comes from second differences; then edge restarts and snap.
"""

from __future__ import annotations

import math
import time

import numba
import numpy as np

from vctest.kernels._jit import interpreted, jit
from vctest.kernels.calls import address_of, call_at, return_type
from vctest.kernels.families import inverse_link, saturated_constant
from vctest.kernels.gradient import laplace_gradient, profiled_gradient
from vctest.kernels.linalg import assign, assign_numpy, identity, lower_inverse
from vctest.kernels.objective import (
    evaluate,
    evaluate_pirls,
    evaluate_profiled,
    theta_of,
    x_of,
)
from vctest.kernels.optimize import bfgs, derivatives, optimize
from vctest.kernels.pwls import cross_products, scratch, theta_to_factors
from vctest.kernels.tiers import Tier, TieredKernel, inner_seconds, mode
from vctest.kernels.types import (
    CALL_BFGS,
    CALL_CROSS,
    CALL_DERIVATIVES,
    CALL_EVALUATE,
    CALL_FIT,
    CALL_GRADIENT,
    CALL_OPTIMIZE,
    CALL_PIRLS,
    CALL_PROFILED,
    CALL_SATURATED,
    CALL_SCRATCH,
    GAUSSIAN,
    GLM,
    LAPLACE,
    LAPLACE_JOINT,
    PIRLS_FAILED,
    PIRLS_OK,
    PIRLS_SEPARATED,
    PROFILED,
)


@jit(inline=True)
def _beta_hinv(lxx, bscale, hinv, off):
    """``hinv[off:, off:] = 0.5 S (L L')^{-1} S`` with ``S = diag(bscale)``."""
    p = bscale.size
    linv = np.zeros((p, p))
    lower_inverse(lxx, p, linv)
    for a in range(p):
        for b in range(p):
            acc = 0.0
            for i in range(max(a, b), p):
                acc += linv[i, a] * linv[i, b]
            hinv[off + a, off + b] = 0.5 * bscale[a] * bscale[b] * acc


@jit
def fit_model(st, data, ctl, start):
    """Fit one model (see the module docstring).

    Returns
    -------
    theta, beta, u : ndarray
        Estimates and conditional modes (engine units).
    lxx : ndarray (p, p)
        Lower factor ``R_X'`` at the estimate (Gaussian and GLM).
    f : float
        REML criterion / ML deviance (Gaussian, engine units) or -2
        log-likelihood (Laplace; R's ``-2 logLik`` for a GLM).
    dev : float
        Penalised residual sum of squares (Gaussian) or the sum of deviance
        residuals at the modes.
    n_evals, status : int
        Objective evaluations and the fit's status
        (:data:`vctest.kernels.types.STATUS_TEXT`).

    Every kernel it calls -- the optimiser, the objective, the gradient, the
    cross-products and the work arrays -- is called through its address in
    ``ctl.calls`` (:func:`with_calls`, :mod:`vctest.kernels.calls`).
    """
    d, p = start.tscale.size, st.p
    tscale, bscale = start.tscale, start.bscale
    q = st.nlev[0] * st.k[0] + st.m_re
    lower = np.empty(d)
    for i in range(d):
        lower[i] = 0.0 if start.is_diag[i] else -np.inf
    u = np.zeros(q)
    beta = start.beta.copy()
    theta = np.empty(d)
    for i in range(d):
        theta[i] = max(start.theta[i], lower[i])
    uo = np.empty(q)
    bo = np.empty(p)
    lxx = np.zeros((p, p))
    scr = call_at(scratch, ctl.calls, CALL_SCRATCH, (st,))
    nev = 0
    status = 0
    gaussian = data.fam == GAUSSIAN
    sat = 0.0 if gaussian else call_at(saturated_constant, ctl.calls, CALL_SATURATED,
                                       (data.fam, data.y, data.wt))
    if gaussian:
        call_at(cross_products, ctl.calls, CALL_CROSS, (st, data.wt, data.y, scr))
    # objective codes from an array, never literals (one specialisation)
    codes = np.array([PROFILED, LAPLACE_JOINT, LAPLACE, GLM])
    first_stage, last_stage = 1, 0  # no optimisation
    if d > 0 and ctl.maxiter > 0:
        if gaussian:
            first_stage, last_stage = 0, 0
        else:
            first_stage, last_stage = (1 if ctl.two_stage != 0 else 2), 2
    for stage in range(first_stage, last_stage + 1):
        code = codes[stage]
        laplace = code == codes[2]
        dd = d + p if laplace else d
        x = np.empty(dd)
        lo = np.empty(dd)
        hinv = identity(dd, 1.0)
        x_of(theta, lower, tscale, x)
        for i in range(d):
            lo[i] = lower[i]
        if laplace:
            # beta and its block of the inverse Hessian from the joint system at theta
            f1 = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                         (codes[1], x, lo, st, data, ctl, tscale, bscale, sat, u, beta, uo, bo,
                          lxx, scr))[0]
            nev += 1
            if math.isfinite(f1):
                assign(u, uo)
                assign(beta, bo)
                _beta_hinv(lxx, bscale, hinv, d)
            for i in range(p):
                x[d + i] = beta[i] * bscale[i]
                lo[d + i] = -np.inf
        if not gaussian:
            # theta's diagonal of the inverse Hessian from second differences
            f0 = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                         (code, x, lo, st, data, ctl, tscale, bscale, sat, u, beta, uo, bo, lxx,
                          scr))[0]
            nev += 1
            if math.isfinite(f0):
                assign(u, uo)
                if not laplace:
                    assign(beta, bo)
            grad = np.empty(d)
            curv = np.empty(d)
            nev += call_at(derivatives, ctl.calls, CALL_DERIVATIVES,
                           (code, x, lo, f0, False, st, data, ctl, tscale, bscale, sat, u, beta,
                            1e-3, d, grad, curv, scr))
            for i in range(d):
                c = curv[i]
                hinv[i, i] = 1.0 / c if c > 1e-6 and math.isfinite(c) else 1.0
        x, _, n, _, status = call_at(optimize, ctl.calls, CALL_OPTIMIZE,
                                     (code, x, lo, hinv, gaussian, gaussian or laplace,
                                      start.is_diag, start.below, st, data, ctl, tscale, bscale,
                                      sat, u, beta, scr))
        nev += n
        theta_x = theta_of(x, lower, tscale)
        for i in range(d):
            theta[i] = max(theta_x[i], lower[i])
        if laplace:
            for i in range(p):
                beta[i] = x[d + i] / bscale[i]
    # the final evaluation: modes, fixed effects and R_X at the estimate
    code = codes[0] if gaussian else (codes[3] if d == 0 else codes[2])
    if code == codes[2] and ctl.maxiter == 0 and ctl.two_stage != 0:
        code = codes[1]  # an evaluation of the joint (nAGQ = 0) objective
    xv = np.empty(d + p)
    x_of(theta, lower, tscale, xv)
    for i in range(p):
        xv[d + i] = beta[i] * bscale[i]
    f, dev, pst, iters = call_at(evaluate, ctl.calls, CALL_EVALUATE,
                                 (code, xv, lower, st, data, ctl, tscale, bscale, sat, u, beta, uo,
                                  bo, lxx, scr))
    if ctl.maxiter < 0 and gaussian and d > 0 and math.isfinite(f):
        # the criterion's analytic gradient at the start, returned in theta's place
        call_at(profiled_gradient, ctl.calls, CALL_GRADIENT,
                (theta_to_factors(theta, st), st, data, ctl.lapack_min, uo, bo, scr, theta))
    if d == 0 and not gaussian:  # a GLM: its fit is this one IRLS run (n_evals = iterations)
        status = 0 if pst == PIRLS_OK else (1 if pst == PIRLS_SEPARATED else PIRLS_FAILED)
        nev = iters - 1
    elif not math.isfinite(f) and status != 4:
        status = 4 if gaussian else PIRLS_FAILED
    return theta, bo, uo, lxx, f, dev, nev + 1, status


LMM_TIER = Tier("linear mixed model fit", 28.0,
                (cross_products, evaluate_profiled, profiled_gradient))
"""Compiled together by a first LMM fit (about 28 CPU s); :mod:`vctest.kernels.tiers`."""

GLMM_TIER = Tier("GLMM fit", 20.0, (saturated_constant, evaluate_pirls, laplace_gradient))
"""Compiled together by a first GLM or GLMM fit (about 20 CPU s)."""

_SCRATCH_TIER = Tier("work arrays", 2.0, (scratch,), follows=(LMM_TIER, GLMM_TIER))

TIERED = {
    scratch: TieredKernel(scratch, _SCRATCH_TIER),
    cross_products: TieredKernel(cross_products, LMM_TIER),
    evaluate_profiled: TieredKernel(evaluate_profiled, LMM_TIER),
    profiled_gradient: TieredKernel(profiled_gradient, LMM_TIER),
    saturated_constant: TieredKernel(saturated_constant, GLMM_TIER),
    evaluate_pirls: TieredKernel(evaluate_pirls, GLMM_TIER),
    laplace_gradient: TieredKernel(laplace_gradient, GLMM_TIER),
}
"""The kernels a fit calls from Python, each run compiled or as Python as its tier decides."""

tiered_saturated_constant = TIERED[saturated_constant]
tiered_inverse_link = TieredKernel(inverse_link, GLMM_TIER)

PYTHON_TWINS = {assign: assign_numpy, **TIERED}
"""What the engine's interpreted source calls in place of kernels (a fit's, a replicate's)."""

_FIT_TIERED = interpreted(fit_model, compiled=(), python=PYTHON_TWINS)
_FIT_INTERPRETED = interpreted(fit_model, compiled=tuple(TIERED), python={assign: assign_numpy})
DRIVER_TIER = Tier("fit driver", 25.0, (fit_model, evaluate, derivatives, bfgs, optimize))
"""fit_model and the optimiser, compiled together (about 25 CPU s; the bootstrap's too)."""


_VEC = numba.types.float64[::1]
_MAT = numba.types.float64[:, ::1]
_CUBE = numba.types.float64[:, :, ::1]
_INT = numba.types.int64


def with_calls(st, data, ctl, start, *, fit=False):
    """``ctl`` with ``calls`` holding the addresses :func:`fit_model` needs.

    The kernels are compiled (or loaded from the cache) for the types of
    ``st``, ``data`` and ``ctl``; the table holds the objective kernel of the
    model's family only, but compiling :func:`~vctest.kernels.objective.evaluate`
    (the optimiser's dispatcher) compiles both objective kernels.  ``fit=True``
    adds :func:`fit_model`'s own address (slot :data:`CALL_FIT`), for the
    bootstrap kernel.  With ``NUMBA_DISABLE_JIT=1`` the addresses are 0.

    Every kernel has one specialisation, so the table is made once per
    process and family kind (Gaussian or not) and then shared: do not write
    into ``ctl.calls`` (copy it first).  Arguments of other types than the
    table was made for are caught by the compiled calls' type tags.
    """
    key = (data.fam == GAUSSIAN, fit)
    table = _TABLES.get(key)
    if table is None:
        table = _make_table(st, data, ctl._replace(calls=np.zeros_like(ctl.calls)), start, fit)
        _TABLES[key] = table
    return ctl._replace(calls=table)


_TABLES: dict[tuple[bool, bool], np.ndarray] = {}


def _make_table(st, data, ctl, start, fit):
    calls = ctl.calls
    calls[CALL_SCRATCH] = address_of(scratch, st)
    scr = return_type(scratch)
    if data.fam == GAUSSIAN:
        calls[CALL_CROSS] = address_of(cross_products, st, data.wt, data.y, scr)
        calls[CALL_PROFILED] = address_of(evaluate_profiled, _VEC, _VEC, st, data, ctl, _VEC,
                                          _VEC, _VEC, _MAT, scr)
        calls[CALL_GRADIENT] = address_of(profiled_gradient, _CUBE, st, data, _INT, _VEC, _VEC,
                                          scr, _VEC)
    else:
        calls[CALL_SATURATED] = address_of(saturated_constant, data.fam, data.y, data.wt)
        calls[CALL_PIRLS] = address_of(evaluate_pirls, _INT, _VEC, _VEC, st, data, ctl, _VEC,
                                       _VEC, numba.types.float64, _VEC, _VEC, _VEC, _VEC, _MAT,
                                       scr)
        calls[CALL_GRADIENT] = address_of(laplace_gradient, _CUBE, st, data, numba.types.boolean,
                                          _INT, _VEC, _VEC, scr, _VEC)
    f64, boolean = numba.types.float64, numba.types.boolean
    common = (st, data, ctl, _VEC, _VEC, f64, _VEC, _VEC)  # ... tscale, bscale, sat, ub, bb
    calls[CALL_EVALUATE] = address_of(evaluate, _INT, _VEC, _VEC, *common, _VEC, _VEC, _MAT, scr)
    calls[CALL_DERIVATIVES] = address_of(derivatives, _INT, _VEC, _VEC, f64, boolean, *common,
                                         f64, _INT, _VEC, _VEC, scr)
    calls[CALL_BFGS] = address_of(bfgs, _INT, _VEC, _VEC, _MAT, boolean, *common, scr)
    calls[CALL_OPTIMIZE] = address_of(optimize, _INT, _VEC, _VEC, _MAT, boolean, boolean,
                                      start.is_diag, start.below, *common, scr)
    if fit:
        calls[CALL_FIT] = address_of(fit_model, st, data, ctl, start)
    return calls


def run_fit(st, data, ctl, start):
    """:func:`fit_model` called from Python: the same results, bit for bit, whichever runs.

    * :func:`fit_model` compiled, when :data:`DRIVER_TIER` says so: this process
      has compiled it (a bootstrap does), the disk cache holds it
      (:func:`vctest.warmup` puts it there), the policy is ``compile``, or the
      interpreter has spent as long on its own lines (the optimiser's
      arithmetic, outside the kernels it calls) as compiling it would take --
      many small fits in one process;
    * else its source in the interpreter, calling the objective kernels, the
      gradient, the cross-products and the work arrays compiled or as Python,
      as their own tiers decide (:mod:`vctest.kernels.tiers`).  A model whose
      dense block is factored by LAPACK (order ``ctl.lapack_min`` or more)
      always calls them compiled.
    """
    policy = mode()
    if policy == "compile" or (policy == "auto" and DRIVER_TIER.compiled()):
        return fit_compiled(st, data, ctl, start)
    path = _FIT_INTERPRETED if st.m_re + st.p >= ctl.lapack_min else _FIT_TIERED
    if policy != "auto":
        return path(st, data, ctl, start)
    begin, inner = time.perf_counter(), inner_seconds()
    try:
        return path(st, data, ctl, start)
    finally:
        DRIVER_TIER.charge((time.perf_counter() - begin) - (inner_seconds() - inner))


def fit_compiled(st, data, ctl, start):
    """:func:`fit_model` compiled (or loaded from the cache), with ``ctl.calls`` filled."""
    return fit_model(st, data, with_calls(st, data, ctl, start), start)
