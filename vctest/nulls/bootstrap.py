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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from vctest._pvalue import ZERO_TOL
from vctest._replicates import RECHECKED, ReplicateRecord
from vctest._rng import replicate_seeds
from vctest.formula.design import Design, RandomBlock
from vctest.formula.parse import random_term_from_text
from vctest.kernels._jit import set_threads
from vctest.kernels.bootstrap import lmm_bootstrap, simulate_one
from vctest.model.fit import MAX_EDGE_RESTARTS, LmmFit, OptimizerSettings
from vctest.model.lmm import LinearMixedModel
from vctest.nulls.approximations import decision_is_clear, looks, per_look_error
from vctest.nulls.executor import chunk_ranges, run_chunks

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
class BootstrapRun:
    """What a bootstrap run produced and how it ran."""

    replicates: ReplicateRecord
    n_requested: int
    stopped_early: bool
    seconds: float
    threads: int
    interrupted: bool = False


def _model_tuples(gen_model: LinearMixedModel, theta_start: np.ndarray, reml: bool,
                  fixed: bool):
    st = gen_model.structure
    lay = gen_model.layout
    ws = gen_model.workspace(reml)
    resp = (st.codes, st.zcols, st.zoff, np.ascontiguousarray(gen_model.design.X, float),
            lay.lower, lay.is_diagonal.copy(), fixed, gen_model.theta_scale)
    return ws, resp, np.ascontiguousarray(theta_start, dtype=float)


def classify(obj: np.ndarray, status: np.ndarray,
             null_fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Statistic per replicate (NaN where failed) and failure codes (:data:`FAILURE_KINDS`)."""
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


@dataclass(frozen=True, eq=False)
class BootstrapTask:
    """Replicates ``start .. stop - 1`` of one bootstrap (picklable; see executor).

    Holds the packed null and full models; returns the per-replicate arrays
    ``(objective, theta_null, theta_full, n_evals, status)``.
    """

    sim: tuple
    null: tuple
    full: tuple
    embed: np.ndarray
    options: np.ndarray
    seed: np.random.SeedSequence
    threads: int | None = None

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        m = stop - start
        ws0, resp0, start0 = self.null
        ws1, resp1, start1 = self.full
        obj = np.empty((m, 2))
        th0 = np.empty((m, start0.size))
        th1 = np.empty((m, start1.size))
        nev = np.empty((m, 2), dtype=np.int64)
        status = np.empty((m, 2), dtype=np.int64)
        previous = set_threads(self.threads) if self.threads is not None else None
        try:
            # uint64 wrap-around in the generators is intended (matters only when the
            # kernels run as plain Python with NUMBA_DISABLE_JIT=1)
            with np.errstate(over="ignore"):
                lmm_bootstrap(replicate_seeds(self.seed, start, stop), self.sim, ws0, resp0,
                              start0, ws1, resp1, start1, self.embed, self.options, obj, th0,
                              th1, nev, status)
        finally:
            if previous is not None:
                set_threads(previous)
        return obj, th0, th1, nev, status


def make_task(null: GeneratingModel, full: LmmFit, embed: np.ndarray, *, reml: bool,
              seed_seq: np.random.SeedSequence, threads: int | None,
              settings: OptimizerSettings | None = None) -> BootstrapTask:
    """Pack two fitted models into a :class:`BootstrapTask`."""
    settings = settings or full.settings
    opt = np.array([settings.maxiter, settings.gtol, settings.ftol, settings.xtol,
                    MAX_EDGE_RESTARTS], dtype=float)
    m0 = null.model
    lay0 = m0.layout
    sim = (np.ascontiguousarray(null.mu), m0.structure.codes, m0.structure.zcols,
           m0.structure.zoff, lay0.k, m0.structure.nlev, np.ascontiguousarray(null.theta),
           lay0.offsets, int(m0.structure.kmax), float(null.sigma))
    if null.fixed_theta:
        embed = np.array([-2])  # a linear model is the full model at theta = 0
    embed = np.ascontiguousarray(embed if embed.size else np.array([-1]), dtype=np.int64)
    return BootstrapTask(
        sim=sim, null=_model_tuples(m0, null.theta, reml, null.fixed_theta),
        full=_model_tuples(full.model, full.theta, reml, False), embed=embed, options=opt,
        seed=seed_seq, threads=threads,
    )


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
    backend: str = "local",
    client: Any = None,
    n_workers: int = 1,
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
        Numba threads (default all; ignored on Dask workers).
    progress : bool, optional
        Show a tqdm bar; ``None`` shows one on a terminal when the run is
        expected to take more than a couple of seconds.
    stop_alpha, stop_error : float, optional
        Sequential stopping: stop once ``p < stop_alpha`` or ``p > stop_alpha``
        is settled with error ``stop_error`` (see
        :mod:`vctest.nulls.approximations`).
    settings : OptimizerSettings, optional
    backend : {"local", "dask"}
    client : dask.distributed.Client, optional
    n_workers : int
        Dask workers (sets the chunk size).

    Returns
    -------
    BootstrapRun
        A run interrupted by ``KeyboardInterrupt`` keeps the replicates that
        finished and says so (``interrupted``).
    """
    local = backend == "local"
    task = make_task(null, full, embed, reml=reml, seed_seq=seed_seq,
                     threads=threads if local else None, settings=settings)
    raw = run_replicates(task, nsim=nsim, dims=(task.null[2].size, task.full[2].size),
                         observed=observed, null_fixed=null.fixed_theta, threads=threads,
                         progress=progress, stop_alpha=stop_alpha, stop_error=stop_error,
                         backend=backend, client=client, n_workers=n_workers)
    obj, th0, th1, nev, status = raw.arrays
    done = obj.shape[0]
    m0 = null.model
    seeds = replicate_seeds(seed_seq, 0, done)
    models, thetas = (m0, full.model), (th0, th1)

    def simulate(i: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            return simulate_one(seeds[i], task.sim)

    recheck(status, obj, simulate, lambda which, y, i: models[which].with_response(
        y).diagnostics_at(thetas[which][i], reml).converged)
    stat, failure = classify(obj, status, null.fixed_theta)
    singular = full.model.layout.singular(th1, full.model.theta_scale)
    null_singular = (np.zeros(done, dtype=bool) if null.fixed_theta
                     else m0.layout.singular(th0, m0.theta_scale))
    rec = ReplicateRecord(statistic=stat, objective=obj, theta_null=th0, theta_full=th1,
                          n_evals=nev, status=status, failure=failure, full_singular=singular,
                          null_singular=null_singular)
    return BootstrapRun(replicates=rec, n_requested=nsim, stopped_early=raw.stopped_early,
                        seconds=raw.seconds, threads=raw.threads, interrupted=raw.interrupted)


@dataclass(frozen=True, eq=False)
class RawRun:
    """The per-replicate arrays of the replicates that ran, and how the run went."""

    arrays: tuple[np.ndarray, ...]
    stopped_early: bool
    interrupted: bool
    seconds: float
    threads: int


def run_replicates(task: Any, *, nsim: int, dims: tuple[int, int], observed: float,
                   null_fixed: bool, threads: int | None, progress: bool | None,
                   stop_alpha: float | None, stop_error: float, backend: str, client: Any,
                   n_workers: int) -> RawRun:
    """Run a bootstrap task in batches: progress bar, sequential stopping, Dask, Ctrl-C.

    ``task(start, stop)`` returns ``(objective (m, 2), theta_null (m, d0),
    theta_full (m, d1), n_evals (m, 2), status (m, 2))`` for replicates
    ``start .. stop - 1`` (LMM and GLMM tasks alike); see :func:`run_bootstrap`
    for the other arguments.
    """
    local = backend == "local"
    d0, d1 = dims
    obj = np.empty((nsim, 2))
    th0 = np.empty((nsim, d0))
    th1 = np.empty((nsim, d1))
    nev = np.empty((nsim, 2), dtype=np.int64)
    status = np.empty((nsim, 2), dtype=np.int64)
    checkpoints = looks(nsim) if stop_alpha is not None else [nsim]
    err = per_look_error(nsim, stop_error)

    previous = set_threads(threads) if local else None
    used_threads = numba.get_num_threads() if local else n_workers
    state = {"bar": None, "t": time.perf_counter(), "filled": 0}
    start_time = time.perf_counter()
    done, stopped, interrupted = 0, False, False

    def take(a: int, b: int, arrays: tuple[np.ndarray, ...]) -> None:
        for out, part in zip((obj, th0, th1, nev, status), arrays, strict=True):
            out[a:b] = part
        state["filled"] += b - a
        now = time.perf_counter()
        per_rep = (now - start_time) / max(state["filled"], 1)
        if state["bar"] is None and _want_progress(progress, per_rep * (nsim - state["filled"])):
            from tqdm.auto import tqdm

            state["bar"] = tqdm(total=nsim, initial=state["filled"], unit="rep",
                                desc="bootstrap", leave=False, file=sys.stderr)
        elif state["bar"] is not None:
            state["bar"].update(b - a)

    try:
        batch = min(nsim, 16 * used_threads)
        for checkpoint in checkpoints:
            while done < checkpoint:
                if local:
                    stop = min(checkpoint, done + batch)
                    t0 = time.perf_counter()
                    take(done, stop, task(done, stop))
                    per_rep = (time.perf_counter() - t0) / (stop - done)
                    batch = int(min(max(batch, 0.25 / max(per_rep, 1e-9)), 1 << 16))
                    done = stop
                else:
                    size = max(1, -(-(checkpoint - done) // (4 * max(n_workers, 1))))
                    run_chunks(task, chunk_ranges(done, checkpoint, size), take,
                               backend=backend, client=client)
                    done = checkpoint
            if stop_alpha is not None and done < nsim:
                stat, failure = classify(obj[:done], status[:done], null_fixed)
                good = failure == 0
                k = int(np.count_nonzero(stat[good] >= observed - _tie(observed)))
                if decision_is_clear(k, int(good.sum()), stop_alpha, err):
                    stopped = True
                    break
    except KeyboardInterrupt:
        if done == 0:
            raise
        interrupted = True
    finally:
        if state["bar"] is not None:
            state["bar"].close()
        if previous is not None:
            set_threads(previous)
    return RawRun(arrays=(obj[:done], th0[:done], th1[:done], nev[:done], status[:done]),
                  stopped_early=stopped, interrupted=interrupted,
                  seconds=time.perf_counter() - start_time, threads=used_threads)


def recheck(status: np.ndarray, obj: np.ndarray, simulate: Callable[[int], np.ndarray],
            converged_at: Callable[[int, np.ndarray, int], bool]) -> None:
    """Give refits the optimiser gave up on a second look with the full diagnostics.

    A line search that fails at the optimum (finite-difference noise) is not
    a failure; the boundary-aware check of :func:`vctest.diagnostics.diagnose`
    decides.  For each flagged replicate ``i`` the response ``simulate(i)``
    is drawn again and ``converged_at(which, y, i)`` (0 null, 1 full) runs the
    check; status becomes :data:`RECHECKED` when it passes.
    """
    bad = ~np.isin(status, (0, 1)) & np.isfinite(obj)
    for i in np.flatnonzero(bad.any(axis=1)):
        y = simulate(int(i))
        for which in np.flatnonzero(bad[i]):
            if converged_at(int(which), y, int(i)):
                status[i, which] = RECHECKED


def _tie(observed: float) -> float:
    """Tolerance for ties between a simulated and the observed statistic."""
    return 1e-9 * max(1.0, abs(observed))


def _want_progress(progress: bool | None, remaining_seconds: float) -> bool:
    if progress is not None:
        return bool(progress)
    return remaining_seconds > PROGRESS_AFTER_SECONDS and sys.stderr.isatty()
