"""A linear mixed model: a frozen design on the one engine.

:class:`LinearMixedModel` turns a :class:`~vctest.formula.design.Design` into
the engine's named inputs (:mod:`vctest.model.structure`): the structure of
the blocked system (built once) and the response in the engine's units (the
least-squares residual on X over its root-mean-square), so the criterion does
not move when the response is shifted or scaled.  A new response shares the
structure (:meth:`with_response`) -- MixedModels.jl's ``refit!`` idea with
immutable objects.  A design with no random effects is a linear model (the
null of a test of every variance component): the same engine, theta empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from vctest.diagnostics import FitDiagnostics, diagnose
from vctest.formula.design import Design
from vctest.formula.smooth_design import refuse_smooths
from vctest.kernels.engine import run_fit
from vctest.kernels.types import GAUSSIAN, IDENTITY, Data, Settings, Start, Structure
from vctest.model.structure import (
    EngineStart,
    EngineUnits,
    build_structure,
    f64,
    settings,
    start_template,
)
from vctest.model.terms import SINGULAR_TOL, ThetaLayout, theta_layout

#: Evaluate at the start (no optimisation).
EVALUATE = settings(maxiter=0, gtol=0.0, ftol=0.0, xtol=0.0)
#: Evaluate at the start and return the criterion's gradient in theta's place.
GRADIENT = settings(maxiter=-1, gtol=0.0, ftol=0.0, xtol=0.0)


@dataclass(frozen=True, eq=False)
class EngineFit:
    """What one engine run returns, mapped back to the user's units."""

    theta: np.ndarray
    objective: float
    beta: np.ndarray
    lxx: np.ndarray  #: the factor R_X' in engine units
    pwrss: float
    n_evals: int
    status: int


@dataclass(frozen=True, eq=False)
class LinearMixedModel(EngineStart):
    """A linear mixed model ready to evaluate its profiled deviance.

    Build it with :meth:`from_design`; :meth:`objective` evaluates the REML
    criterion or ML deviance at theta; :meth:`with_response` gives the same
    model for a new response, reusing the structure.

    Attributes
    ----------
    design : Design
    layout : ThetaLayout
    structure : Structure
        The engine's structure (X in engine units).
    units : EngineUnits
    y : ndarray
        The response.
    y_engine : ndarray
        ``(y - X beta_ols) / y_scale``, what the engine fits.
    y_scale : float
    beta_ols : ndarray
    weights : ndarray
        Prior weights (ones when none were given): row i has residual
        variance ``sigma^2 / weights[i]``, as ``lmer(weights=)``.
    """

    design: Design
    layout: ThetaLayout
    structure: Structure
    units: EngineUnits
    y: np.ndarray
    y_engine: np.ndarray
    y_scale: float
    beta_ols: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_design(cls, design: Design, *, random_effects: bool = True,
                    like: LinearMixedModel | None = None) -> LinearMixedModel:
        """The model of ``design`` (``random_effects=False`` allows a linear model).

        ``like`` is a model of a design with the same ``X``, ``y`` and prior
        weights (the same arrays: the full model of a test when ``design`` is
        its null); its units and engine response are reused, not computed again.
        """
        if design.response_levels is not None:
            raise ValueError(
                f"the response {design.formula.response.text!r} is a factor (levels "
                f"{list(design.response_levels)[:4]}); a linear mixed model needs a numeric "
                "response. For a binary response use family='binomial'.")
        refuse_smooths(design, "this operation (the Numba LMM engine)")
        if random_effects and not design.blocks:
            raise ValueError(
                "the formula has no random-effects term such as `(1 | group)`; "
                "a linear mixed model needs at least one."
            )
        if design.weights is not None:
            raise ValueError(
                f"the response {design.formula.response.text!r} gives binomial successes "
                "and failures, but the model is a linear mixed model (family='gaussian', "
                "the default); pass family='binomial' (CLI: --family binomial) to fit a "
                "binomial GLMM, as lme4's glmer() does. lme4's lmer() refuses a cbind() "
                "response too."
            )
        layout = theta_layout(
            [b.name for b in design.blocks], [b.column_names for b in design.blocks]
        )
        if like is not None and like.design.X is design.X and like.design.y is design.y \
                and like.design.prior_weights is design.prior_weights:
            return cls(design=design, layout=layout,
                       structure=build_structure(design.blocks, like.units.x), units=like.units,
                       y=like.y, y_engine=like.y_engine, y_scale=like.y_scale,
                       beta_ols=like.beta_ols, weights=like.weights)
        units = EngineUnits.of(np.asarray(design.X, dtype=float), qr=design.qr())
        st = build_structure(design.blocks, units.x)
        weights = (np.ones(design.n) if design.prior_weights is None
                   else f64(design.prior_weights))
        return cls._with(design, layout, st, units, f64(design.y), weights)

    @classmethod
    def _with(cls, design: Design, layout: ThetaLayout, st: Structure, units: EngineUnits,
              y: np.ndarray, weights: np.ndarray) -> LinearMixedModel:
        resid, beta_ols = units.project(y)
        scale = math.sqrt(float(np.mean(weights * resid * resid))) if y.size else 1.0
        if not (scale > 0.0 and math.isfinite(scale)):
            scale = 1.0
        return cls(design=design, layout=layout, structure=st, units=units, y=y,
                   y_engine=resid / scale, y_scale=scale, beta_ols=beta_ols,
                   weights=weights)

    @property
    def n(self) -> int:
        """Number of observations."""
        return self.structure.n

    @property
    def p(self) -> int:
        """Number of fixed-effect columns."""
        return self.structure.p

    @cached_property
    def start_template(self) -> Start:
        """The model's part of every start; beta's scales come from the (shared) units."""
        return start_template(self.layout, self.structure, bscale=self.units.rms)

    @cached_property
    def theta_scale(self) -> np.ndarray:
        """Per-parameter scale for the optimiser (:func:`vctest.model.terms.column_scales`).

        The optimiser searches ``theta * theta_scale``, so changing a
        covariate's units does not change its path.
        """
        return self.start_template.tscale

    def data(self, reml: bool) -> Data:
        """The engine's :class:`~vctest.kernels.types.Data` (Gaussian, identity link)."""
        zeros = np.zeros(self.n)  # offset and shift (the kernels read them only)
        return Data(y=self.y_engine, wt=self.weights, offset=zeros, fam=GAUSSIAN,
                    link=IDENTITY, reml=int(bool(reml)), resp_scale=1.0, resp_shift=zeros)

    def criterion_shift(self, reml: bool) -> float:
        """The engine's criterion plus this is the criterion in the user's units.

        With prior weights the density of y has covariance ``sigma^2 W^-1``,
        so ``-2 log L`` gains ``-sum(log w)`` (as lme4's criterion).
        """
        log_s2 = 2.0 * math.log(self.y_scale)
        log_w = self.log_weights
        if reml:
            return (self.n - self.p) * log_s2 - 2.0 * self.units.logdet_a - log_w
        return self.n * log_s2 - log_w

    @cached_property
    def log_weights(self) -> float:
        """``sum(log w)`` of the prior weights (0 without weights)."""
        if self.design.prior_weights is None:
            return 0.0  # the weights are ones
        return float(np.sum(np.log(self.weights)))

    def run(self, theta: np.ndarray, reml: bool, ctl: Settings = EVALUATE) -> EngineFit:
        """One engine run from ``theta`` (``ctl.maxiter = 0``: evaluate there)."""
        th, beta, _, lxx, f, pwrss, nev, status = run_fit(
            self.structure, self.data(reml), ctl, self.start(theta, np.zeros(self.p)))
        s = self.y_scale
        return EngineFit(theta=np.asarray(th), objective=float(f) + self.criterion_shift(reml),
                         beta=self.units.to_user(s * beta) + self.beta_ols, lxx=lxx,
                         pwrss=float(pwrss) * s * s, n_evals=int(nev), status=int(status))

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """REML criterion (``reml=True``) or ML deviance at ``theta`` (+inf if undefined)."""
        theta = f64(theta)
        if theta.shape != (self.layout.size,):
            raise ValueError(f"`theta` must have {self.layout.size} entries; got shape "
                             f"{theta.shape}.")
        if np.any(theta < self.layout.lower):
            return math.inf
        return self.run(theta, reml).objective

    def gradient(self, theta: np.ndarray, reml: bool) -> np.ndarray:
        """The analytic gradient of :meth:`objective` at ``theta`` (NaN where undefined)."""
        theta = f64(theta)
        if not self.layout.size:
            return np.zeros(0)
        res = self.run(theta, reml, GRADIENT)
        return res.theta if np.isfinite(res.objective) else np.full(theta.size, np.nan)

    def diagnostics_at(self, theta: np.ndarray, reml: bool) -> FitDiagnostics:
        """Gradient (analytic), Hessian and the boundary-aware verdict at ``theta``, in
        column units."""
        return diagnose(lambda th: self.objective(th, reml), theta, self.layout.lower,
                        names=self.layout.names, sing_tol=SINGULAR_TOL, scale=self.theta_scale,
                        gradient=lambda th: self.gradient(th, reml))

    def with_response(self, y: np.ndarray) -> LinearMixedModel:
        """The same model with response ``y``; shares the structure."""
        y = f64(y)
        if y.shape != (self.n,):
            raise ValueError(f"`y` must have shape ({self.n},); got {y.shape}.")
        if not np.all(np.isfinite(y)):
            raise ValueError("`y` must be finite.")
        return self._with(self.design, self.layout, self.structure, self.units, y,
                          self.weights)

    def fixed_effects(self, theta: np.ndarray, reml: bool, *, at: EngineFit | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, float]:
        """beta-hat, its unscaled covariance (X'V^{-1}X)^{-1} sigma^2 and pwrss at ``theta``.

        ``at`` is an engine run whose last evaluation was at ``theta`` (the
        fit's own run): its numbers are those of a new evaluation there.
        """
        res = self.solution(theta, reml, at=at)
        return res.beta, self.beta_covariance(res.lxx), res.pwrss

    def solution(self, theta: np.ndarray, reml: bool, *, at: EngineFit | None = None
                 ) -> EngineFit:
        """The engine's evaluation at ``theta`` (``at`` when given), checked to be finite."""
        res = self.run(f64(theta), reml) if at is None else at
        if not math.isfinite(res.objective):
            raise FloatingPointError("the penalised system is not positive definite at theta.")
        return res

    def beta_covariance(self, lxx: np.ndarray) -> np.ndarray:
        """``(X'V^{-1}X)^{-1} / sigma^2`` from the factor ``lxx`` of an evaluation
        (:attr:`EngineFit.lxx`)."""
        if not self.p:
            return np.zeros((0, 0))
        from scipy.linalg import solve_triangular

        # Cov(beta) / sigma^2 = A (L L')^{-1} A' with L = R_X' in engine units
        a_lx = self.units.a @ solve_triangular(lxx, np.eye(self.p), lower=True).T
        return a_lx @ a_lx.T
