"""Generalised linear models (binomial, Poisson) and the checks GLMMs share with them.

:class:`GeneralizedLinearModel` is the model without random effects; :func:`fit_glm`
fits it by IRLS on the one engine (:func:`vctest.kernels.engine.fit_model` with
no random effects) and gives R's
``logLik`` -- the null model of a likelihood-ratio test of every variance
component of a GLMM (:mod:`vctest.model.glmm`).  The input checks here
(:func:`family_iv`, :func:`response_iv`, :func:`offset_iv`) serve both.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from vctest._stack import user_stacklevel
from vctest._tables import FitViews
from vctest.formula.design import Design
from vctest.formula.smooth_design import refuse_smooths
from vctest.kernels import types as codes
from vctest.kernels.engine import run_fit
from vctest.kernels.engine import tiered_inverse_link as inverse_link
from vctest.kernels.types import Data, Structure
from vctest.model.structure import EngineStart, EngineUnits, build_structure, f64, settings

__all__ = ["FAMILIES", "GeneralizedLinearModel", "GlmFit", "fit_glm"]

FAMILIES = {"binomial": codes.BINOMIAL, "poisson": codes.POISSON}
LINKS = {"logit": codes.LOGIT, "probit": codes.PROBIT, "cloglog": codes.CLOGLOG,
         "log": codes.LOG}
FAMILY_LINKS = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}


as_f64 = f64


def family_iv(family: object, link: object) -> tuple[str, str]:
    """Normalise ``family`` and ``link`` (lower case; the canonical link by default)."""
    if not isinstance(family, str):
        raise TypeError(f"`family` must be a string, 'binomial' or 'poisson'; got "
                        f"{type(family).__name__}.")
    fam = family.strip().lower()
    if fam not in FAMILY_LINKS:
        raise ValueError(f"`family` must be one of {tuple(FAMILY_LINKS)}; got {family!r}. "
                         "The GLMM engine covers the binomial and Poisson families.")
    if link is None:
        return fam, FAMILY_LINKS[fam][0]
    if not isinstance(link, str):
        raise TypeError(f"`link` must be a string or None; got {type(link).__name__}.")
    if link.strip().lower() not in FAMILY_LINKS[fam]:
        raise ValueError(f"`link` must be one of {FAMILY_LINKS[fam]} for the {fam} family; "
                         f"got {link!r}.")
    return fam, link.strip().lower()


def _integer_like(v: np.ndarray) -> bool:
    return bool(np.all(np.abs(v - np.round(v)) <= 1e-8 * np.maximum(1.0, np.abs(v))))


def response_iv(y: Any, weights: Any, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Check a response for ``family``; return ``(y, prior weights)``.

    Binomial: ``y`` in [0, 1] (0/1 or proportions with ``weights`` = trials,
    as ``cbind(successes, failures)`` gives).  Poisson: non-negative counts.
    Non-integer successes or counts are allowed with a warning (the
    log-likelihood then uses ``lgamma`` in place of factorials).
    """
    y = as_f64(y)
    if not np.all(np.isfinite(y)):
        raise ValueError("the response must be finite.")
    if family == "binomial":
        wt = np.ones_like(y) if weights is None else as_f64(weights)
        if np.any(wt < 0) or not np.all(np.isfinite(wt)):
            raise ValueError("binomial trials (prior weights) must be finite and >= 0.")
        if np.any((y < 0) | (y > 1)):
            raise ValueError(
                f"a binomial response must be 0/1 or a proportion in [0, 1]; got values in "
                f"[{y.min():g}, {y.max():g}]. For counts of successes out of trials write "
                "the response as cbind(successes, failures).")
        if weights is None and not _integer_like(y):
            raise ValueError(
                "the binomial response holds proportions (values between 0 and 1) but no "
                "numbers of trials. Give them: weights='n' (the trials of each row, as "
                "glmer's weights=) or the response cbind(successes, n - successes). "
                "(lme4's glmer() warns 'non-integer #successes' and fits one trial per row "
                "with the successes rounded in its likelihood, which is not the model of "
                "a proportion.)")
        if not (_integer_like(wt * y) and _integer_like(wt)):
            warnings.warn("the binomial response has non-integer counts of successes or "
                          "trials; the log-likelihood uses lgamma() in place of factorials.",
                          UserWarning, stacklevel=user_stacklevel())
        return y, wt
    if weights is not None:
        raise ValueError("a cbind(successes, failures) response needs family='binomial'; a "
                         "Poisson response is one column of counts.")
    if np.any(y < 0):
        raise ValueError(f"a Poisson response must be non-negative counts; got negative "
                         f"values (smallest {y.min():g}).")
    if not _integer_like(y):
        warnings.warn("the Poisson response has non-integer values; the log-likelihood uses "
                      "lgamma(y + 1) in place of y!, so it is not a Poisson likelihood.",
                      UserWarning, stacklevel=3)
    return y, np.ones_like(y)


def family_weights(design: Design, family: str) -> np.ndarray | None:
    """The prior weights a binomial / Poisson model of ``design`` uses (None: ones).

    Binomial: the trials of a ``cbind`` response times the ``weights=`` given
    (as R's binomial family), or the ``weights=`` alone (trials of a proportion
    response).  Poisson: prior weights are refused (a weighted Poisson
    likelihood has no response to simulate for a bootstrap).
    """
    if design.response_levels is not None and family != "binomial":
        raise ValueError(
            f"the response {design.formula.response.text!r} is a factor (levels "
            f"{list(design.response_levels)[:4]}); a {family} model needs counts. A factor "
            "response is read as failure (first level) / success by family='binomial'.")
    prior = design.prior_weights
    if prior is None:
        return design.weights
    if family != "binomial":
        raise ValueError(
            "`weights` are not supported for a Poisson model: a weighted Poisson "
            "likelihood (lme4 accepts it) has no response distribution to simulate from. "
            "Model exposure with offset=np.log(exposure) instead.")
    return prior if design.weights is None else design.weights * prior


def offset_iv(offset: Any, n: int) -> np.ndarray:
    """``offset`` as a float array of length ``n`` (zeros when None)."""
    if offset is None:
        return np.zeros(n)
    try:
        off = as_f64(offset)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`offset` must be numeric; got {type(offset).__name__}.") from exc
    if off.shape != (n,):
        raise ValueError(f"`offset` must have one value per row used ({n}); got shape "
                         f"{off.shape}. Subset it with design.row_index if rows were dropped.")
    if not np.all(np.isfinite(off)):
        raise ValueError("`offset` must be finite.")
    return off


def simulate_response(fam: int, link: int, eta: np.ndarray, weights: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Draw y | eta: binomial successes / trials (proportions) or Poisson counts."""
    mu = np.empty(eta.size)
    inverse_link(fam, link, f64(eta), mu)
    if fam == codes.POISSON:
        return rng.poisson(mu).astype(float)
    trials = np.round(weights).astype(np.int64)
    return rng.binomial(trials, mu) / np.where(trials > 0, trials, 1)


class EngineModel(EngineStart):
    """What the one engine needs of a binomial / Poisson model (shared by GLM and GLMM):
    X in the engine's units and the offset's residual on X (its projection is carried by
    the fixed effects, so shifting the offset by a constant changes nothing)."""

    design: Design
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    fam_code: int
    link_code: int

    @cached_property
    def units(self) -> EngineUnits:
        """The map between the user's fixed effects and the engine's."""
        return EngineUnits.of(np.asarray(self.design.X, dtype=float), orthonormal=False)

    @cached_property
    def _offset_split(self) -> tuple[np.ndarray, np.ndarray]:
        return self.units.project(self.offset)

    def data(self) -> Data:
        """The engine's :class:`~vctest.kernels.types.Data`."""
        n = self.y.size
        return Data(y=f64(self.y), wt=f64(self.weights), offset=self._offset_split[0],
                    fam=self.fam_code, link=self.link_code, reml=0, resp_scale=1.0,
                    resp_shift=np.zeros(n))

    def beta_to_engine(self, beta: np.ndarray) -> np.ndarray:
        """Engine coefficients of user coefficients ``beta`` (non-finite stays non-finite)."""
        beta = np.asarray(beta, dtype=float)
        if not np.all(np.isfinite(beta)):
            return np.full(beta.size, np.nan)
        return self.units.to_engine(beta + self._offset_split[1])

    def beta_to_user(self, beta_engine: np.ndarray) -> np.ndarray:
        """User coefficients of engine coefficients."""
        return self.units.to_user(np.asarray(beta_engine, dtype=float)) - self._offset_split[1]

    def criterion_shift(self, reml: bool = False) -> float:
        """0: the Laplace value does not depend on the units of X."""
        return 0.0


class FamilyCodes:
    """The kernels' family and link codes of a model with ``family`` and ``link``."""

    family: str
    link: str

    @property
    def fam_code(self) -> int:
        """Family code of the kernels."""
        return FAMILIES[self.family]

    @property
    def link_code(self) -> int:
        """Link code of the kernels."""
        return LINKS[self.link]


@dataclass(frozen=True, eq=False)
class GeneralizedLinearModel(FamilyCodes, EngineModel):
    """A GLM (no random effects): design, family, link, response, weights, offset."""

    design: Design
    family: str
    link: str
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_design(cls, design: Design, family: str, link: str | None = None,
                    offset: Any = None) -> GeneralizedLinearModel:
        """Check the response against ``family`` and keep the arrays.

        Random-effects terms of ``design`` are ignored.

        Examples
        --------
        >>> from vctest import datasets
        >>> from vctest.formula import build_design
        >>> d = build_design("cbind(incidence, size - incidence) ~ period", datasets.load("cbpp"))
        >>> round(fit_glm(GeneralizedLinearModel.from_design(d, "binomial")).loglik, 4)
        -99.0292
        """
        refuse_smooths(design, "a GLM")
        family, link = family_iv(family, link)
        y, wt = response_iv(design.y, family_weights(design, family), family)
        return cls(design=design, family=family, link=link, y=y, weights=wt,
                   offset=offset_iv(offset, design.n))

    @property
    def x(self) -> np.ndarray:
        """The fixed-effect matrix (C-contiguous)."""
        return as_f64(self.design.X)

    @cached_property
    def structure(self) -> Structure:
        """The engine's structure (no random effects)."""
        return build_structure((), self.units.x)

    layout = None

    def with_response(self, y: Any) -> GeneralizedLinearModel:
        """The same model for a new response."""
        y = as_f64(y)
        if y.shape != (self.design.n,):
            raise ValueError(f"`y` must have shape ({self.design.n},); got {y.shape}.")
        response_iv(y, self.weights if self.family == "binomial" else None, self.family)
        return dataclasses.replace(self, y=y)


@dataclass(frozen=True, eq=False, repr=False)
class GlmFit(FitViews):
    """A fitted GLM.

    Attributes
    ----------
    model : GeneralizedLinearModel
        The model that was fitted (design, family, link, weights, offset).
    beta, beta_se : pandas.Series
        Coefficients and their standard errors (from X'WX).
    objective : float
        -2 log-likelihood (R's ``-2 * logLik``).
    deviance : float
        Residual deviance (R's ``deviance``).
    n_iter : int
        IRLS iterations used.
    converged : bool
        IRLS stopped normally (the coefficients settled).
    """

    model: GeneralizedLinearModel
    beta: pd.Series
    beta_se: pd.Series
    objective: float
    deviance: float
    n_iter: int
    converged: bool

    @property
    def loglik(self) -> float:
        """R's ``logLik``."""
        return -0.5 * self.objective

    @property
    def df(self) -> int:
        """Number of parameters."""
        return self.model.design.p

    def refit(self, y: Any) -> GlmFit:
        """Fit the same model to a new response (warm start here)."""
        return fit_glm(self.model.with_response(y), start=self.beta.to_numpy())

    def coef_table(self) -> pd.DataFrame:
        """Coefficients: Estimate, Std. Error, z value, Pr(>|z|)."""
        from scipy.stats import norm

        z = self.beta / self.beta_se
        return pd.DataFrame({"Estimate": self.beta, "Std. Error": self.beta_se, "z value": z,
                             "Pr(>|z|)": 2.0 * norm.sf(np.abs(z))})

    def summary(self, max_rows: int | None = None) -> str:
        """A short text summary (R's ``glm`` print: family, criterion, coefficients)."""
        from vctest._tables import clip_rows

        m = self.model
        table = self.coef_table().to_string(float_format=lambda v: f"{v:.5g}").splitlines()
        lines = ["Generalized linear model fit by maximum likelihood (vctest)",
                 f" Family: {m.family}  ( {m.link} )", f"Formula: {m.design.formula.text}",
                 f"  -2 logLik {self.objective:.4f}   logLik {self.loglik:.4f}   df {self.df}"
                 f"   deviance {self.deviance:.4f}", f"Number of obs: {m.design.n}", "",
                 "Coefficients:", table[0], *clip_rows(table[1:], max_rows,
                                                       "fit.coef_table()"), "",
                 f"{'Converged' if self.converged else 'NOT converged'} "
                 f"({self.n_iter} IRLS iterations)."]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"formula": self.model.design.formula.text, "family": self.model.family,
                "link": self.model.link, "loglik": self.loglik, "minus2loglik": self.objective,
                "deviance": self.deviance, "beta": {k: float(v) for k, v in self.beta.items()},
                "beta_se": {k: float(v) for k, v in self.beta_se.items()},
                "converged": self.converged, "n_iter": self.n_iter}


def fit_glm(model: GeneralizedLinearModel, *, start: Any = None, maxit: int = 100,
            tol: float = 1e-12) -> GlmFit:
    """Fit a GLM by IRLS with step halving (Numba).

    Parameters
    ----------
    model : GeneralizedLinearModel
    start : array_like, optional
        Starting coefficients (default: R's ``mustart``).
    maxit : int, default 100
    tol : float, default 1e-12
        Stop when the next step changes no coefficient by more than
        ``tol * (1 + |beta|)``.

    Returns
    -------
    GlmFit

    Examples
    --------
    >>> from vctest import datasets
    >>> from vctest.formula import build_design
    >>> d = build_design("TICKS ~ YEAR", datasets.load("grouseticks"))
    >>> fit = fit_glm(GeneralizedLinearModel.from_design(d, "poisson"))
    >>> fit.converged, round(float(fit.beta["YEAR96"]), 4)
    (True, 0.6235)
    """
    if not isinstance(model, GeneralizedLinearModel):
        raise TypeError(f"`model` must be a GeneralizedLinearModel; got "
                        f"{type(model).__name__}.")
    p = model.design.p
    b0 = np.full(p, np.nan) if start is None else as_f64(start)
    if b0.shape != (p,):
        raise ValueError(f"`start` must have {p} entries; got shape {b0.shape}.")
    ctl = settings(maxiter=0, gtol=0.0, ftol=0.0, xtol=0.0, pirls_maxit=int(maxit),
                   pirls_tol=float(tol))
    start_ = model.start(np.zeros(0), model.beta_to_engine(b0))
    _, beta_e, _, lxx, m2ll, dev, iters, status = run_fit(model.structure, model.data(), ctl,
                                                            start_)
    if status == codes.PIRLS_FAILED or not math.isfinite(dev):
        raise FloatingPointError("the GLM fit failed: X'WX is not positive definite "
                                 "(complete separation or a degenerate design).")
    if status == 1:  # the deviance converged, a coefficient did not: separation
        warnings.warn("the GLM's deviance converged while a coefficient diverged (complete "
                      "or quasi-complete separation: fitted probabilities 0 or 1, or means "
                      "0); the log-likelihood is at its supremum, the coefficients are not "
                      "estimable.", UserWarning, stacklevel=2)
    beta = model.beta_to_user(beta_e)
    a_linv = model.units.a @ np.linalg.inv(np.tril(lxx)).T  # Cov(beta) = A (L L')^-1 A'
    se = np.sqrt(np.sum(a_linv * a_linv, axis=1))
    names = list(model.design.fixed_names)
    return GlmFit(model=model, beta=pd.Series(beta, index=names, name="beta"),
                  beta_se=pd.Series(se, index=names, name="se"), objective=float(m2ll),
                  deviance=float(dev), n_iter=int(iters), converged=status in (0, 1))

