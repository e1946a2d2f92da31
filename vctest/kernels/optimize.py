"""A bounded quasi-Newton minimiser of the profiled LMM objective, in Numba.

Refits in a bootstrap must not leave compiled code (a Python-level
``scipy.optimize`` call per replicate costs milliseconds and cannot run in
``prange``), so this is a small projected BFGS method:

* gradients by finite differences -- central in the interior, second-order
  one-sided near a lower bound, so the objective is never evaluated outside
  its domain;
* an active set: a parameter at its bound with a positive derivative is held
  there; the inverse-Hessian approximation acts on the free parameters;
* a projected backtracking (Armijo) line search; BFGS updates only when the
  curvature condition holds, with a restart to steepest descent otherwise.

It stops when the projected gradient is below ``gtol * (1 + |f|)``, or when an
iteration changes f by less than ``ftol * (1 + |f|)`` and x by less than
``xtol``.  ``scipy.optimize`` remains the reference the kernel is tested
against (``tests/test_lmm.py``).

Status codes: 0 converged (gradient), 1 converged (small change), 2 iteration
limit, 3 line search failed, 4 objective not finite at the start.
"""

from __future__ import annotations

import numpy as np

from vctest.kernels._jit import jit
from vctest.kernels.lmm import objective

STATUS_TEXT = (
    "projected gradient below tolerance",
    "relative change in objective and parameters below tolerance",
    "iteration limit reached",
    "line search failed to decrease the objective",
    "objective not finite at the starting values",
)


@jit
def _scaled(x, scale, ws):
    """The objective at theta = x / scale (the optimiser works in x)."""
    return objective(x / scale, ws)


@jit
def _dot(a, b):
    s = 0.0
    for i in range(a.size):
        s += a[i] * b[i]
    return s


@jit
def fd_gradient(x, lower, f0, ws, h_rel, grad, scale):
    """Finite-difference gradient of ``objective`` at ``x``; returns #evaluations."""
    d = x.size
    xt = x.copy()
    nev = 0
    for i in range(d):
        h = h_rel * max(1.0, abs(x[i]))
        if x[i] - h < lower[i]:
            xt[i] = x[i] + h
            f1 = _scaled(xt, scale, ws)
            xt[i] = x[i] + 2.0 * h
            f2 = _scaled(xt, scale, ws)
            grad[i] = (-3.0 * f0 + 4.0 * f1 - f2) / (2.0 * h)
        else:
            xt[i] = x[i] + h
            f1 = _scaled(xt, scale, ws)
            xt[i] = x[i] - h
            f2 = _scaled(xt, scale, ws)
            grad[i] = (f1 - f2) / (2.0 * h)
        xt[i] = x[i]
        nev += 2
    return nev


@jit
def minimize_bounded(x0, lower, ws, maxiter, gtol, ftol, xtol, scale):
    """Minimise ``objective(theta, ws)`` subject to ``theta >= lower``.

    The search runs in ``x = theta * scale`` (``scale > 0`` per parameter, e.g.
    the root-mean-square of the random-effect column the parameter multiplies),
    so a covariate's units do not change the path; ``x0`` and ``lower`` are
    given and ``x`` is returned on the theta scale.

    Returns
    -------
    x : ndarray
    f : float
    n_evals : int
    n_iter : int
    status : int (see module docstring)
    """
    d = x0.size
    h_rel = 1e-6
    lower = lower * scale
    x = np.maximum(x0 * scale, lower)
    f = _scaled(x, scale, ws)
    nev = 1
    if not np.isfinite(f):
        return x / scale, f, nev, 0, 4
    g = np.empty(d)
    nev += fd_gradient(x, lower, f, ws, h_rel, g, scale)
    hinv = np.eye(d)
    first = True
    status = 2
    it = 0
    free = np.empty(d, dtype=np.bool_)
    direction = np.empty(d)
    gnew = np.empty(d)
    while it < maxiter:
        it += 1
        pg_max = 0.0
        for i in range(d):
            at_bound = np.isfinite(lower[i]) and (
                x[i] <= lower[i] + 1e-14 * max(1.0, abs(lower[i])))
            free[i] = not (at_bound and g[i] > 0.0)
            if free[i]:
                pg_max = max(pg_max, abs(g[i]))
        if pg_max <= gtol * (1.0 + abs(f)):
            status = 0
            break
        slope = 0.0
        for i in range(d):
            if free[i]:
                s = 0.0
                for j in range(d):
                    if free[j]:
                        s -= hinv[i, j] * g[j]
                direction[i] = s
                slope += s * g[i]
            else:
                direction[i] = 0.0
        if not slope < 0.0:
            hinv[:, :] = np.eye(d)
            slope = 0.0
            for i in range(d):
                direction[i] = -g[i] if free[i] else 0.0
                slope -= direction[i] * direction[i]
        # first step: keep it within a unit box so the search starts sensibly
        if first:
            dmax = np.max(np.abs(direction))
            if dmax > 1.0:
                direction /= dmax
        alpha = 1.0
        accepted = False
        xnew = x.copy()
        fnew = f
        for _ in range(40):
            lin = 0.0
            for i in range(d):
                xnew[i] = max(lower[i], x[i] + alpha * direction[i])
                lin += g[i] * (xnew[i] - x[i])
            fnew = _scaled(xnew, scale, ws)
            nev += 1
            if np.isfinite(fnew) and fnew <= f + 1e-4 * lin:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            status = 3
            break
        nev += fd_gradient(xnew, lower, fnew, ws, h_rel, gnew, scale)
        s_vec = xnew - x
        y_vec = gnew - g
        sy = _dot(s_vec, y_vec)
        if sy > 1e-12 * np.sqrt(_dot(s_vec, s_vec) * _dot(y_vec, y_vec)):
            if first:
                hinv[:, :] = np.eye(d) * (sy / _dot(y_vec, y_vec))
            rho = 1.0 / sy
            hy = np.zeros(d)
            for i in range(d):
                for j in range(d):
                    hy[i] += hinv[i, j] * y_vec[j]
            yhy = _dot(y_vec, hy)
            for i in range(d):
                for j in range(d):
                    hinv[i, j] += (
                        -rho * (s_vec[i] * hy[j] + hy[i] * s_vec[j])
                        + (rho * rho * yhy + rho) * s_vec[i] * s_vec[j]
                    )
        first = False
        small_f = abs(f - fnew) <= ftol * (1.0 + abs(f))
        small_x = np.max(np.abs(s_vec)) <= xtol
        x[:] = xnew
        f = fnew
        g[:] = gnew
        if small_f and small_x:
            status = 1
            break
    return x / scale, f, nev, it, status


@jit
def entries_below_diagonals(is_diag):
    """For each diagonal entry of theta, how many entries of its column of T follow it.

    theta lists each block's T column by column (the diagonal, then the entries
    below it), so they are the non-diagonal entries up to the next diagonal.
    """
    below = np.zeros(is_diag.size, dtype=np.int64)
    for i in range(is_diag.size):
        if is_diag[i]:
            j = i + 1
            while j < is_diag.size and not is_diag[j]:
                j += 1
            below[i] = j - i - 1
    return below


@jit
def minimize_with_edge_restarts(x0, lower, is_diag, ws, maxiter, gtol, ftol, xtol, restarts,
                                scale):
    """:func:`minimize_bounded`, then leave bounds the objective falls away from.

    The profiled objective depends on a variance parameter through its square,
    so its derivative at the bound is zero and a projected gradient method can
    stop there on a saddle, or crawl towards it in ever smaller steps.  As
    lme4's ``restart_edge``: probe each variance parameter that ended within
    1e-4 of its bound 1e-4 further into the interior, with the entries below it in
    its column of T as they are and with their signs flipped (free while the
    diagonal is 0); if the objective drops, move it to the best of 0.01, 0.1, 1
    above the bound and restart (at most ``restarts`` times).  All in units of
    ``scale``.  Returns ``(x, f, n_evals, n_iter, status)``.
    """
    x, f, nev, nit, status = minimize_bounded(x0, lower, ws, maxiter, gtol, ftol, xtol, scale)
    below = entries_below_diagonals(is_diag)
    for _ in range(restarts):
        start = x.copy()
        moved = False
        for i in range(x.size):
            if not is_diag[i] or (x[i] - lower[i]) * scale[i] > 1e-4:
                continue
            best_f = f
            # with the diagonal at 0 the sign of the entries below it in its column of T
            # does not change the model, but it decides which way the objective falls
            # when the diagonal leaves the bound: probe both signs
            for sign in (1.0, -1.0):
                if sign < 0.0 and below[i] == 0:
                    continue
                probe = x.copy()
                for r in range(1, below[i] + 1):
                    probe[i + r] = sign * x[i + r]
                probe[i] = x[i] + 1e-4 / scale[i]
                nev += 1
                if not objective(probe, ws) < f:
                    continue
                for value in (1e-2, 1e-1, 1.0):
                    probe[i] = lower[i] + value / scale[i]
                    fv = objective(probe, ws)
                    nev += 1
                    if fv < best_f:
                        best_f = fv
                        for r in range(below[i] + 1):
                            start[i + r] = probe[i + r]
                        moved = True
        if not moved:
            break
        x2, f2, nev2, nit2, status2 = minimize_bounded(start, lower, ws, maxiter, gtol, ftol,
                                                       xtol, scale)
        nev += nev2
        nit += nit2
        if f2 <= f or not np.isfinite(f):
            x, f, status = x2, f2, status2
        else:
            break
    return x, f, nev, nit, status
