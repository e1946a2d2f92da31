"""Binomial and Poisson models with smooth terms: the Laplace approximation on a dense system.

The model of :mod:`vctest.model.smooth_fit` with a binomial (logit link) or
Poisson (log link) response, ``b ~ N(0, theta^2 I)`` per component, fitted as
lme4's ``glmer`` (and so ``gamm4``) fits it, by maximum likelihood under the
Laplace approximation (``nAGQ = 1``):

    -2 log L(theta, beta) ~ -2 sum log p(y | mu(u*)) + ||u*||^2 + log|L|^2,

``u*`` the conditional mode (Newton steps with step halving, the canonical
link's exact Hessian) and ``L L' = Lambda Z'WZ Lambda + I``.  theta and beta
are searched jointly by L-BFGS-B from a GLM start, restarted until a restart
gains nothing, then polished by Nelder-Mead.  A bootstrap refits both models
to responses simulated from the null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, gammaln

from vctest.formula.design import Design
from vctest.model.glm import family_iv, family_weights, response_iv
from vctest.model.smooth_fit import SmoothFit, Solution, components, stacked

__all__ = ["SmoothGlmmFit", "SmoothGlmmModel", "fit_smooth_glmm"]


class SmoothGlmmModel:
    """A binomial (logit) or Poisson (log) model with dense random-effects components.

    Parameters
    ----------
    design : Design
    family : {"binomial", "poisson"}
    drop : str, optional
        A component to leave out (the null model of a test).
    y : array_like, optional
        A response to use instead of the design's (a bootstrap replicate).
    """

    def __init__(self, design: Design, family: str, drop: str | None = None,
                 y: Any = None) -> None:
        family, link = family_iv(family, None)
        self.family, self.link = family, link
        self.design = design
        self.drop = drop
        if design.prior_weights is not None:
            raise ValueError("prior weights with smooth terms are not supported; fit the model "
                             "without `weights` (a cbind(successes, failures) response is).")
        self.y, self.wt = response_iv(design.y if y is None else y,
                                      family_weights(design, family), family)
        self.components = components(design, drop)
        self.Z, self.sizes = stacked(self.components, design.n)
        self._const = self._saturated_constant()

    @property
    def labels(self) -> tuple[str, ...]:
        """The components' labels."""
        return tuple(c.label for c in self.components)

    def _saturated_constant(self) -> float:
        """The part of -2 log p(y) that does not depend on mu (log binomial coefficients,
        log y!)."""
        y, wt = self.y, self.wt
        if self.family == "binomial":
            k = wt * y
            return -2.0 * float(np.sum(gammaln(wt + 1) - gammaln(k + 1) - gammaln(wt - k + 1)))
        return 2.0 * float(np.sum(gammaln(y + 1)))

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Inverse link."""
        return expit(eta) if self.family == "binomial" else np.exp(eta)

    def minus2_loglik(self, eta: np.ndarray) -> float:
        """-2 sum log p(y | eta) (with the constants, as R's ``aic``)."""
        y, wt = self.y, self.wt
        if self.family == "binomial":
            # log p = k eta - m log(1 + e^eta) + log C(m, k)
            ll = wt * (y * eta - np.logaddexp(0.0, eta))
        else:
            ll = y * eta - np.exp(eta)
        return -2.0 * float(np.sum(ll)) + self._const

    def _weights(self, mu: np.ndarray) -> np.ndarray:
        return self.wt * mu * (1.0 - mu) if self.family == "binomial" else mu

    def modes(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None
              ) -> tuple[float, np.ndarray]:
        """``(Laplace -2 log L, u*)`` at theta and beta."""
        lam = np.repeat(np.asarray(theta, dtype=float), self.sizes)
        zl = self.Z * lam
        fixed = self.design.X @ beta
        u = np.zeros(lam.size) if u0 is None else u0.copy()

        def penalised(u: np.ndarray) -> float:
            eta = fixed + zl @ u
            if self.family == "poisson" and np.max(eta) > 700.0:  # exp() would overflow
                return math.inf
            return self.minus2_loglik(eta) + float(u @ u)

        current = penalised(u)
        if not math.isfinite(current):
            u = np.zeros(lam.size)
            current = penalised(u)
            if not math.isfinite(current):
                return math.inf, u
        for _ in range(200):
            mu = self.mean(fixed + zl @ u)
            w = self._weights(mu)
            grad = zl.T @ (self.wt * (self.y - mu) if self.family == "binomial"
                           else self.y - mu) - u
            hess = (zl.T * w) @ zl
            hess[np.diag_indices_from(hess)] += 1.0
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while True:
                trial = penalised(u + t * step)
                if trial <= current or t < 1e-10:
                    break
                t *= 0.5
            if trial > current:
                break
            u, previous, current = u + t * step, current, trial
            if previous - current < 1e-12 * (1.0 + abs(current)):
                break
        mu = self.mean(fixed + zl @ u)
        hess = (zl.T * self._weights(mu)) @ zl
        hess[np.diag_indices_from(hess)] += 1.0
        sign, logdet = np.linalg.slogdet(hess)
        if sign <= 0:
            return math.inf, u
        return current + logdet, u

    def objective(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """The Laplace approximation of -2 log-likelihood (lme4's ``deviance``)."""
        return self.modes(theta, beta)[0]

    def glm_start(self) -> np.ndarray:
        """beta of the GLM (no random effects), by Newton's method."""
        x = self.design.X
        beta = np.zeros(x.shape[1])
        if self.family == "poisson":
            beta[0] = math.log(max(float(np.mean(self.y)), 1e-8)) if np.allclose(
                x[:, 0], 1.0) else 0.0
        for _ in range(100):
            mu = self.mean(x @ beta)
            w = self._weights(mu)
            score = x.T @ (self.wt * (self.y - mu) if self.family == "binomial"
                           else self.y - mu)
            step = np.linalg.lstsq((x.T * w) @ x, score, rcond=None)[0]
            beta = beta + step
            if np.max(np.abs(step)) < 1e-12 * (1 + np.max(np.abs(beta))):
                break
        if not np.all(np.isfinite(beta)):
            raise ValueError("the GLM start of the model cannot be fitted: the fixed effects "
                             "separate the response completely; simplify them.")
        return beta


def fit_smooth_glmm(design: Design, family: str, *, drop: str | None = None,
                    y: Any = None) -> SmoothGlmmFit:
    """Fit a binomial or Poisson model with smooth terms (Laplace, ML).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from vctest.formula import build_design
    >>> rng = np.random.default_rng(2)
    >>> x = rng.uniform(size=200)
    >>> d = pd.DataFrame({"x": x, "y": rng.poisson(np.exp(1 + np.sin(6 * x)))})
    >>> m = fit_smooth_glmm(build_design("y ~ s(x, bs='cr')", d), "poisson")
    >>> m.converged, bool(m.theta[0] > 0)
    (True, True)
    """
    model = SmoothGlmmModel(design, family, drop, y)
    beta0 = model.glm_start()
    k, p = len(model.components), design.p
    if k == 0:
        f = model.objective(np.zeros(0), beta0)
        sol = Solution(f, beta0, np.zeros(0), math.nan, 1.0)
        return SmoothGlmmFit(model=model, reml=False, theta=np.zeros(0), solution=sol,
                             converged=True, sweeps=0)
    state = {"u": None}

    def f(v: np.ndarray) -> float:
        val, u = model.modes(v[:k], v[k:], state["u"])
        if math.isfinite(val):
            state["u"] = u
        return val

    start = np.concatenate([np.ones(k), beta0])
    bounds = [(0.0, 1e3)] * k + [(None, None)] * p
    best = minimize(f, start, method="L-BFGS-B", bounds=bounds,
                    options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000})
    for _ in range(3):  # restarts renew L-BFGS-B's curvature; stop when one gains nothing
        again = minimize(f, best.x, method="L-BFGS-B", bounds=bounds,
                         options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000})
        gained = best.fun - again.fun
        if again.fun <= best.fun:
            best = again
        if gained < 1e-10:
            break
    # finite-difference gradients stall along flat ridges (two variances trading off):
    # a Nelder-Mead polish (|theta|: the criterion is even in theta)
    # (modes from u = 0 each time: a warm start makes the criterion jitter at 1e-12)
    polish = minimize(lambda v: model.objective(np.abs(v[:k]), v[k:]), best.x,
                      method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-11,
                                                     "maxfev": 4000, "adaptive": True})
    if polish.fun < model.objective(best.x[:k], best.x[k:]):
        best.x, best.fun = np.concatenate([np.abs(polish.x[:k]), polish.x[k:]]), polish.fun
    theta, beta = np.maximum(best.x[:k], 0.0), best.x[k:]
    value, u = model.modes(theta, beta, state["u"])
    lam = np.repeat(theta, model.sizes)
    sol = Solution(value, beta, lam * u, math.nan, 1.0)
    return SmoothGlmmFit(model=model, reml=False, theta=theta, solution=sol,
                         converged=bool(best.success), sweeps=int(best.nit))


@dataclass(frozen=True, eq=False, repr=False)
class SmoothGlmmFit(SmoothFit):
    """A binomial or Poisson model with smooth terms fitted by the Laplace approximation.

    As :class:`~vctest.model.smooth_fit.SmoothFit`, on the link scale: ``theta``
    are the components' standard deviations, ``objective`` is lme4's deviance
    (-2 log-likelihood, Laplace), ``smooth()`` and ``plot_smooth()`` draw the
    smooth on the link scale, ``fitted`` and ``predict()`` give the mean.
    """

    @property
    def family(self) -> str:
        """``"binomial"`` or ``"poisson"``."""
        return self.model.family

    @property
    def sigma(self) -> float:
        """1: the components' variances are theta^2 (no residual scale)."""
        return 1.0

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components (link scale)."""
        return pd.DataFrame([{"grp": lab, "vcov": t**2, "sdcor": t}
                             for lab, t in zip(self.model.labels, self.theta, strict=True)])

    @property
    def linear_predictor(self) -> np.ndarray:
        """``X beta + Z b`` on the rows used."""
        return self.design.X @ self.solution.beta + self.model.Z @ self.solution.b

    @property
    def fitted(self) -> np.ndarray:
        """Fitted means (probabilities or rates)."""
        return self.model.mean(self.linear_predictor)

    @property
    def residuals(self) -> np.ndarray:
        """Working residuals ``(y - mu) / (dmu/deta)`` (partial residuals on the link scale)."""
        mu = self.fitted
        deriv = mu * (1.0 - mu) if self.family == "binomial" else mu
        return (self.model.y - mu) / deriv

    @cached_property
    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Bayesian covariance of (beta, b) at the mode: (C'WC + P)^-1."""
        m, th = self.model, self.theta
        keep = np.repeat(th > 0, m.sizes)
        lam = np.repeat(th, m.sizes)[keep]
        p = self.design.p
        c = np.hstack([self.design.X, m.Z[:, keep]])
        mu = self.fitted
        w = m.wt * mu * (1.0 - mu) if self.family == "binomial" else mu
        prec = (c.T * w) @ c
        prec[p:, p:] += np.diag(1.0 / lam**2)
        return np.linalg.inv(prec), keep

    @property
    def edf(self) -> float:
        """Effective degrees of freedom: trace of (C'WC + P)^-1 C'WC."""
        cov, keep = self._posterior
        c = np.hstack([self.design.X, self.model.Z[:, keep]])
        mu = self.fitted
        w = self.model.wt * mu * (1.0 - mu) if self.family == "binomial" else mu
        return float(np.sum(cov * ((c.T * w) @ c)))

    def predict(self, newdata: pd.DataFrame | None = None, *, re_form: Any = None,
                allow_new_levels: bool = False, type: str = "response") -> np.ndarray:
        """Predicted means (``type="response"``) or linear predictors (``"link"``)."""
        if type not in ("response", "link"):
            raise ValueError(f"`type` must be 'response' or 'link'; got {type!r}.")
        eta = super().predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels)
        return eta if type == "link" else self.model.mean(eta)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the fit."""
        out = super().to_dict()
        out.update(family=self.family, link=self.model.link, objective_name="deviance",
                   sigma=None)
        return out

    def __repr__(self) -> str:
        comps = ", ".join(f"{lab} sd {t:.4g}"
                          for lab, t in zip(self.model.labels, self.theta, strict=True))
        return (f"<SmoothGlmmFit {self.design.formula.text!r} ({self.family}): deviance "
                f"{self.objective:.4f}, {comps}, n = {self.design.n}>")

    def summary(self) -> str:
        """A text summary (as ``SmoothFit.summary``, Laplace fit)."""
        text = super().summary()
        rest = text.split("\n", 1)[1]
        return (f"Generalized additive mixed model ({self.family}, {self.model.link} link) fit "
                "by maximum likelihood (Laplace approximation, as gamm4/glmer)\n" + rest)
