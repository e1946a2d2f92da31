"""Convergence diagnostics of a fit: derivatives, boundary status and a verdict.

Every fit is checked the same way, whatever optimiser produced it:

1. **Derivatives.**  Gradient and Hessian of the objective (the profiled
   deviance or REML criterion in theta) by finite differences with step
   ``step`` (lme4's ``deriv12`` uses 1e-4).  A coordinate closer than
   ``step`` to its lower bound is differenced *forward only*, so the
   objective is never evaluated outside its domain.
2. **Boundary.**  Coordinates within ``sing_tol`` of their bound are *at the
   bound*; a fit with a variance parameter there is singular (lme4's
   ``isSingular``, tolerance 1e-4).
3. **Verdict.**  At a bound, the optimality (KKT) condition is one-sided: the
   derivative into the interior must not be negative beyond ``grad_tol``,
   and where it is zero (the profiled objective depends on a variance
   parameter through its square) the one-sided curvature must not be
   negative.  On
   the free coordinates the check is lme4's: the scaled gradient
   ``max_i min(|g_i|, |(R^{-1} g)_i|)`` with ``H = R'R`` (the reduced Hessian of
   the free coordinates) must be below ``grad_tol``, and the reduced Hessian
   must have no clearly negative eigenvalue.  A correct boundary optimum is
   therefore never reported as "failed to converge" (lme4 skips all checks for
   singular fits instead).

The Hessian's finite-difference rounding error is about ``4 eps |f| / step^2``
(5e-3 for a criterion of 2.4e5 such as InstEval's); eigenvalue checks use
``max(hess_tol, 10 * that)`` so that rounding noise alone never fails a fit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FitDiagnostics", "diagnose"]


@dataclass(frozen=True)
class FitDiagnostics:
    """Derivatives and the boundary-aware convergence verdict of one fit.

    Attributes
    ----------
    names : tuple of str
        Parameter names.
    theta, lower : ndarray
        Estimate and lower bounds.
    objective : float
        Objective at ``theta``.
    gradient : ndarray
        Finite-difference gradient (forward differences at a bound).
    hessian : ndarray
        Finite-difference Hessian.
    hessian_eigenvalues : ndarray
        Eigenvalues of the full Hessian, ascending.
    at_bound : ndarray of bool
        Coordinates within ``sing_tol`` of their lower bound.
    singular : bool
        Some coordinate is at its bound.
    boundary_derivatives : ndarray
        Derivatives into the interior at the bound coordinates (KKT requires
        them to be >= -grad_tol).
    kkt_ok : bool
        The one-sided condition holds at every bound coordinate.
    reduced_hessian_eigenvalues : ndarray
        Eigenvalues of the Hessian restricted to the free coordinates.
    max_abs_gradient : float
        ``max |g_i|`` over the free coordinates.
    scaled_gradient : float
        lme4's ``max|grad|``: ``max_i min(|g_i|, |(R^{-1} g)_i|)`` on the free
        coordinates (NaN when the reduced Hessian is not positive definite).
    newton_step : ndarray
        ``H^{-1} g`` on the free coordinates (zeros on bound coordinates; NaN
        when the reduced Hessian is singular).
    converged : bool
        All checks passed.
    messages : tuple of str
        Why a check failed, or warnings that do not fail the fit.
    tolerances : dict
        The tolerances used.
    n_evals : int
        Objective evaluations spent on the diagnostics.
    """

    names: tuple[str, ...]
    theta: np.ndarray
    lower: np.ndarray
    objective: float
    gradient: np.ndarray
    hessian: np.ndarray
    hessian_eigenvalues: np.ndarray
    at_bound: np.ndarray
    singular: bool
    boundary_derivatives: np.ndarray
    kkt_ok: bool
    reduced_hessian_eigenvalues: np.ndarray
    max_abs_gradient: float
    scaled_gradient: float
    newton_step: np.ndarray
    converged: bool
    messages: tuple[str, ...]
    tolerances: dict[str, float] = field(default_factory=dict)
    n_evals: int = 0

    def summary(self) -> str:
        """The verdict, then one line per parameter: estimate, bound, gradient."""
        lines = [f"Fit diagnostics: {'converged' if self.converged else 'NOT converged'}"
                 f"{' (boundary)' if self.singular else ''}; scaled gradient "
                 f"{self.scaled_gradient:.3g}, max |gradient| (free) "
                 f"{self.max_abs_gradient:.3g}",
                 f"  {'parameter':<28}{'estimate':>12}{'lower':>8}{'gradient':>12}  at bound"]
        for i, name in enumerate(self.names):
            lines.append(f"  {name:<28}{self.theta[i]:>12.5g}{self.lower[i]:>8.3g}"
                         f"{self.gradient[i]:>12.3g}  {'yes' if self.at_bound[i] else ''}")
        lines += [f"  {m}" for m in self.messages]
        return "\n".join(lines)

    def __repr__(self) -> str:
        from vctest._tables import clip_lines

        return clip_lines(self.summary(), what="fit.diagnostics.summary()")

    def _repr_html_(self) -> str:
        from vctest._tables import text_html

        return text_html("Fit diagnostics", self.summary())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN becomes None)."""

        def clean(v):
            if isinstance(v, np.ndarray):
                return [clean(x) for x in v.tolist()]
            if isinstance(v, list):
                return [clean(x) for x in v]
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {
            "names": list(self.names),
            "gradient": clean(self.gradient),
            "scaled_gradient": clean(float(self.scaled_gradient)),
            "max_abs_gradient": clean(float(self.max_abs_gradient)),
            "hessian": clean(self.hessian),
            "hessian_eigenvalues": clean(self.hessian_eigenvalues),
            "reduced_hessian_eigenvalues": clean(self.reduced_hessian_eigenvalues),
            "newton_step": clean(self.newton_step),
            "at_bound": [bool(b) for b in self.at_bound],
            "singular": self.singular,
            "boundary_derivatives": clean(self.boundary_derivatives),
            "kkt_ok": self.kkt_ok,
            "converged": self.converged,
            "messages": list(self.messages),
            "tolerances": dict(self.tolerances),
            "n_evals": self.n_evals,
        }


class _Memo:
    """Objective evaluations on the integer stencil ``theta + step * offsets``."""

    def __init__(self, objective, theta, step):
        self.objective, self.theta, self.step = objective, theta, step
        self.cache: dict[tuple[int, ...], float] = {}

    def __call__(self, offsets: dict[int, int]) -> float:
        key = tuple(sorted((i, o) for i, o in offsets.items() if o != 0))
        if key not in self.cache:
            x = self.theta.copy()
            for i, o in key:
                x[i] += o * self.step
            self.cache[key] = float(self.objective(x))
        return self.cache[key]


def _first_stencil(forward: bool) -> tuple[tuple[int, float], ...]:
    """Offsets and weights (times 1/step) of a first-derivative stencil."""
    if forward:  # second-order one-sided
        return ((0, -1.5), (1, 2.0), (2, -0.5))
    return ((-1, -0.5), (1, 0.5))


def _mixed_stencil(forward: bool) -> tuple[tuple[int, float], ...]:
    """First-order stencil used inside mixed second differences."""
    if forward:
        return ((0, -1.0), (1, 1.0))
    return ((-1, -0.5), (1, 0.5))


def _derivatives(f: _Memo, forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d, h = forward.size, f.step
    grad = np.empty(d)
    hess = np.empty((d, d))
    for i in range(d):
        grad[i] = sum(w * f({i: o}) for o, w in _first_stencil(bool(forward[i]))) / h
        if forward[i]:
            hess[i, i] = (f({}) - 2.0 * f({i: 1}) + f({i: 2})) / h**2
        else:
            hess[i, i] = (f({i: 1}) - 2.0 * f({}) + f({i: -1})) / h**2
        for j in range(i):
            total = 0.0
            for oi, wi in _mixed_stencil(bool(forward[i])):
                for oj, wj in _mixed_stencil(bool(forward[j])):
                    total += wi * wj * f({i: oi, j: oj})
            hess[i, j] = hess[j, i] = total / h**2
    return grad, hess


def diagnose(
    objective: Callable[[np.ndarray], float],
    theta: Sequence[float] | np.ndarray,
    lower: Sequence[float] | np.ndarray,
    *,
    names: Sequence[str] | None = None,
    step: float = 1e-4,
    grad_tol: float = 2e-3,
    sing_tol: float = 1e-4,
    hess_tol: float = 1e-6,
    scale: Sequence[float] | np.ndarray | None = None,
    gradient: Callable[[np.ndarray], np.ndarray] | None = None,
) -> FitDiagnostics:
    """Check an optimum of ``objective`` over the box ``theta >= lower``.

    Parameters
    ----------
    objective : callable
        ``objective(theta) -> float``; it is only evaluated at points that
        respect ``lower``.
    theta : array_like
        The reported optimum.
    lower : array_like
        Lower bounds (``-inf`` for unbounded coordinates).
    names : sequence of str, optional
        Parameter names used in messages.
    step : float, default 1e-4
        Finite-difference step.
    grad_tol : float, default 2e-3
        Tolerance of the scaled gradient and the one-sided boundary condition
        (lme4's ``check.conv.grad`` tolerance).
    sing_tol : float, default 1e-4
        Distance to a bound below which a coordinate is at the bound.
    hess_tol : float, default 1e-6
        Tolerance of the Hessian eigenvalue checks (raised automatically to
        the finite-difference noise level).
    scale : array_like, optional
        Positive per-parameter scales: derivatives, steps and the boundary
        distance are then taken in ``theta * scale`` (for a mixed model the
        root-mean-square of each parameter's random-effect column), so the
        verdict does not depend on a covariate's units.  ``theta`` and
        ``lower`` are reported unscaled.
    gradient : callable, optional
        ``gradient(theta) -> ndarray``, the objective's exact gradient: used in
        place of finite differences for the gradient checks (an objective
        whose evaluation carries rounding noise, e.g. a REML criterion with a
        huge variance ratio, has finite differences dominated by that noise).

    Returns
    -------
    FitDiagnostics

    Examples
    --------
    A quadratic with its minimum on the bound at 0 and an interior minimum:

    >>> import numpy as np
    >>> from vctest.diagnostics import diagnose
    >>> f = lambda t: (t[0] + 1.0) ** 2 + (t[1] - 2.0) ** 2
    >>> d = diagnose(f, [0.0, 2.0], [0.0, -np.inf])
    >>> d.converged, d.singular, d.at_bound.tolist()
    (True, True, [True, False])
    >>> round(float(d.boundary_derivatives[0]), 6)
    2.0
    """
    theta = np.array(theta, dtype=float).ravel()
    lower = np.broadcast_to(np.asarray(lower, dtype=float), theta.shape).copy()
    if scale is not None:
        sc = np.broadcast_to(np.asarray(scale, dtype=float), theta.shape).copy()
        if not np.all(sc > 0):
            raise ValueError("`scale` must be positive.")
        scaled_gradient = None if gradient is None else (lambda x: gradient(x / sc) / sc)
        raw = diagnose(lambda x: objective(x / sc), theta * sc, lower * sc, names=names,
                       step=step, grad_tol=grad_tol, sing_tol=sing_tol, hess_tol=hess_tol,
                       gradient=scaled_gradient)
        return dataclasses.replace(raw, theta=theta, lower=lower,
                                   tolerances={**raw.tolerances, "scaled": True})
    d = theta.size
    names = tuple(names) if names is not None else tuple(f"theta{i}" for i in range(d))
    if len(names) != d:
        raise ValueError(f"`names` has {len(names)} entries for {d} parameters.")
    if np.any(theta < lower):
        raise ValueError("`theta` lies below `lower`; diagnostics need a feasible point.")
    f = _Memo(objective, theta, step)
    f0 = f({})
    forward = (theta - lower) < 2.0 * step
    at_bound = (theta - lower) < sing_tol
    free = ~at_bound
    tolerances = {"step": step, "grad_tol": grad_tol, "sing_tol": sing_tol, "hess_tol": hess_tol}
    messages: list[str] = []

    if d == 0:
        empty = np.empty(0)
        return FitDiagnostics(names, theta, lower, f0, empty, np.empty((0, 0)), empty,
                              np.zeros(0, bool), False, empty, True, empty, 0.0, 0.0, empty,
                              bool(np.isfinite(f0)), (), tolerances, len(f.cache))

    grad, hess = _derivatives(f, forward)
    if gradient is not None:
        grad = np.asarray(gradient(theta.copy()), dtype=float).reshape(d)
    if not (np.isfinite(f0) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
        messages.append("unable to evaluate the derivatives: the objective is not finite "
                        "near the estimate")
        nan = np.full(d, np.nan)
        return FitDiagnostics(names, theta, lower, f0, grad, hess, nan, at_bound,
                              bool(at_bound.any()), grad[at_bound], False, nan[free],
                              float("nan"), float("nan"), nan, False, tuple(messages),
                              tolerances, len(f.cache))

    noise = 4.0 * np.finfo(float).eps * max(abs(f0), 1.0) / step**2
    eig_tol = max(hess_tol, 10.0 * noise)
    tolerances["hessian_eigenvalue_tol"] = eig_tol
    eig_all = np.linalg.eigvalsh(hess)

    # At a variance bound the profiled objective is often flat to first order
    # (it depends on theta^2), so a zero derivative needs a non-negative
    # one-sided curvature as well.
    bderiv = grad[at_bound]
    bcurv = np.diag(hess)[at_bound]
    kkt_ok = True
    for name, g, c in zip(np.array(names)[at_bound], bderiv, bcurv, strict=True):
        if g < -grad_tol or (g < grad_tol and c < -eig_tol):
            kkt_ok = False
            messages.append(f"{name} is at its bound but the objective decreases into the "
                            f"interior (derivative {g:.3g}, curvature {c:.3g}); "
                            "the optimiser stopped early")

    gf, hf = grad[free], hess[np.ix_(free, free)]
    newton = np.zeros(d)
    if gf.size:
        eig_free = np.linalg.eigvalsh(hf)
        max_abs = float(np.max(np.abs(gf)))
        try:
            upper = np.linalg.cholesky(hf).T  # H = R'R with R upper triangular
            scaled_vec = np.linalg.solve(upper, gf)
            scaled = float(np.max(np.minimum(np.abs(gf), np.abs(scaled_vec))))
        except np.linalg.LinAlgError:
            scaled = float("nan")
        try:
            newton[free] = np.linalg.solve(hf, gf)
        except np.linalg.LinAlgError:
            newton[free] = np.nan
        grad_ok = bool(np.isfinite(scaled) and scaled < grad_tol) or max_abs < grad_tol
        if not grad_ok:
            worst = np.array(names)[free][int(np.argmax(np.abs(gf)))]
            shown = scaled if np.isfinite(scaled) else max_abs
            messages.append(f"failed to converge: max|grad| = {shown:.3g} "
                            f"(tol = {grad_tol:g}, largest at {worst})")
        n_neg = int(np.sum(eig_free < -eig_tol))
        hess_ok = n_neg == 0
        if not hess_ok:
            messages.append(f"degenerate Hessian with {n_neg} negative eigenvalue(s) on the "
                            "free parameters: not a minimum")
        elif np.min(np.abs(eig_free)) < eig_tol:
            messages.append("Hessian is numerically singular: parameters may not be "
                            "uniquely determined (warning only)")
    else:
        eig_free = np.empty(0)
        max_abs, scaled, grad_ok, hess_ok = 0.0, 0.0, True, True

    return FitDiagnostics(
        names=names, theta=theta, lower=lower, objective=f0, gradient=grad, hessian=hess,
        hessian_eigenvalues=eig_all, at_bound=at_bound, singular=bool(at_bound.any()),
        boundary_derivatives=bderiv, kkt_ok=kkt_ok, reduced_hessian_eigenvalues=eig_free,
        max_abs_gradient=max_abs, scaled_gradient=scaled, newton_step=newton,
        converged=bool(kkt_ok and grad_ok and hess_ok), messages=tuple(messages),
        tolerances=tolerances, n_evals=len(f.cache),
    )
