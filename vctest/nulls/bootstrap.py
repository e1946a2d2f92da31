"""Parametric bootstrap of a likelihood-ratio statistic for two nested LMMs.

The driver around :func:`vctest.kernels.bootstrap.lmm_bootstrap`: it packs the
two models, cuts the replicates into batches (for the progress bar and for
sequential stopping), seeds every replicate from one
:class:`numpy.random.SeedSequence` (replicate ``i`` always gets the same seed,
whatever the batches or threads), and classifies failed refits.

A replicate *fails* when a refit ends unconverged (iteration limit, failed
line search), the objective is not finite, or the full model's fit is worse
than the null's beyond rounding even after a restart from the null estimate
(the full model contains the null, so this can only be an optimiser
failure).  Failures are recorded, never fatal.  A statistic within rounding
below zero is set to zero, not dropped.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass

import numba
import numpy as np

from vctest._pvalue import ZERO_TOL
from vctest._rng import replicate_seeds
from vctest.diagnostics import diagnose
from vctest.formula.design import Design, RandomBlock
from vctest.formula.parse import random_term_from_text
from vctest.kernels._jit import set_threads
from vctest.kernels.bootstrap import lmm_bootstrap, simulate_one
from vctest.model.fit import MAX_EDGE_RESTARTS, LmmFit, OptimizerSettings
from vctest.model.lmm import LinearMixedModel
from vctest.nulls.approximations import decision_is_clear, looks, per_look_error

#: Failure codes of a replicate (index = code).
FAILURE_KINDS = (
    "ok",
    "null refit not converged",
    "full refit not converged",
    "objective not finite",
    "full fit worse than null fit",
)

#: Status of a refit the optimiser flagged but the diagnostics found converged.
RECHECKED = 10

#: A statistic this far below zero (relative to 1 + |objective|) is rounding.
NEGATIVE_TOL = 1e-7

#: Runs expected to take longer than this show a progress bar (when on a terminal).
PROGRESS_AFTER_SECONDS = 2.0


@dataclass(frozen=True, eq=False)
class GeneratingModel:
    """A fitted null model to simulate from and to refit.

    Attributes
    ----------
    model : LinearMixedModel
        The model (a linear model is a mixed model with one zero column whose
        theta is fixed at 0).
    theta : ndarray
    sigma : float
    mu : ndarray
        Fitted fixed part X beta.
    objective : float
        REML criterion or ML deviance of the fit to the data.
    fixed_theta : bool
        True for a linear model (nothing to optimise).
    """

    model: LinearMixedModel
    theta: np.ndarray
    sigma: float
    mu: np.ndarray
    objective: float
    fixed_theta: bool = False

    @classmethod
    def from_fit(cls, fit: LmmFit) -> GeneratingModel:
        """From a fitted mixed model."""
        mu = np.asarray(fit.model.design.X, float) @ fit.beta.to_numpy()
        return cls(model=fit.model, theta=fit.theta.copy(), sigma=fit.sigma, mu=mu,
                   objective=fit.objective)

    @classmethod
    def linear_model(cls, design: Design, reml: bool) -> GeneratingModel:
        """From a design with no random effects, fitted by least squares."""
        dummy_term = random_term_from_text("(1 | .vctest_none)")[0]
        dummy = RandomBlock(term=dummy_term, levels=("all",),
                            codes=np.zeros(design.n, dtype=np.int64),
                            columns=np.zeros((design.n, 1)), column_names=("(Intercept)",))
        model = LinearMixedModel.from_design(dataclasses.replace(design, blocks=(dummy,)))
        theta = np.zeros(1)
        beta, _, pwrss = model.fixed_effects(theta, reml)
        dof = design.n - design.p if reml else design.n
        return cls(model=model, theta=theta, sigma=math.sqrt(pwrss / dof),
                   mu=np.asarray(design.X, float) @ beta,
                   objective=model.objective(theta, reml), fixed_theta=True)


@dataclass(frozen=True, eq=False)
class ReplicateRecord:
    """Per-replicate outcome of a bootstrap run (arrays of length ``n_run``).

    Attributes
    ----------
    statistic : ndarray
        2 (l1 - l0) of each replicate; NaN where the replicate failed.
    objective : ndarray, shape (n, 2)
        Objective of the null and full refits.
    theta_null, theta_full : ndarray
        Estimates of the refits.
    n_evals, status : ndarray, shape (n, 2)
        Objective evaluations and optimiser status codes
        (:data:`vctest.kernels.optimize.STATUS_TEXT`; :data:`RECHECKED` for a
        refit the optimiser flagged but the diagnostics found converged).
    failure : ndarray of int8
        Code into :data:`FAILURE_KINDS` (0 = ok).
    full_singular, null_singular : ndarray of bool
        The refit has a variance parameter at its bound.
    """

    statistic: np.ndarray
    objective: np.ndarray
    theta_null: np.ndarray
    theta_full: np.ndarray
    n_evals: np.ndarray
    status: np.ndarray
    failure: np.ndarray
    full_singular: np.ndarray
    null_singular: np.ndarray

    @property
    def n_failed(self) -> int:
        """Replicates that failed."""
        return int(np.count_nonzero(self.failure))

    def summary(self, observed: float) -> dict[str, float | int]:
        """How many refits hit the boundary or needed a second look, and whether
        leaving out the second-look replicates moves the p-value."""
        ok = self.failure == 0
        rechecked = np.any(self.status == RECHECKED, axis=1) & ok
        kept = ok & ~rechecked
        tie = 1e-9 * max(1.0, abs(observed))
        k = int(np.count_nonzero(self.statistic[kept] >= observed - tie))
        return {
            "full_refits_at_boundary": int(np.count_nonzero(self.full_singular & ok)),
            "null_refits_at_boundary": int(np.count_nonzero(self.null_singular & ok)),
            "refits_rechecked": int(np.count_nonzero(rechecked)),
            "pvalue_without_rechecked": (1 + k) / (1 + int(kept.sum())),
        }

    def failure_counts(self) -> dict[str, int]:
        """Failed replicates by kind."""
        counts = np.bincount(self.failure, minlength=len(FAILURE_KINDS))
        return {kind: int(c) for kind, c in zip(FAILURE_KINDS[1:], counts[1:], strict=True)
                if c}


@dataclass(frozen=True, eq=False)
class BootstrapRun:
    """What a bootstrap run produced and how it ran."""

    replicates: ReplicateRecord
    n_requested: int
    stopped_early: bool
    seconds: float
    threads: int


def _model_tuples(gen_model: LinearMixedModel, theta_start: np.ndarray, reml: bool,
                  fixed: bool):
    st = gen_model.structure
    lay = gen_model.layout
    ws = gen_model.workspace(reml)
    resp = (st.codes, st.zcols, st.zoff, np.ascontiguousarray(gen_model.design.X, float),
            lay.lower, lay.is_diagonal.copy(), fixed)
    return ws, resp, np.ascontiguousarray(theta_start, dtype=float)


def _classify(obj, status, null_fixed) -> tuple[np.ndarray, np.ndarray]:
    ok_status = (status == 0) | (status == 1) | (status == RECHECKED)
    failure = np.zeros(obj.shape[0], dtype=np.int8)
    stat = obj[:, 0] - obj[:, 1]
    tol = NEGATIVE_TOL * (1.0 + np.abs(obj[:, 0]))
    failure[stat < -tol] = 4
    failure[~ok_status[:, 1]] = 2
    if not null_fixed:
        failure[~ok_status[:, 0]] = 1
    failure[~np.all(np.isfinite(obj), axis=1)] = 3
    stat = np.where(stat < ZERO_TOL, 0.0, stat)
    stat[failure != 0] = np.nan
    return stat, failure


def run_bootstrap(
    null: GeneratingModel,
    full: LmmFit,
    embed: np.ndarray,
    *,
    reml: bool,
    nsim: int,
    seed_seq: np.random.SeedSequence,
    observed: float,
    threads: int | None = None,
    progress: bool | None = None,
    stop_alpha: float | None = None,
    stop_error: float = 1e-3,
    settings: OptimizerSettings | None = None,
) -> BootstrapRun:
    """Simulate ``nsim`` responses from ``null`` and refit both models to each.

    Parameters
    ----------
    null : GeneratingModel
        The fitted null model (simulated from, then refitted).
    full : LmmFit
        The fitted full model (refitted from its estimate).
    embed : ndarray of int64
        Null theta positions in the full theta (see
        :func:`vctest.model.nesting.nesting`); ``[-1]`` if not available.
    reml : bool
        Compare REML criteria (same fixed effects) or ML deviances.
    nsim : int
        Replicates (the maximum, with sequential stopping).
    seed_seq : numpy.random.SeedSequence
    observed : float
        The observed statistic (for sequential stopping).
    threads : int, optional
        Numba threads (default all).
    progress : bool, optional
        Show a tqdm bar; ``None`` shows one on a terminal when the run is
        expected to take more than a couple of seconds.
    stop_alpha, stop_error : float, optional
        Sequential stopping: stop once ``p < stop_alpha`` or ``p > stop_alpha``
        is settled with error ``stop_error`` (see
        :mod:`vctest.nulls.approximations`).
    settings : OptimizerSettings, optional

    Returns
    -------
    BootstrapRun
    """
    settings = settings or full.settings
    opt = np.array([settings.maxiter, settings.gtol, settings.ftol, settings.xtol,
                    MAX_EDGE_RESTARTS], dtype=float)
    m0 = null.model
    lay0 = m0.layout
    sim = (np.ascontiguousarray(null.mu), m0.structure.codes, m0.structure.zcols,
           m0.structure.zoff, lay0.k, m0.structure.nlev, np.ascontiguousarray(null.theta),
           lay0.offsets, int(m0.structure.kmax), float(null.sigma))
    ws0, resp0, start0 = _model_tuples(m0, null.theta, reml, null.fixed_theta)
    ws1, resp1, start1 = _model_tuples(full.model, full.theta, reml, False)
    embed = np.ascontiguousarray(embed if embed.size else np.array([-1]), dtype=np.int64)
    d0, d1 = start0.size, start1.size

    obj = np.empty((nsim, 2))
    th0 = np.empty((nsim, d0))
    th1 = np.empty((nsim, d1))
    nev = np.empty((nsim, 2), dtype=np.int64)
    status = np.empty((nsim, 2), dtype=np.int64)
    checkpoints = looks(nsim) if stop_alpha is not None else [nsim]
    err = per_look_error(nsim, stop_error)

    previous = set_threads(threads)
    used_threads = numba.get_num_threads()
    bar = None
    start_time = time.perf_counter()
    done, stopped = 0, False
    try:
        batch = min(nsim, 16 * used_threads)
        for checkpoint in checkpoints:
            while done < checkpoint:
                stop = min(checkpoint, done + batch)
                t0 = time.perf_counter()
                lmm_bootstrap(replicate_seeds(seed_seq, done, stop), sim, ws0, resp0, start0,
                              ws1, resp1, start1, embed, opt, obj[done:stop],
                              th0[done:stop], th1[done:stop], nev[done:stop],
                              status[done:stop])
                elapsed = time.perf_counter() - t0
                per_rep = elapsed / (stop - done)
                done = stop
                if bar is None and _want_progress(progress, per_rep * (nsim - done)):
                    from tqdm.auto import tqdm

                    bar = tqdm(total=nsim, initial=done, unit="rep", desc="bootstrap",
                               leave=False, file=sys.stderr)
                elif bar is not None:
                    bar.update(stop - bar.n)
                batch = int(min(max(batch, 0.25 / max(per_rep, 1e-9)), 1 << 16))
            if stop_alpha is not None and done < nsim:
                stat, failure = _classify(obj[:done], status[:done], null.fixed_theta)
                good = failure == 0
                k = int(np.count_nonzero(stat[good] >= observed - _tie(observed)))
                if decision_is_clear(k, int(good.sum()), stop_alpha, err):
                    stopped = True
                    break
    finally:
        if bar is not None:
            bar.close()
        set_threads(previous)
    _recheck(status[:done], obj[:done], (th0[:done], th1[:done]), (m0, full.model), sim,
             replicate_seeds(seed_seq, 0, done), reml)
    seconds = time.perf_counter() - start_time
    stat, failure = _classify(obj[:done], status[:done], null.fixed_theta)
    lower1 = full.model.layout.lower
    diag1 = full.model.layout.is_diagonal
    singular = np.any(diag1 & (th1[:done] - lower1 < 1e-4), axis=1)
    null_singular = (np.zeros(done, dtype=bool) if null.fixed_theta else np.any(
        m0.layout.is_diagonal & (th0[:done] - m0.layout.lower < 1e-4), axis=1))
    rec = ReplicateRecord(statistic=stat, objective=obj[:done], theta_null=th0[:done],
                          theta_full=th1[:done], n_evals=nev[:done], status=status[:done],
                          failure=failure, full_singular=singular,
                          null_singular=null_singular)
    return BootstrapRun(replicates=rec, n_requested=nsim, stopped_early=stopped,
                        seconds=seconds, threads=used_threads)


def _recheck(status, obj, thetas, models, sim, seeds, reml) -> None:
    """Give refits the optimiser gave up on a second look with the full diagnostics.

    A line search that fails at the optimum (finite-difference noise) is not
    a failure; :func:`vctest.diagnostics.diagnose` with its boundary-aware
    check decides.  Status becomes :data:`RECHECKED` when the check passes.
    """
    bad = ~np.isin(status, (0, 1)) & np.isfinite(obj)
    for i in np.flatnonzero(bad.any(axis=1)):
        y = simulate_one(seeds[i], sim)
        for which in np.flatnonzero(bad[i]):
            model = models[which].with_response(y)
            lay = model.layout
            diag = diagnose(lambda th, m=model: m.objective(th, reml), thetas[which][i],
                            lay.lower)
            if diag.converged:
                status[i, which] = RECHECKED


def _tie(observed: float) -> float:
    """Tolerance for ties between a simulated and the observed statistic."""
    return 1e-9 * max(1.0, abs(observed))


def _want_progress(progress: bool | None, remaining_seconds: float) -> bool:
    if progress is not None:
        return bool(progress)
    return remaining_seconds > PROGRESS_AFTER_SECONDS and sys.stderr.isatty()
