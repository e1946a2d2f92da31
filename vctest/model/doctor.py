"""The convergence doctor: can this fit be trusted, and why?

lme4 may warn "Model failed to converge with max|grad| = 0.0039 (tol = 0.002)"
while the Newton step is 1e-5; at a boundary the Hessian means little; and
optimisers can disagree.  :func:`check_fit` gathers the evidence into one
report with one verdict:

``converged``
    The boundary-aware checks pass, or they fail only by a gradient measure
    while every optimiser reaches the same log-likelihood (a false alarm).
``boundary``
    Converged, with a variance estimated at zero (a singular fit): a valid
    optimum on the edge of the parameter space.
``unidentified``
    The likelihood is flat in some direction: the Hessian on the free
    parameters is singular, or optimisers reach the same log-likelihood with
    different estimates.
``disagreement``
    Another optimiser or start finds a higher log-likelihood with different
    estimates: the reported fit is not the maximum.
``failed``
    The checks fail and no optimiser does better.
``unchecked``
    The derivatives cannot be computed (the objective is infinite or
    undefined a small step from the estimates), so nothing can be verified,
    whatever the optimisers say.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vctest._text import wrap_lines

#: Log-likelihood differences below this are agreement (lme4 allFit's scale).
LOGLIK_TOL = 1e-4
#: Estimates closer than this (absolute theta, relative beta) agree.
THETA_TOL = 1e-3
BETA_RTOL = 1e-3
#: Runs at the same log-likelihood whose estimates differ by more than this
#: (theta absolute, beta relative) reveal a ridge; smaller differences are
#: within the optimisers' tolerances on weakly determined parameters.
RIDGE_THETA = 0.05
RIDGE_BETA = 1e-2
#: Reduced Hessian eigenvalues below this fraction of the largest are flat.
FLAT_RATIO = 1e-8
#: Eigenvalue ratio above which the parametrisation is called ill-conditioned.
ILL_CONDITIONED = 1e6
#: Newton-step tolerance (the "relgrad" users compute as max|H^-1 g|).
NEWTON_TOL = 1e-3

EXPLANATIONS = {
    "converged": (
        "The optimiser reached a maximum of the likelihood: the gradient is small in the "
        "units that matter (the Newton step H^-1 g is what the estimates would still "
        "move), the Hessian is positive definite, and the other optimisers reach the same "
        "log-likelihood. The estimates can be used."
    ),
    "boundary": (
        "The fit is a valid optimum on the boundary: at least one variance is estimated "
        "as exactly zero (a singular fit). Gradient and Hessian checks are only meaningful "
        "for the free parameters, and those pass. Whether the zero variance matters is a "
        "question for a test, not a convergence problem: use vctest.vc_test on that term."
    ),
    "unidentified": (
        "The likelihood is flat in at least one direction: different parameter values fit "
        "the data equally well, so the estimates are not determined by the data. This is a "
        "model problem (for example a random slope for a covariate that is constant within "
        "groups, or more random effects than the data can support); simplify the "
        "random-effects structure."
    ),
    "disagreement": (
        "Another optimiser or starting point reached a higher log-likelihood with "
        "different estimates, so the reported fit is not the maximum. Use the best of the "
        "listed runs, and check the model (scaling, number of groups) before relying on it."
    ),
    "failed": (
        "The convergence checks fail and no optimiser finds a better point. The estimates "
        "should not be used as they are: rescale predictors, simplify the model, or check "
        "the data."
    ),
    "unchecked": (
        "The fit cannot be checked: the objective is infinite or undefined a small step "
        "away from the estimates, so its gradient and Hessian (below) are not finite and "
        "nothing says whether this is a maximum, even where the optimisers agree. For a "
        "GLMM this happens when the linear predictor is very large (e.g. Poisson counts in "
        "the tens of thousands), where the Laplace approximation's inner iterations fail "
        "near the estimates: model the counts on a smaller scale (an offset, or a rate), "
        "centre and scale the predictors, or check the data. Do not use the estimates as "
        "they are."
    ),
}


@dataclass(frozen=True)
class GradientMeasure:
    """One way to read the gradient, with its tolerance."""

    name: str
    value: float
    tolerance: float
    meaning: str

    @property
    def ok(self) -> bool:
        """Below the tolerance."""
        return bool(self.value < self.tolerance)


@dataclass(frozen=True)
class OptimizerRun:
    """A refit of the same model by another optimiser or from another start."""

    label: str
    loglik: float
    theta: np.ndarray
    beta: np.ndarray
    converged: bool
    message: str


@dataclass(frozen=True)
class ScalingAdvice:
    """A predictor whose scale may make the problem ill-conditioned."""

    column: str
    mean: float
    sd: float
    reason: str


@dataclass(frozen=True, eq=False)
class ConvergenceReport:
    """Evidence and verdict on one fit (see the module docstring).

    Attributes
    ----------
    verdict : str
        ``"converged"``, ``"boundary"``, ``"unidentified"``, ``"disagreement"``
        or ``"failed"``.
    explanation : str
        The verdict in plain words, with what to do.
    gradient : tuple of GradientMeasure
        The gradient read several ways, each with its tolerance.
    parameters : pandas.DataFrame
        One row per parameter: estimate, lower bound, whether it is at the
        bound, gradient and the one-sided derivative into the interior.
    reduced_hessian_eigenvalues : ndarray
        Eigenvalues of the Hessian on the free parameters.
    runs : tuple of OptimizerRun
        Refits by other optimisers and from other starts.
    loglik_spread, theta_spread, beta_spread : float
        Spread of the converged runs (beta relative).
    scaling : tuple of ScalingAdvice
        Predictors whose scale may make the problem ill-conditioned.
    rescaled : OptimizerRun or None
        The refit with those columns centred and scaled, if any.
    rescaled_clean : bool or None
        Whether that refit passed every check.
    notes : tuple of str
        Other things worth knowing.
    fit : object
        The fit that was checked.
    """

    verdict: str
    explanation: str
    gradient: tuple[GradientMeasure, ...]
    parameters: pd.DataFrame
    reduced_hessian_eigenvalues: np.ndarray
    runs: tuple[OptimizerRun, ...]
    loglik_spread: float
    theta_spread: float
    beta_spread: float
    scaling: tuple[ScalingAdvice, ...]
    rescaled: OptimizerRun | None
    rescaled_clean: bool | None
    notes: tuple[str, ...] = ()
    fit: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def fl(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        def run(r: OptimizerRun) -> dict[str, Any]:
            return {"label": r.label, "loglik": fl(r.loglik), "theta": r.theta.tolist(),
                    "beta": r.beta.tolist(), "converged": r.converged, "message": r.message}

        params = self.parameters.astype(object).where(self.parameters.notna(), None)
        return {
            "verdict": self.verdict,
            "explanation": self.explanation,
            "gradient": [{"name": g.name, "value": fl(g.value), "tolerance": g.tolerance,
                          "ok": g.ok, "meaning": g.meaning} for g in self.gradient],
            "parameters": params.to_dict(orient="records"),
            "reduced_hessian_eigenvalues": [fl(v) for v in self.reduced_hessian_eigenvalues],
            "runs": [run(r) for r in self.runs],
            "loglik_spread": fl(self.loglik_spread),
            "theta_spread": fl(self.theta_spread),
            "beta_spread": fl(self.beta_spread),
            "scaling": [vars(a) for a in self.scaling],
            "rescaled": run(self.rescaled) if self.rescaled else None,
            "rescaled_clean": self.rescaled_clean,
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        from vctest._tables import report_html

        return report_html(self)

    def __repr__(self) -> str:
        from vctest._tables import clip_lines

        return clip_lines(self.summary(), what="report.summary()")

    def summary(self) -> str:
        """Plain-text report (lines of at most 100 characters)."""
        lines = [f"Convergence check: {self.verdict.upper()}", "", self.explanation, "",
                 "Gradient measures (free parameters):"]
        for g in self.gradient:
            flag = "ok" if g.ok else "above tolerance"
            lines.append(f"  {g.name:<34}{g.value:>11.3g}  (tol {g.tolerance:g}; {flag})")
            lines.append(f"      {g.meaning}")
        lines += ["", "Parameters:", self.parameters.to_string(index=False), "",
                  "Optimisers and starts:"]
        for r in self.runs:
            lines.append(f"  {r.label:<26} logLik {r.loglik:>14.6f}  "
                         f"{'converged' if r.converged else 'not converged'}")
        lines.append(f"  spread of converged runs: logLik {self.loglik_spread:.2g}, theta "
                     f"{self.theta_spread:.2g}, beta (relative) {self.beta_spread:.2g}")
        if self.scaling:
            lines += ["", "Scaling:"]
            lines += [f"  {a.column}: mean {a.mean:.4g}, sd {a.sd:.4g} -- {a.reason}"
                      for a in self.scaling]
            if self.rescaled is not None:
                state = "clean" if self.rescaled_clean else "still flagged"
                lines.append(f"  refit with these columns centred and scaled: {state} "
                             f"(logLik {self.rescaled.loglik:.6f})")
        lines += [f"note: {n}" for n in self.notes]
        return wrap_lines(lines)


def scaling_advice(frame: pd.DataFrame | None, response: str | None,
                   skip: frozenset[str] = frozenset()) -> list[ScalingAdvice]:
    """Numeric predictors far from centred or on an extreme scale.

    Columns in ``skip`` (grouping factors: integer subject IDs are labels, not
    numbers) and the response are never flagged.
    """
    if frame is None:
        return []
    out = []
    for col in frame.columns:
        x = frame[col]
        if col == response or col in skip or not pd.api.types.is_numeric_dtype(x) or \
                pd.api.types.is_bool_dtype(x):
            continue
        values = x.to_numpy(dtype=float)
        mean, sd = float(values.mean()), float(values.std())
        if not sd > 0:
            continue
        if abs(mean) > 5 * sd and abs(mean) > 10:
            out.append(ScalingAdvice(col, mean, sd, "uncentred: its mean is "
                                     f"{abs(mean) / sd:.0f} standard deviations from 0; "
                                     "centre it (and scale it)"))
        elif sd > 1e3 or sd < 1e-3:
            out.append(ScalingAdvice(col, mean, sd, "extreme scale; divide it by a "
                                     "convenient unit so that its sd is near 1"))
    return out


#: A principal direction of a random-effects covariance with less than this
#: proportion of its variance is one the data do not support.
REPCA_TOL = 1e-4


def repca_notes(fit: Any) -> list[str]:
    """Name the directions of each random-effects covariance the data do not support.

    From the fit's ``rePCA`` (lme4's): a grouping factor with k > 1 random
    effects whose covariance has fewer than k principal directions with a
    proportion of variance of at least :data:`REPCA_TOL` is over-parameterised.
    """
    repca = getattr(fit, "rePCA", None)
    if repca is None:
        return []
    out = []
    for group, pcs in repca().items():
        prop = pcs["proportion"].to_numpy()
        if prop.size < 2 or not np.all(np.isfinite(prop)):
            continue
        weak = int(np.sum(prop < REPCA_TOL))
        if weak:
            out.append(
                f"rePCA: the random effects of {group} span {prop.size - weak} of "
                f"{prop.size} dimensions (proportions of variance "
                f"{', '.join(f'{p:.3g}' for p in prop)}); the data do not support "
                f"{weak} direction(s): simplify the term (drop a slope or the correlation, "
                "e.g. with vctest.ranova)."
            )
    return out


def _spread(runs: list[OptimizerRun]) -> tuple[float, float, float]:
    good = [r for r in runs if math.isfinite(r.loglik)] or runs
    ll = [r.loglik for r in good]
    th = np.array([r.theta for r in good])
    be = np.array([r.beta for r in good])
    scale = np.maximum(np.abs(be).max(axis=0), 1e-8)
    return (float(max(ll) - min(ll)), float(np.ptp(th, axis=0).max()) if th.size else 0.0,
            float((np.ptp(be, axis=0) / scale).max()) if be.size else 0.0)


def check_fit(
    fit: Any,
    *,
    refit_with: Callable[[str, np.ndarray | None], OptimizerRun],
    refit_rescaled: Callable[[list[str]], OptimizerRun] | None,
    response: str | None,
    skip: frozenset[str] = frozenset(),
    n_random_starts: int = 2,
    optimizers: tuple[str, ...] = ("L-BFGS-B", "Powell", "Nelder-Mead"),
) -> ConvergenceReport:
    """Assemble the convergence report of ``fit``.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        Needs ``diagnostics``, ``loglik``, ``singular`` and ``theta``.
    refit_with : callable
        ``refit_with(optimizer, start) -> OptimizerRun``; ``start`` None for
        the optimiser's default start.
    refit_rescaled : callable or None
        ``refit_rescaled(columns) -> OptimizerRun`` on the design with those
        data columns centred and scaled.
    response : str, optional
        The response column (never flagged for scaling).
    skip : frozenset of str
        Other columns never flagged for scaling (the grouping factors).
    n_random_starts : int, default 2
        Refits of the default optimiser from perturbed starts.
    optimizers : tuple of str
        Other optimisers to refit with.
    """
    d = fit.diagnostics
    free = ~d.at_bound
    g = np.abs(d.gradient[free])
    newton = np.abs(d.newton_step[free])
    grad_tol = d.tolerances["grad_tol"]
    measures = (
        GradientMeasure("raw max|gradient|", float(g.max()) if g.size else 0.0, grad_tol,
                        "derivative of the deviance; depends on the parameters' units"),
        GradientMeasure("lme4's scaled max|grad|", float(d.scaled_gradient), grad_tol,
                        "max_i min(|g_i|, |(R^-1 g)_i|), H = R'R: what lme4 warns about"),
        GradientMeasure("Newton step max|H^-1 g| (relgrad)",
                        float(newton.max()) if newton.size else 0.0, NEWTON_TOL,
                        "how far a Newton step would still move the estimates"),
    )
    params = pd.DataFrame({
        "parameter": list(d.names), "estimate": d.theta, "lower": d.lower,
        "at_bound": d.at_bound, "gradient": d.gradient,
        "one_sided_derivative": np.where(d.at_bound, d.gradient, np.nan),
    })

    bad = [n for n, gi in zip(d.names, d.gradient, strict=True) if not np.isfinite(gi)]
    undefined = bool(bad) or not np.all(np.isfinite(d.hessian))
    runs = [OptimizerRun("reported fit", fit.loglik, np.asarray(fit.theta),
                         np.asarray(fit.beta), bool(fit.converged), "")]
    # with non-finite derivatives no refit can make the fit checkable (and refits of a
    # model whose objective fails near the estimates can take very long): skip them
    for optimizer in optimizers if not undefined else ():
        runs.append(refit_with(optimizer, None))
    rng = np.random.default_rng(0)
    lower = fit.model.layout.lower  # theta only (GLMM diagnostics include beta)
    for i in range(n_random_starts if not undefined else 0):
        start = np.maximum(fit.theta * rng.uniform(0.5, 1.5, fit.theta.size)
                           + np.where(np.isfinite(lower), 0.1, 0.0), lower)
        run = refit_with("bfgs", start)
        runs.append(OptimizerRun(f"bfgs, perturbed start {i + 1}", run.loglik, run.theta,
                                 run.beta, run.converged, run.message))
    # spread among the runs that report convergence (all runs if none does)
    ll_spread, th_spread, be_spread = _spread([r for r in runs if r.converged] or runs)
    best = max(runs, key=lambda r: r.loglik if math.isfinite(r.loglik) else -math.inf)

    # runs that reach the best log-likelihood: do they agree on the estimates?
    top = [r for r in runs if r.loglik >= best.loglik - LOGLIK_TOL]
    _, top_theta, top_beta = _spread(top)
    ridge = (top_theta > RIDGE_THETA or top_beta > RIDGE_BETA) and len(top) > 1

    eig = np.asarray(d.reduced_hessian_eigenvalues)
    eig_tol = d.tolerances.get("hessian_eigenvalue_tol", 0.0)
    flat = bool(eig.size and (eig.min() < max(eig_tol, FLAT_RATIO * max(eig.max(), 0.0))))
    ill = bool(eig.size and eig.min() > 0 and eig.max() / eig.min() > ILL_CONDITIONED)
    advice = scaling_advice(getattr(fit.model.design, "frame", None), response, skip)
    notes: list[str] = []
    rescaled = rescaled_clean = None
    if advice and refit_rescaled is not None and not undefined:
        rescaled = refit_rescaled([a.column for a in advice])
        rescaled_clean = rescaled.converged
    same_optimum = ll_spread < LOGLIK_TOL
    cols = ", ".join(a.column for a in advice)
    rescaled_same = rescaled is not None and abs(rescaled.loglik - fit.loglik) < LOGLIK_TOL
    if undefined:
        verdict = "unchecked"
        notes.append("non-finite derivatives of the objective at the estimates"
                     + (f" (gradient of {', '.join(bad)})" if bad else " (Hessian)")
                     + "; the objective could not be evaluated a step of "
                     f"{d.tolerances.get('step', 1e-4):g} away. Refits by other optimisers "
                     "and starts were skipped: they cannot make the fit checkable.")
    elif rescaled_clean and rescaled_same and not d.converged and best.loglik <= (
            fit.loglik + LOGLIK_TOL):
        verdict = "boundary" if d.singular else "converged"
        notes.append(f"the gradient warning is a false alarm caused by the scale of {cols}: "
                     "every optimiser reaches the same log-likelihood, and the refit with "
                     f"{cols} centred and scaled reaches it too and passes every check. "
                     "Rescale to silence the warning; the fit itself is fine.")
    elif rescaled_clean and not d.converged:
        verdict = "failed"
        notes.append(f"the refit with {cols} centred and scaled is clean and reaches a higher "
                     "log-likelihood: the problem is the predictors' scale; rescale them.")
    elif flat or (ridge and not fit.singular):
        verdict = "unidentified"
        if ridge:
            notes.append(f"{len(top)} runs reach the best log-likelihood (within "
                         f"{LOGLIK_TOL:g}) with estimates {top_theta:.3g} apart in theta.")
    elif best.loglik > fit.loglik + LOGLIK_TOL and (
            np.max(np.abs(best.theta - fit.theta)) > THETA_TOL
            or np.max(np.abs(best.beta - fit.beta) / np.maximum(np.abs(best.beta), 1e-8))
            > BETA_RTOL):
        verdict = "disagreement"
        notes.append(f"best run: {best.label} (logLik {best.loglik:.6f}, "
                     f"{best.loglik - fit.loglik:.3g} above the reported fit).")
    elif not d.converged and not same_optimum:
        verdict = "failed"
    else:
        verdict = "boundary" if d.singular else "converged"
        if not d.converged:
            notes.append("the gradient check is a false alarm: every optimiser and start "
                         f"reaches the same log-likelihood (spread {ll_spread:.2g} < "
                         f"{LOGLIK_TOL:g}).")
        elif rescaled_same:
            notes.append(f"{cols} on a large scale: a gradient check in the predictors' own "
                         "units (lme4's among them) may warn here -- a false alarm: vctest "
                         "checks in column units, and the refit with "
                         f"{cols} centred and scaled reaches the same log-likelihood.")
    if ill:
        notes.append(f"the Hessian's eigenvalue ratio is {eig.max() / eig.min():.3g}: the "
                     "parametrisation is ill-conditioned.")
    notes += repca_notes(fit)
    notes += list(d.messages)
    return ConvergenceReport(
        verdict=verdict, explanation=EXPLANATIONS[verdict], gradient=measures,
        parameters=params, reduced_hessian_eigenvalues=eig, runs=tuple(runs),
        loglik_spread=ll_spread, theta_spread=th_spread, beta_spread=be_spread,
        scaling=tuple(advice), rescaled=rescaled, rescaled_clean=rescaled_clean,
        notes=tuple(notes), fit=fit,
    )
