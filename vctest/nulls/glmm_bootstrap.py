"""Parametric bootstrap of a likelihood-ratio statistic for two nested GLMMs.

The driver around :func:`vctest.kernels.glmm_bootstrap.glmm_bootstrap`: it
packs the fitted null model (a GLMM, or a GLM when the test removes the only
random-effects term) and the fitted full model, and runs the replicates with
the same machinery as the LMM bootstrap (:func:`vctest.nulls.bootstrap.run_replicates`:
batches, progress bar, sequential stopping, Dask, one seed per replicate) and
the same failure classification (:data:`vctest.nulls.bootstrap.FAILURE_KINDS`):
a refit that stops on the iteration limit, a failed line search or a PIRLS
failure, a non-finite objective, or a full fit worse than the null's even
after a restart from the null estimate, is a failed replicate -- recorded,
counted and reported, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vctest._rng import replicate_seeds
from vctest.kernels._jit import set_threads
from vctest.kernels.glmm_bootstrap import glmm_bootstrap, simulate_glmm_one
from vctest.model.glm import GeneralizedLinearModel, GlmFit
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, GlmmSettings
from vctest.nulls.bootstrap import (
    BootstrapRun,
    ReplicateRecord,
    classify,
    recheck,
    run_replicates,
)


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.array(a, dtype=float))


@dataclass(frozen=True, eq=False)
class GlmmGenerator:
    """A fitted null GLMM (or GLM) to simulate from and to refit.

    Attributes
    ----------
    model : GeneralizedLinearMixedModel or GeneralizedLinearModel
    theta : ndarray
        Empty for a GLM.
    beta : ndarray
    objective : float
        -2 log-likelihood of the fit to the data (Laplace for a GLMM).
    fixed_theta : bool
        True for a GLM (no variance parameters).
    """

    model: GeneralizedLinearMixedModel | GeneralizedLinearModel
    theta: np.ndarray
    beta: np.ndarray
    objective: float
    fixed_theta: bool = False

    @classmethod
    def from_fit(cls, fit: GlmmFit | GlmFit) -> GlmmGenerator:
        """From a fitted GLMM or GLM."""
        if isinstance(fit, GlmFit):
            return cls(model=fit.model, theta=np.zeros(0), beta=_f64(fit.beta),
                       objective=float(fit.objective), fixed_theta=True)
        return cls(model=fit.model, theta=_f64(fit.theta), beta=_f64(fit.beta),
                   objective=float(fit.objective))

    def eta_fixed(self) -> np.ndarray:
        """offset + X beta of the null model."""
        x = np.asarray(self.model.design.X, float)
        return _f64(self.model.offset + x @ self.beta)

    def linear_predictor(self, rng: np.random.Generator) -> np.ndarray:
        """offset + X beta + Z Lambda(theta) u with fresh ``u ~ N(0, I)`` (no u for a GLM)."""
        if self.fixed_theta:
            return self.eta_fixed()
        return self.model.draw_linear_predictor(self.theta, self.beta, rng)


@dataclass(frozen=True, eq=False)
class GlmmBootstrapTask:
    """Replicates ``start .. stop - 1`` of one GLMM bootstrap (picklable; see executor).

    Returns ``(objective, est_null, est_full, n_evals, status)`` as the LMM
    task does, with each model's estimates as theta followed by beta.
    """

    sim: tuple
    sim_ws: tuple
    data: tuple
    null: tuple
    null_ws: tuple
    full: tuple
    full_ws: tuple
    embed: np.ndarray
    ctrl: np.ndarray
    seed: np.random.SeedSequence
    threads: int | None = None

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        m = stop - start
        obj = np.empty((m, 2))
        th0 = np.empty((m, self.dims[0]))
        th1 = np.empty((m, self.dims[1]))
        nev = np.empty((m, 2), dtype=np.int64)
        status = np.empty((m, 2), dtype=np.int64)
        previous = set_threads(self.threads) if self.threads is not None else None
        try:
            with np.errstate(over="ignore"):
                glmm_bootstrap(replicate_seeds(self.seed, start, stop), self.sim, self.sim_ws,
                               self.data, self.null, self.null_ws, self.full, self.full_ws,
                               self.embed, self.ctrl, obj, th0, th1, nev, status)
        finally:
            if previous is not None:
                set_threads(previous)
        return obj, th0, th1, nev, status

    @property
    def dims(self) -> tuple[int, int]:
        """Columns of the null and full estimates (theta and beta)."""
        return (self.null[1].size + self.null[2].size, self.full[0].size + self.full[1].size)

    def simulate(self, index: int) -> np.ndarray:
        """The response replicate ``index`` draws (for checks and tests)."""
        with np.errstate(over="ignore"):
            return simulate_glmm_one(replicate_seeds(self.seed, index, index + 1)[0], self.sim,
                                     self.sim_ws)


def make_glmm_task(null: GlmmGenerator, full: GlmmFit, embed: np.ndarray, *,
                   seed_seq: np.random.SeedSequence, threads: int | None,
                   settings: GlmmSettings | None = None) -> GlmmBootstrapTask:
    """Pack a fitted null (GLMM or GLM) and full GLMM into a :class:`GlmmBootstrapTask`."""
    m1 = full.model
    settings = settings or full.settings
    if null.fixed_theta:
        sim_ws, sim_theta, draw = m1.ws, np.zeros(full.theta.size), 0
        null_ws = m1.ws
        null_pack = (_f64(null.model.design.X), np.zeros(0), null.beta.copy(), 1)
        embed = np.array([-2])
    else:
        sim_ws, sim_theta, draw = null.model.ws, null.theta.copy(), 1
        null_ws = null.model.ws
        null_pack = (_f64(null.model.design.X), null.theta.copy(), null.beta.copy(), 0)
    embed = np.ascontiguousarray(embed if embed.size else np.array([-1]), dtype=np.int64)
    sim = (null.eta_fixed(), _f64(sim_theta), _f64(m1.weights), m1.fam_code, m1.link_code,
           draw)
    data = (_f64(m1.weights), _f64(m1.offset), m1.fam_code, m1.link_code)
    full_pack = (_f64(full.theta), _f64(full.beta))
    return GlmmBootstrapTask(sim=sim, sim_ws=sim_ws, data=data, null=null_pack, null_ws=null_ws,
                             full=full_pack, full_ws=m1.ws, embed=embed,
                             ctrl=settings.as_array(), seed=seed_seq, threads=threads)


def run_glmm_bootstrap(
    null: GlmmGenerator,
    full: GlmmFit,
    embed: np.ndarray,
    *,
    nsim: int,
    seed_seq: np.random.SeedSequence,
    observed: float,
    threads: int | None = None,
    progress: bool | None = None,
    stop_alpha: float | None = None,
    stop_error: float = 1e-3,
    settings: GlmmSettings | None = None,
    backend: str = "local",
    client: Any = None,
    n_workers: int = 1,
) -> BootstrapRun:
    """Simulate ``nsim`` responses from ``null`` and refit both GLMMs to each.

    Arguments as :func:`vctest.nulls.bootstrap.run_bootstrap` (without
    ``reml``: GLMMs are fitted by maximum likelihood).

    Examples
    --------
    >>> import numpy as np, vctest
    >>> from vctest.model.glm import GeneralizedLinearModel, fit_glm
    >>> full = vctest.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                   "cbpp", family="binomial")
    >>> glm = fit_glm(full.model.without_random_effects())
    >>> run = run_glmm_bootstrap(GlmmGenerator.from_fit(glm), full, np.array([-2]), nsim=20,
    ...                          seed_seq=np.random.SeedSequence(1), observed=14.0)
    >>> run.replicates.statistic.shape, run.replicates.n_failed
    ((20,), 0)
    """
    local = backend == "local"
    task = make_glmm_task(null, full, embed, seed_seq=seed_seq,
                          threads=threads if local else None, settings=settings)
    raw = run_replicates(task, nsim=nsim, dims=task.dims,
                         observed=observed, null_fixed=False, threads=threads,
                         progress=progress, stop_alpha=stop_alpha, stop_error=stop_error,
                         backend=backend, client=client, n_workers=n_workers)
    obj, est0, est1, nev, status = raw.arrays
    d0, d1 = null.theta.size, full.theta.size
    # a GLM null refit (IRLS) that failed is not rechecked; GLMM refits are checked on
    # the whole (theta, beta) vector
    models = (None if null.fixed_theta else null.model, full.model)
    estimates, dims = (est0, est1), (d0, d1)

    def converged_at(which: int, y: np.ndarray, i: int) -> bool:
        if models[which] is None:
            return False
        est, d = estimates[which][i], dims[which]
        return models[which].with_response(y).diagnostics_at(est[:d], est[d:]).converged

    recheck(status, obj, task.simulate, converged_at)
    th0, th1 = est0[:, :d0], est1[:, :d1]
    # a GLM null is refitted by IRLS, which can fail too: its status counts
    stat, failure = classify(obj, status, False)
    null_singular = (np.zeros(obj.shape[0], dtype=bool) if null.fixed_theta
                     else null.model.layout.singular(th0, null.model.theta_scale))
    rec = ReplicateRecord(statistic=stat, objective=obj, theta_null=th0, theta_full=th1,
                          n_evals=nev, status=status, failure=failure,
                          full_singular=full.model.layout.singular(th1, full.model.theta_scale),
                          null_singular=null_singular)
    return BootstrapRun(replicates=rec, n_requested=nsim, stopped_early=raw.stopped_early,
                        seconds=raw.seconds, threads=raw.threads, interrupted=raw.interrupted)
