"""Parametric bootstrap of a variance component in a GLMM (binomial, Poisson).

Replicate ``i`` draws from its own stream (``SeedSequence`` child ``i``):
random effects u ~ N(0, I) for the fitted null model, then responses
(binomial successes out of the trials, or Poisson counts) given the linear
predictor.  Both models are refitted with warm starts; a refit that raises
or returns a non-finite objective is a failure, recorded and excluded.  The
task is picklable and chunked, so it runs locally or on Dask with the same
numbers (see :mod:`vctest.nulls.executor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vctest._pvalue import ZERO_TOL
from vctest.model.laplace import GeneralizedLinearMixedModel, GlmmFit, fit_glmm, glm_fit


@dataclass(frozen=True, eq=False)
class GlmmBootstrapTask:
    """Replicates ``start .. stop - 1``: returns (objectives (m, 2), failed (m,))."""

    full: GlmmFit
    null: GlmmFit | None
    null_design: object
    family: str
    seed: np.random.SeedSequence

    def _simulate(self, rng: np.random.Generator) -> np.ndarray:
        model = self.full.model
        if self.null is None:
            beta, _ = glm_fit(self.null_design, self.family)
            eta = np.asarray(self.null_design.X, float) @ beta
        else:
            m0 = self.null.model
            u = rng.standard_normal(m0.q)
            eta = (np.asarray(m0.design.X, float) @ self.null.beta.to_numpy()
                   + m0.a(self.null.theta) @ u)
        if self.family == "binomial":
            mu = 1.0 / (1.0 + np.exp(-eta))
            n = model.weights
            return rng.binomial(n.astype(np.int64), mu) / np.where(n > 0, n, 1.0)
        return rng.poisson(np.exp(eta)).astype(float)

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """(objectives (m, 2), failed (m,), full-model theta (m, d), full singular (m,),
        null singular (m,))."""
        obj = np.full((stop - start, 2), np.nan)
        failed = np.zeros(stop - start, dtype=bool)
        theta = np.full((stop - start, self.full.theta.size), np.nan)
        sing1 = np.zeros(stop - start, dtype=bool)
        sing0 = np.zeros(stop - start, dtype=bool)
        for i in range(start, stop):
            rng = np.random.default_rng(np.random.SeedSequence(
                self.seed.entropy, spawn_key=(*self.seed.spawn_key, i)))
            y = self._simulate(rng)
            try:
                if self.null is None:
                    _, f0 = glm_fit(self.null_design, self.family, y)
                else:
                    r0 = self.null.refit(y)
                    f0 = r0.objective
                    sing0[i - start] = r0.singular
                r1 = self.full.refit(y)
                f1 = r1.objective
            except (FloatingPointError, ValueError, np.linalg.LinAlgError):
                failed[i - start] = True
                continue
            obj[i - start] = (f0, f1)
            theta[i - start] = r1.theta
            sing1[i - start] = r1.singular
            failed[i - start] = not (np.isfinite(f0) and np.isfinite(f1))
        return obj, failed, theta, sing1, sing0


def statistics(obj: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """2 (l1 - l0) per replicate: NaN where failed; rounding below zero set to 0."""
    stat = obj[:, 0] - obj[:, 1]
    worse = stat < -1e-6 * (1.0 + np.abs(obj[:, 0]))
    stat = np.where(stat < ZERO_TOL, 0.0, stat)
    stat[failed | worse] = np.nan
    return stat


def glmm_model(design, family: str) -> GeneralizedLinearMixedModel:
    """The GLMM of a design (checked against the family)."""
    return GeneralizedLinearMixedModel.from_design(design, family)


__all__ = ["GlmmBootstrapTask", "fit_glmm", "glmm_model", "statistics"]
