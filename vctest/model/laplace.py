"""Generalised linear mixed models (binomial, Poisson) by the Laplace approximation.

Fitting follows lme4's two stages: first theta alone with (u, beta) found
jointly by PIRLS (nAGQ = 0), then (theta, beta) together with u by PIRLS
(the Laplace approximation proper, :mod:`vctest.kernels.pirls`).  Both stages
search theta in units of each random-effect column, as for LMMs.  The
objective is -2 log-likelihood (lme4's ``-2 * logLik``); lme4's
``deviance()`` (deviance residuals instead of the full log-density) is
reported too.  Every fit is diagnosed on the whole (theta, beta) vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from vctest.diagnostics import FitDiagnostics, diagnose
from vctest.formula.design import Design
from vctest.kernels.pirls import BINOMIAL, POISSON, glm_irls, pirls, zlambda
from vctest.model.terms import ThetaLayout, column_scales, theta_layout, varcorr_rows

FAMILIES = {"binomial": BINOMIAL, "poisson": POISSON}
PIRLS_MAXIT, PIRLS_TOL = 100, 1e-12
MAX_DENSE = 50_000_000


@dataclass(frozen=True, eq=False)
class GeneralizedLinearMixedModel:
    """A GLMM design ready for Laplace evaluations (see the module docstring)."""

    design: Design
    layout: ThetaLayout
    family: str
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    codes: np.ndarray
    zcols: np.ndarray
    zoff: np.ndarray
    coff: np.ndarray
    q: int

    @classmethod
    def from_design(cls, design: Design, family: str,
                    offset: np.ndarray | None = None) -> GeneralizedLinearMixedModel:
        """Check the response against ``family`` and pack the arrays."""
        if family not in FAMILIES:
            raise ValueError(f"`family` must be one of {tuple(FAMILIES)}; got {family!r}.")
        y = np.asarray(design.y, dtype=float)
        if family == "binomial":
            wt = (np.ones_like(y) if design.weights is None
                  else np.asarray(design.weights, dtype=float))
            if np.any((y < 0) | (y > 1)):
                raise ValueError("a binomial response must be 0/1 or a proportion; use "
                                 "cbind(successes, failures) for counts.")
        else:
            wt = np.ones_like(y)
            if np.any(y < 0) or np.any(y != np.round(y)):
                raise ValueError("a Poisson response must be non-negative integer counts.")
        blocks = design.blocks
        k = np.array([b.k for b in blocks], dtype=np.int64)
        nlev = np.array([b.n_levels for b in blocks], dtype=np.int64)
        coff = np.concatenate([[0], np.cumsum(nlev * k)[:-1]]).astype(np.int64) \
            if blocks else np.zeros(0, np.int64)
        q = int(np.sum(nlev * k))
        if q * design.n > MAX_DENSE:
            raise ValueError(f"the GLMM engine forms Z Lambda densely ({design.n} x {q}); "
                             "this design is too large for it.")
        layout = theta_layout([b.name for b in blocks], [b.column_names for b in blocks])
        return cls(
            design=design, layout=layout, family=family, y=y, weights=wt,
            offset=np.zeros_like(y) if offset is None else np.asarray(offset, float),
            codes=np.ascontiguousarray(np.vstack([b.codes for b in blocks]).astype(np.int64))
            if blocks else np.zeros((0, y.size), np.int64),
            zcols=np.ascontiguousarray(np.hstack([b.columns for b in blocks]).astype(float))
            if blocks else np.zeros((y.size, 0)),
            zoff=np.concatenate([[0], np.cumsum(k)]).astype(np.int64), coff=coff, q=q,
        )

    @property
    def fam(self) -> int:
        return FAMILIES[self.family]

    @cached_property
    def theta_scale(self) -> np.ndarray:
        """Root-mean-square of each parameter's random-effect column (as for LMMs)."""
        return column_scales(self.layout, self.zcols, self.zoff)

    def a(self, theta: np.ndarray) -> np.ndarray:
        """Z Lambda(theta), dense."""
        return zlambda(np.ascontiguousarray(theta, float), self.codes, self.zcols, self.zoff,
                       self.layout.k, self.coff, self.q, int(self.layout.k.max()))

    def laplace(self, theta, beta, u0=None, joint=False):
        """(-2 log-lik, u, beta, lme4 deviance, ok) at (theta, beta)."""
        u0 = np.zeros(self.q) if u0 is None else u0
        u, b, lap, dev, ok, _ = pirls(self.fam, self.y, self.weights, self.offset,
                                      np.ascontiguousarray(self.design.X, float),
                                      self.a(theta), np.ascontiguousarray(beta, float), u0,
                                      joint, PIRLS_MAXIT, PIRLS_TOL)
        return (float(lap) if ok else math.inf), u, b, float(dev), bool(ok)

    def with_response(self, y: np.ndarray) -> GeneralizedLinearMixedModel:
        """The same model for a new response (proportions for binomial)."""
        import dataclasses

        return dataclasses.replace(self, y=np.ascontiguousarray(y, dtype=float))


def glm_fit(design: Design, family: str, y: np.ndarray | None = None):
    """A GLM without random effects: (beta, -2 log-likelihood)."""
    model = GeneralizedLinearMixedModel.from_design(design, family)
    yy = model.y if y is None else np.asarray(y, float)
    x = np.ascontiguousarray(design.X, float)
    b0 = np.zeros(x.shape[1])
    b, m2ll, ok = glm_irls(model.fam, yy, model.weights, model.offset, x, b0, 200, 1e-13)
    if not ok:
        raise FloatingPointError("the GLM fit failed (separation or a degenerate design).")
    return np.asarray(b), float(m2ll)


@dataclass(frozen=True, eq=False)
class GlmmFit:
    """A fitted GLMM (Laplace).

    ``objective`` is -2 log-likelihood (lme4's ``-2 * logLik``); ``deviance``
    the sum of conditional deviance residuals (lme4's ``deviance()``).
    """

    model: GeneralizedLinearMixedModel
    theta: np.ndarray
    beta: pd.Series
    beta_se_pirls: pd.Series
    objective: float
    deviance: float
    u: np.ndarray
    n_evals: int
    optimizer_message: str

    reml = False

    @property
    def loglik(self) -> float:
        """lme4's ``logLik``."""
        return -0.5 * self.objective

    @property
    def nobs(self) -> int:
        return self.model.design.n

    @property
    def singular(self) -> bool:
        lay = self.model.layout
        dist = (self.theta - lay.lower) * self.model.theta_scale
        return bool(np.any(lay.is_diagonal & (dist < 1e-4)))

    @cached_property
    def diagnostics(self) -> FitDiagnostics:
        """Derivatives and verdict on the whole (theta, beta) vector."""
        model, d = self.model, self.theta.size
        lower = np.concatenate([model.layout.lower, np.full(self.beta.size, -np.inf)])
        scale = np.concatenate([model.theta_scale, np.ones(self.beta.size)])
        names = list(model.layout.names) + list(self.beta.index)

        def f(v):
            return model.laplace(v[:d], v[d:], self.u)[0]

        return diagnose(f, np.concatenate([self.theta, self.beta.to_numpy()]), lower,
                        names=names, scale=scale)

    @property
    def converged(self) -> bool:
        return bool(self.diagnostics.converged)

    @cached_property
    def beta_se(self) -> pd.Series:
        """Standard errors of beta from the Hessian of -2 log-likelihood in (theta, beta)
        (as lme4's default ``use.hessian = TRUE``); from the PIRLS system when the
        Hessian is not positive definite or a variance is on its bound."""
        d = self.diagnostics
        h = d.hessian
        if not self.singular and np.all(np.isfinite(h)):
            try:
                cov = 2.0 * np.linalg.inv(h)
                se = np.sqrt(np.diag(cov)[self.theta.size:])
                if np.all(np.isfinite(se)):
                    return pd.Series(se, index=self.beta.index, name="se")
            except np.linalg.LinAlgError:
                pass
        return self.beta_se_pirls

    @property
    def varcorr(self) -> pd.DataFrame:
        return pd.DataFrame(varcorr_rows(self.model.layout, self.theta, 1.0)).query(
            "grp != 'Residual'").reset_index(drop=True)

    def coef_table(self) -> pd.DataFrame:
        return pd.DataFrame({"Estimate": self.beta, "Std. Error": self.beta_se,
                             "z value": self.beta / self.beta_se})

    def refit(self, y: np.ndarray) -> GlmmFit:
        """Fit the same model to a new response, warm-started here."""
        return fit_glmm(self.model.with_response(y), start=(self.theta, self.beta.to_numpy()),
                        optimizer="L-BFGS-B")

    def to_dict(self) -> dict[str, Any]:
        return {"formula": self.model.design.formula.text, "family": self.model.family,
                "nobs": self.nobs, "loglik": self.loglik, "minus2loglik": self.objective,
                "deviance": self.deviance,
                "theta": dict(zip(self.model.layout.names, map(float, self.theta),
                                  strict=True)),
                "beta": {k: float(v) for k, v in self.beta.items()},
                "singular": self.singular, "converged": self.converged,
                "diagnostics": self.diagnostics.to_dict()}

    def summary(self) -> str:
        lines = [f"Generalized linear mixed model fit by maximum likelihood (Laplace), "
                 f"{self.model.family} (vctest)",
                 f"Formula: {self.model.design.formula.text}",
                 f"  -2 logLik {self.objective:.4f}   logLik {self.loglik:.4f}   deviance "
                 f"{self.deviance:.4f}", "", "Random effects:",
                 self.varcorr.to_string(index=False), "", "Fixed effects:",
                 self.coef_table().to_string(), ""]
        if self.singular:
            lines.append("boundary (singular) fit: a variance parameter is estimated at 0.")
        lines.append("Converged." if self.converged else
                     "NOT converged: " + "; ".join(self.diagnostics.messages))
        return "\n".join(lines)


def _beta_se(model, theta, beta, u) -> np.ndarray:
    """Standard errors from the joint PIRLS system at the estimate."""
    from vctest.kernels.pirls import family_terms

    a = model.a(theta)
    x = np.asarray(model.design.X, float)
    eta = model.offset + x @ beta + a @ u
    mu, mueta, var = (np.empty_like(eta) for _ in range(3))
    family_terms(model.fam, eta, model.y, model.weights, mu, mueta, var)
    w = model.weights * mueta * mueta / var
    g = np.hstack([a, x])
    m = (g.T * w) @ g
    m[np.arange(model.q), np.arange(model.q)] += 1.0
    try:
        return np.sqrt(np.diag(np.linalg.inv(m))[model.q:])
    except np.linalg.LinAlgError:  # a degenerate point; the diagnostics flag the fit
        return np.full(beta.size, np.nan)


GLMM_OPTIMIZERS = ("default", "L-BFGS-B", "Powell", "Nelder-Mead")


def fit_glmm(model: GeneralizedLinearMixedModel, *, start=None,
             optimizer: str = "default") -> GlmmFit:
    """Fit by the two-stage Laplace method (see the module docstring).

    ``optimizer`` picks the second stage: ``"default"`` is L-BFGS-B polished by
    Nelder-Mead; the others run alone (second opinions for ``vctest.check``).
    ``start`` is ``(theta, beta)``, skipping the first stage.
    """
    if optimizer not in GLMM_OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {GLMM_OPTIMIZERS}; got {optimizer!r}.")
    lay, scale = model.layout, model.theta_scale
    d, p = lay.size, model.design.p
    nev = 0
    state = {"u": np.zeros(model.q)}

    if start is None:
        beta0, _ = glm_fit(model.design, model.family, model.y)

        def stage1(xs):
            nonlocal nev
            nev += 1
            lap, u, b, _, ok = model.laplace(xs / scale, beta0, state["u"], joint=True)
            if ok:
                state["u"], state["b"] = u, b
            return lap if ok else 1e300

        th0 = lay.initial() / scale
        r1 = minimize(stage1, th0 * scale, method="L-BFGS-B",
                      bounds=[(lo * s if np.isfinite(lo) else None, None)
                              for lo, s in zip(lay.lower, scale, strict=True)])
        theta1 = np.maximum(r1.x / scale, lay.lower)
        _, u1, beta1, _, _ = model.laplace(theta1, beta0, None, joint=True)
        state["u"] = u1
    else:
        theta1, beta1 = (np.asarray(v, float) for v in start)

    # search beta in units of its column (root-mean-square), as theta
    xr = np.sqrt(np.mean(np.asarray(model.design.X, float) ** 2, axis=0))
    bscale = 1.0 / np.where(xr > 0, xr, 1.0)

    def stage2(v):
        nonlocal nev
        nev += 1
        theta = v[:d] / scale
        beta = v[d:] * bscale
        lap, u, _, _, ok = model.laplace(theta, beta, state["u"])
        if ok:
            state["u"] = u
        return lap if ok else 1e300

    bounds = [(lo * s if np.isfinite(lo) else None, None)
              for lo, s in zip(lay.lower, scale, strict=True)] + [(None, None)] * p
    v0 = np.concatenate([theta1 * scale, beta1 / bscale])
    options = {"L-BFGS-B": {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
               "Nelder-Mead": {"xatol": 1e-10, "fatol": 1e-12, "maxfev": 4000},
               "Powell": {"xtol": 1e-10, "ftol": 1e-13, "maxfev": 20_000}}
    methods = ("L-BFGS-B", "Nelder-Mead") if optimizer == "default" else (optimizer,)
    x = v0
    for method in methods:
        r2 = minimize(stage2, x, method=method, bounds=bounds, options=options[method])
        x = r2.x
    theta = np.maximum(r2.x[:d] / scale, lay.lower)
    beta = r2.x[d:] * bscale
    lap, u, _, dev, _ = model.laplace(theta, beta, None)
    names = list(model.design.fixed_names)
    return GlmmFit(model=model, theta=theta, beta=pd.Series(beta, index=names, name="beta"),
                   beta_se_pirls=pd.Series(_beta_se(model, theta, beta, u), index=names,
                                           name="se"),
                   objective=lap, deviance=dev, u=u, n_evals=nev,
                   optimizer_message=str(r2.message))
