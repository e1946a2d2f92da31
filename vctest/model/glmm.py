"""Generalised linear mixed models (binomial, Poisson) by the Laplace approximation.

:class:`GeneralizedLinearMixedModel` packs a :class:`~vctest.formula.design.Design`
into the one engine's inputs (``vctest.model.structure``); :func:`fit_glmm`
fits it as lme4's ``glmer`` (``nAGQ = 1``) does, in two stages, with the
engine's optimiser (``vctest.kernels.engine.fit_model``; SciPy's methods
are second opinions); :class:`GlmmFit` holds the result.  The objective is -2
log-likelihood by the Laplace approximation (lme4's ``-2 * logLik``);
lme4's ``deviance()`` for a GLMM (the sum of deviance residuals at the
conditional modes) is reported as ``deviance``.
:class:`GeneralizedLinearModel` and :func:`fit_glm` fit the model without
random effects (the null model of a likelihood-ratio test of all variance
components).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from vctest._tables import FitViews
from vctest.diagnostics import FitDiagnostics, diagnose
from vctest.formula.design import Design
from vctest.formula.smooth_design import refuse_smooths
from vctest.kernels.engine import run_fit
from vctest.kernels.engine import tiered_saturated_constant as saturated_constant
from vctest.kernels.types import STATUS_TEXT, Structure
from vctest.model.glm import (
    EngineModel,
    FamilyCodes,
    GeneralizedLinearModel,
    as_f64,
    family_iv,
    family_weights,
    offset_iv,
    response_iv,
    simulate_response,
)
from vctest.model.glmm_methods import GlmmMethods
from vctest.model.structure import GlmmSettings, build_structure, settings
from vctest.model.terms import (
    SINGULAR_TOL,
    ThetaLayout,
    theta_layout,
    varcorr_rows,
)

__all__ = ["GeneralizedLinearMixedModel", "GlmmFit", "GlmmSettings", "fit_glmm"]

OPTIMIZERS = ("bfgs", "L-BFGS-B", "Nelder-Mead", "Powell")

#: PIRLS settings of single Laplace evaluations (as GlmmSettings' defaults).
PIRLS_MAXIT, PIRLS_TOL = 100, 1e-10


class LaplaceValue(NamedTuple):
    """One Laplace evaluation: -2 log-likelihood, deviance, modes and PIRLS status."""

    m2ll: float
    deviance: float
    u: np.ndarray
    beta: np.ndarray
    status: int


@dataclass(frozen=True, eq=False)
class GeneralizedLinearMixedModel(FamilyCodes, EngineModel):
    """A GLMM ready for Laplace evaluations (build it with
    :meth:`~vctest.model.glmm.GeneralizedLinearMixedModel.from_design`).

    Attributes
    ----------
    design : Design
    layout : ThetaLayout
    family, link : str
    y : ndarray
        Response: proportions for binomial (``cbind`` gives successes / trials),
        counts for Poisson.
    weights : ndarray
        Prior weights (binomial trials; ones otherwise).
    offset : ndarray
    offset_column : str or None
        The data column the offset was read from (``predict(newdata)`` reads
        it from the new rows, as lme4 evaluates its offset there).
    """

    design: Design
    layout: ThetaLayout
    family: str
    link: str
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    offset_column: str | None = None

    @classmethod
    def from_design(cls, design: Design, family: str, link: str | None = None,
                    offset: Any = None, *,
                    offset_column: str | None = None) -> GeneralizedLinearMixedModel:
        """Check the response against ``family`` and pack the arrays.

        Parameters
        ----------
        design : Design
            From ``vctest.formula.build_design``; needs a random-effects term.
        family : {"binomial", "poisson"}
        link : str, optional
            ``"logit"`` (default), ``"probit"`` or ``"cloglog"`` for binomial;
            ``"log"`` for Poisson.
        offset : array_like, optional
            One value per row used (``design.n``), added to the linear predictor.
        offset_column : str, optional
            The data column ``offset`` holds (recorded for ``predict(newdata)``).

        Returns
        -------
        GeneralizedLinearMixedModel

        Raises
        ------
        TypeError, ValueError
            Unknown family or link, a response the family cannot model, a bad
            offset or no random-effects term; messages name the argument.

        Examples
        --------
        >>> from vctest import datasets
        >>> from vctest.formula import build_design
        >>> d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                  datasets.load("cbpp"))
        >>> m = GeneralizedLinearMixedModel.from_design(d, "binomial")
        >>> m.link, m.q, round(m.objective([0.642262], [-1.39853, -0.99233, -1.12867, -1.58031]), 3)
        ('logit', 15, 184.053)
        """
        refuse_smooths(design, "a GLMM (binomial or Poisson family)")
        family, link = family_iv(family, link)
        if not design.blocks:
            raise ValueError("the formula has no random-effects term such as `(1 | group)`; "
                             "fit it as a GeneralizedLinearModel (vctest.model.glm) instead.")
        y, wt = response_iv(design.y, family_weights(design, family), family)
        layout = theta_layout([b.name for b in design.blocks],
                              [b.column_names for b in design.blocks])
        model = cls(design=design, layout=layout, family=family, link=link, y=y, weights=wt,
                    offset=offset_iv(offset, design.n), offset_column=offset_column)
        model.structure  # noqa: B018 -- build (and check the size of) the structure now
        return model

    @cached_property
    def structure(self) -> Structure:
        """The engine's structure (X in engine units)."""
        return build_structure(self.design.blocks, self.units.x)

    @property
    def n(self) -> int:
        """Number of observations."""
        return self.design.n

    @property
    def p(self) -> int:
        """Number of fixed effects."""
        return self.design.p

    @property
    def q(self) -> int:
        """Number of random effects (length of u)."""
        return int(np.sum(self.layout.k * self.structure.nlev))

    @cached_property
    def theta_scale(self) -> np.ndarray:
        """Root-mean-square of the random-effect column each theta entry multiplies."""
        return self.start_template.tscale

    @cached_property
    def beta_scale(self) -> np.ndarray:
        """Root-mean-square of each column of X (the optimiser's units for beta)."""
        x = np.asarray(self.design.X, dtype=float)
        rms = np.sqrt(np.mean(x * x, axis=0)) if x.shape[0] else np.ones(x.shape[1])
        rms[~(rms > 0)] = 1.0
        return rms

    @cached_property
    def saturated(self) -> float:
        """-2 log-likelihood of the saturated model (R's ``aic`` minus the deviance)."""
        return float(saturated_constant(self.fam_code, as_f64(self.y), as_f64(self.weights)))

    def laplace(self, theta: Any, beta: Any, *, u0: np.ndarray | None = None,
                joint: bool = False) -> LaplaceValue:
        """Laplace evaluation at ``(theta, beta)``; ``joint`` also profiles beta (nAGQ = 0)."""
        theta = as_f64(theta)
        beta = as_f64(beta)
        if theta.shape != (self.layout.size,) or beta.shape != (self.p,):
            raise ValueError(f"`theta` and `beta` must have {self.layout.size} and {self.p} "
                             f"entries; got shapes {theta.shape} and {beta.shape}.")
        ctl = settings(maxiter=0, gtol=0.0, ftol=0.0, xtol=0.0, pirls_maxit=PIRLS_MAXIT,
                       pirls_tol=PIRLS_TOL, two_stage=bool(joint))
        start = self.start(np.maximum(theta, self.layout.lower), self.beta_to_engine(beta))
        _, b, u, _, m2ll, dev, _, _ = run_fit(self.structure, self.data(), ctl, start)
        if np.any(theta < self.layout.lower):
            m2ll = np.inf
        return LaplaceValue(float(m2ll), float(dev), u, self.beta_to_user(b),
                            0 if math.isfinite(m2ll) else 5)

    def diagnostics_at(self, theta: Any, beta: Any, *,
                       u0: np.ndarray | None = None) -> FitDiagnostics:
        """Derivatives and the boundary-aware verdict on the whole (theta, beta) vector.

        Taken in the optimiser's units (theta times its column's root-mean-square,
        beta times its column's), so a covariate's units do not change the verdict;
        ``u0`` starts each PIRLS run (the fit's modes).
        """
        d = self.layout.size
        lower = np.concatenate([self.layout.lower, np.full(self.p, -np.inf)])
        scale = np.concatenate([self.theta_scale, self.beta_scale])
        names = list(self.layout.names) + list(self.design.fixed_names)

        def f(v: np.ndarray) -> float:
            return self.laplace(v[:d], v[d:], u0=u0).m2ll

        return diagnose(f, np.concatenate([as_f64(theta), as_f64(beta)]), lower, names=names,
                        scale=scale, sing_tol=SINGULAR_TOL)

    def objective(self, theta: Any, beta: Any) -> float:
        """-2 log-likelihood (Laplace) at ``(theta, beta)``; +inf where PIRLS fails."""
        return self.laplace(theta, beta).m2ll

    def with_response(self, y: Any) -> GeneralizedLinearMixedModel:
        """The same model for a new response (proportions for binomial, counts for Poisson)."""
        y = as_f64(y)
        if y.shape != (self.n,):
            raise ValueError(f"`y` must have shape ({self.n},); got {y.shape}.")
        response_iv(y, self.weights if self.family == "binomial" else None, self.family)
        return dataclasses.replace(self, y=y)

    def without_random_effects(self) -> GeneralizedLinearModel:
        """The GLM with the same fixed effects, response, weights and offset."""
        return GeneralizedLinearModel(design=self.design, family=self.family, link=self.link,
                                      y=self.y, weights=self.weights, offset=self.offset)

    def draw_linear_predictor(self, theta: Any, beta: Any,
                              rng: np.random.Generator) -> np.ndarray:
        """offset + X beta + Z Lambda(theta) u at ``(theta, beta)`` with fresh ``u ~ N(0, I)``."""
        eta = self.offset + np.asarray(self.design.X, dtype=float) @ as_f64(beta)
        u = rng.standard_normal(self.q)
        pos = 0
        for block, factor in zip(self.design.blocks, self.layout.factors(as_f64(theta)),
                                 strict=True):
            size = block.n_levels * factor.shape[0]
            b = u[pos:pos + size].reshape(block.n_levels, -1) @ factor.T
            eta += np.einsum("ij,ij->i", block.columns, b[block.codes])
            pos += size
        return eta

    def simulate(self, theta: Any, beta: Any, rng: np.random.Generator) -> np.ndarray:
        """A response drawn from the model at ``(theta, beta)``: u ~ N(0, I), then y | u."""
        eta = self.draw_linear_predictor(theta, beta, rng)
        return simulate_response(self.fam_code, self.link_code, eta, self.weights, rng)


@dataclass(frozen=True, eq=False, repr=False)
class GlmmFit(FitViews, GlmmMethods):
    """A fitted GLMM (Laplace approximation, maximum likelihood).

    Attributes
    ----------
    model : GeneralizedLinearMixedModel
        The model that was fitted: design, family, link, weights and offset.
    theta : ndarray
        Relative covariance parameters (lme4's ``getME(m, "theta")``).
    beta : pandas.Series
        Fixed effects, named.
    objective : float
        -2 log-likelihood (lme4's ``-2 * logLik``; the criterion minimised).
    deviance : float
        Sum of deviance residuals at the conditional modes (lme4's ``deviance()``).
    u : ndarray
        Spherical conditional modes of the random effects.
    n_evals : int
        Laplace evaluations used by the optimiser.
    optimizer, optimizer_message : str
        The optimiser used and why it stopped, in its words.
    optimizer_ok : bool
        The optimiser reported a normal stop (see ``converged`` for the verdict).
    settings : GlmmSettings
        Its tolerances (recorded with every fit).
    """

    model: GeneralizedLinearMixedModel
    theta: np.ndarray
    beta: pd.Series
    objective: float
    deviance: float
    u: np.ndarray
    n_evals: int
    optimizer: str
    optimizer_message: str
    optimizer_ok: bool
    settings: GlmmSettings = field(default_factory=GlmmSettings)

    reml = False

    @property
    def loglik(self) -> float:
        """lme4's ``logLik`` (Laplace)."""
        return -0.5 * self.objective

    @property
    def nobs(self) -> int:
        """Number of observations."""
        return self.model.n

    @property
    def df(self) -> int:
        """Number of parameters (fixed effects and theta), as ``logLik``'s df."""
        return self.model.p + self.theta.size

    @property
    def aic(self) -> float:
        """Akaike's criterion ``-2 logLik + 2 df`` (lme4's ``AIC``)."""
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        """Schwarz's criterion ``-2 logLik + log(n) df`` (lme4's ``BIC``)."""
        return -2.0 * self.loglik + float(np.log(self.nobs)) * self.df

    @property
    def theta_names(self) -> tuple[str, ...]:
        """lme4-style names of theta."""
        return self.model.layout.names

    @property
    def singular(self) -> bool:
        """A variance parameter within 1e-4 of its bound, in units of its column."""
        return bool(self.model.layout.singular(self.theta, self.model.theta_scale))

    @cached_property
    def diagnostics(self) -> FitDiagnostics:
        """Derivatives and the boundary-aware verdict on the whole (theta, beta) vector.

        Computed on first access; derivatives are taken in the optimiser's
        units (theta times its column's root-mean-square, beta times its
        column's), so a covariate's units do not change the verdict.
        """
        return self.model.diagnostics_at(self.theta, self.beta.to_numpy(), u0=self.u)

    @property
    def converged(self) -> bool:
        """The optimiser stopped normally and the boundary-aware check passed."""
        return bool(self.optimizer_ok and self.diagnostics.converged)

    @cached_property
    def beta_se(self) -> pd.Series:
        """Standard errors of beta as lme4's default (``use.hessian = TRUE``).

        From the finite-difference Hessian of -2 log-likelihood in (theta,
        beta), taken in coordinates where beta is whitened by the penalised
        system's factor (so an uncentred covariate does not make it
        ill-conditioned); from that factor alone (lme4's ``use.hessian =
        FALSE``) when the Hessian is not positive definite.
        """
        m, d = self.model, self.theta.size
        se = np.full(m.p, np.nan)
        # the factor R_X' of the joint penalised system at theta (engine units)
        ctl = settings(maxiter=0, gtol=0.0, ftol=0.0, xtol=0.0, pirls_maxit=PIRLS_MAXIT,
                       pirls_tol=PIRLS_TOL, two_stage=True)
        start = m.start(self.theta, m.beta_to_engine(self.beta))
        lxx = run_fit(m.structure, m.data(), ctl, start)[3]
        if not (np.all(np.isfinite(lxx)) and np.all(np.diag(lxx) > 0)):
            return pd.Series(se, index=self.beta.index, name="se")
        # in user units X'WX = low low' with low = A^{-T} L (X = X_engine A^{-1})
        low = np.linalg.inv(m.units.a).T @ np.tril(lxx)
        linv = np.linalg.inv(low)
        se = np.sqrt(np.sum(linv * linv, axis=0))
        ts, u0 = m.theta_scale, self.u

        def f(v: np.ndarray) -> float:  # v = (theta * scale, L' beta)
            return m.laplace(v[:d] / ts, linv.T @ v[d:], u0=u0).m2ll

        v = np.concatenate([self.theta * ts, low.T @ self.beta.to_numpy()])
        lower = np.concatenate([m.layout.lower, np.full(m.p, -np.inf)])
        h = diagnose(f, v, lower, step=1e-3).hessian
        try:
            if not np.all(np.isfinite(h)):
                raise np.linalg.LinAlgError("Hessian not finite")
            np.linalg.cholesky(h)
            cov_z = 2.0 * np.linalg.inv(h)[d:, d:]
            se = np.sqrt(np.diag(linv.T @ cov_z @ linv))
        except np.linalg.LinAlgError:
            pass
        return pd.Series(se, index=self.beta.index, name="se")

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as lme4's ``as.data.frame(VarCorr(m))`` (sigma = 1)."""
        rows = varcorr_rows(self.model.layout, self.theta, 1.0)
        return pd.DataFrame([r for r in rows if r["grp"] != "Residual"])

    def coef_table(self) -> pd.DataFrame:
        """Fixed effects: Estimate, Std. Error, z value, Pr(>|z|)."""
        from scipy.stats import norm

        z = self.beta / self.beta_se
        return pd.DataFrame({"Estimate": self.beta, "Std. Error": self.beta_se, "z value": z,
                             "Pr(>|z|)": 2.0 * norm.sf(np.abs(z))})

    def refit(self, y: Any, *, start: tuple[Any, Any] | None = None) -> GlmmFit:
        """Fit the same model to a new response, warm-started at this fit.

        Examples
        --------
        >>> import numpy as np, vctest
        >>> from vctest.formula import build_design
        >>> d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                  vctest.datasets.load("cbpp"))
        >>> m = fit_glmm(GeneralizedLinearMixedModel.from_design(d, "binomial"))
        >>> y = m.model.simulate(m.theta, m.beta, np.random.default_rng(1))
        >>> m.refit(y).optimizer_ok
        True
        """
        start = (self.theta, self.beta.to_numpy()) if start is None else start
        return fit_glmm(self.model.with_response(y), start=start, optimizer=self.optimizer,
                        settings=self.settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the fit (NaN correlations become None)."""
        vc = self.varcorr
        return {
            "formula": self.model.design.formula.text, "family": self.model.family,
            "link": self.model.link, "nobs": self.nobs, "loglik": self.loglik,
            "minus2loglik": self.objective, "deviance": self.deviance, "df": self.df,
            "theta": dict(zip(self.theta_names, map(float, self.theta), strict=True)),
            "beta": {k: float(v) for k, v in self.beta.items()},
            "beta_se": {k: float(v) for k, v in self.beta_se.items()},
            "varcorr": vc.astype(object).where(vc.notna(), None).to_dict(orient="records"),
            "singular": self.singular,
            "converged": self.converged, "optimizer": self.optimizer,
            "optimizer_message": self.optimizer_message, "n_evals": self.n_evals,
            "settings": dataclasses.asdict(self.settings),
            "diagnostics": self.diagnostics.to_dict(),
        }

    def summary(self, max_rows: int | None = None) -> str:
        """An lme4-like text summary.

        Parameters
        ----------
        max_rows : int, optional
            Most rows of each table (all by default); the repr uses 12.
        """
        from vctest._tables import clip_rows, groups_line

        m = self.model
        lines = [
            "Generalized linear mixed model fit by maximum likelihood (Laplace "
            "approximation) (vctest)",
            f" Family: {m.family}  ( {m.link} )", f"Formula: {m.design.formula.text}",
            f"  -2 logLik {self.objective:.4f}   logLik {self.loglik:.4f}   df {self.df}   "
            f"deviance (residuals) {self.deviance:.4f}", "", "Random effects:",
            f" {'Groups':<14}{'Name':<20}{'Variance':>12}{'Std.Dev.':>11}",
        ]
        rows = []
        for _, row in self.varcorr.iterrows():
            name = row.var1 if not row.var2 else f"{row.var1}:{row.var2}"
            rows.append(f" {row.grp:<14}{name:<20}{row.vcov:>12.4g}{row.sdcor:>11.4g}")
        lines += clip_rows(rows, max_rows, "fit.varcorr")
        table = self.coef_table().to_string(float_format=lambda v: f"{v:.5g}").splitlines()
        lines += [groups_line(m.design), "", "Fixed effects:", table[0]]
        lines += clip_rows(table[1:], max_rows, "fit.coef_table()")
        lines.append("")
        if self.singular:
            lines.append("boundary (singular) fit: a variance parameter is estimated at 0.")
        lines.append("Converged." if self.converged else "NOT converged: " + "; ".join(
            self.diagnostics.messages or (self.optimizer_message,)))
        return "\n".join(lines)


def _start_iv(model: GeneralizedLinearMixedModel, start: Any) -> tuple[np.ndarray, np.ndarray]:
    lay = model.layout
    if start is None:
        from vctest.model.glm import fit_glm

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                beta0 = fit_glm(model.without_random_effects()).beta.to_numpy()
        except FloatingPointError:
            beta0 = np.zeros(model.p)
        else:
            if any("deviance converged" in str(w.message) for w in caught):
                warnings.warn(
                    "separation in the fixed effects: a fixed-effect coefficient diverges "
                    "(fitted probabilities 0 or 1, or means 0 -- e.g. a level of a factor "
                    "with no events); it is not estimable, and vctest.check will call the "
                    "fit 'unidentified'. Merge or drop that level, or use a penalised fit.",
                    UserWarning, stacklevel=4)
        return lay.initial() / model.theta_scale, beta0
    if not (isinstance(start, tuple | list) and len(start) == 2):
        raise TypeError("`start` must be a (theta, beta) pair or None.")
    theta0 = as_f64(start[0]).reshape(-1)
    beta0 = as_f64(start[1]).reshape(-1)
    if theta0.shape != (lay.size,) or beta0.shape != (model.p,):
        raise ValueError(f"`start` must hold {lay.size} theta and {model.p} beta values; got "
                         f"{theta0.size} and {beta0.size}.")
    if not (np.all(np.isfinite(theta0)) and np.all(np.isfinite(beta0))):
        raise ValueError("`start` must be finite.")
    return np.maximum(theta0, lay.lower), beta0


def fit_glmm(model: GeneralizedLinearMixedModel, *, start: Any = None,
             optimizer: str = "bfgs", settings: GlmmSettings | None = None) -> GlmmFit:
    """Fit a GLMM by maximum likelihood (Laplace approximation), as lme4's ``glmer``.

    Parameters
    ----------
    model : GeneralizedLinearMixedModel
    start : (theta, beta), optional
        Starting values; by default theta = 1 in units of each random-effect
        column (1 for intercepts, lme4's start) and beta from the GLM fit.
    optimizer : {"bfgs", "L-BFGS-B", "Nelder-Mead", "Powell"}, default "bfgs"
        ``"bfgs"`` runs both stages in Numba
        (``vctest.kernels.engine.fit_model``); the others are
        SciPy's methods, second opinions for checking a fit.
    settings : GlmmSettings, optional

    Returns
    -------
    GlmmFit

    Examples
    --------
    >>> from vctest import datasets
    >>> from vctest.formula import build_design
    >>> d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                  datasets.load("cbpp"))
    >>> fit = fit_glmm(GeneralizedLinearMixedModel.from_design(d, "binomial"))
    >>> round(fit.objective, 4), round(fit.deviance, 3), round(float(fit.theta[0]), 4)
    (184.0526, 73.472, 0.6423)
    >>> fit.converged, fit.singular
    (True, False)
    """
    if not isinstance(model, GeneralizedLinearMixedModel):
        raise TypeError(f"`model` must be a GeneralizedLinearMixedModel; got "
                        f"{type(model).__name__}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}; got {optimizer!r}.")
    settings = GlmmSettings() if settings is None else settings
    if not isinstance(settings, GlmmSettings):
        raise TypeError(f"`settings` must be a GlmmSettings; got {type(settings).__name__}.")
    theta0, beta0 = _start_iv(model, start)
    if optimizer == "bfgs":
        start_ = model.start(theta0, model.beta_to_engine(beta0))
        theta, beta_e, u, _, m2ll, dev, nev, status = run_fit(model.structure, model.data(),
                                                                settings.kernel(), start_)
        beta = model.beta_to_user(beta_e)
        ok, message = status in (0, 1), STATUS_TEXT[status]
    else:
        from vctest.model.glmm_scipy import scipy_fit

        theta, beta, u, m2ll, dev, nev, ok, message = scipy_fit(model, theta0, beta0, optimizer,
                                                                settings)
    if not math.isfinite(m2ll):
        warnings.warn(f"the GLMM fit failed ({message}); the objective is not finite.",
                      RuntimeWarning, stacklevel=2)
    names = list(model.design.fixed_names)
    return GlmmFit(model=model, theta=np.asarray(theta), beta=pd.Series(
        np.asarray(beta), index=names, name="beta"), objective=float(m2ll),
        deviance=float(dev), u=np.asarray(u), n_evals=int(nev), optimizer=optimizer,
        optimizer_message=message, optimizer_ok=bool(ok), settings=settings)
