"""Parametric bootstrap of a likelihood-ratio statistic for two nested models, any family.

The one driver around ``vctest.kernels.bootstrap.bootstrap``: it packs the
fitted null model (an LMM, a GLMM, or with no random effects left an LM or a
GLM) and the fitted full model into the engine's named inputs, cuts the
replicates into batches (for the progress bar and for sequential stopping),
seeds every replicate from one :class:`numpy.random.SeedSequence` (replicate
``i`` always gets the same seed, whatever the batches or threads), and
classifies failed refits.

A replicate *fails* when a refit ends unconverged (iteration limit, failed
line search, PIRLS failure), the objective is not finite, or the full model's
fit is worse than the null's beyond rounding even after a restart from the
null estimate (the full model contains the null, so this can only be an
optimiser failure).  Failures are recorded, never fatal.  A statistic within
rounding below zero is set to zero, not dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from vctest._pvalue import ZERO_TOL, count_exceed
from vctest._replicates import RECHECKED, ReplicateRecord
from vctest._rng import replicate_seeds
from vctest._signals import interruptible
from vctest.formula.design import Design
from vctest.kernels._jit import set_threads
from vctest.kernels.bootstrap import run_bootstrap_kernel
from vctest.kernels.types import GAUSSIAN, IDENTITY, Data, Sim, Start
from vctest.model.fit import LmmFit, OptimizerSettings
from vctest.model.glm import GeneralizedLinearModel, GlmFit
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, GlmmSettings
from vctest.model.lmm import LinearMixedModel
from vctest.model.structure import f64
from vctest.nulls.approximations import decision_is_clear, looks, per_look_error
from vctest.nulls.executor import chunk_ranges, run_chunks

#: A statistic this far below zero (relative to 1 + |objective|) is rounding.
NEGATIVE_TOL = 1e-7

#: Runs expected to take longer than this show a progress bar (when on a terminal).
PROGRESS_AFTER_SECONDS = 2.0

#: A run whose first replicates (at least this many: the first batch is 16 per
#: thread) have all failed stops there: the model cannot be bootstrapped, and
#: running every replicate would only waste time.
GIVE_UP_AFTER = 16

Model = LinearMixedModel | GeneralizedLinearMixedModel | GeneralizedLinearModel


@dataclass(frozen=True, eq=False)
class Generator:
    """A fitted null model to simulate from and to refit (any family).

    Attributes
    ----------
    model : LinearMixedModel, GeneralizedLinearMixedModel or GeneralizedLinearModel
        A linear model is a :class:`LinearMixedModel` with no random effects.
    theta : ndarray
        Empty when the model has no random effects.
    beta : ndarray
        Fixed effects (user units).
    sigma : float
        Residual standard deviation (1 for binomial / Poisson).
    objective : float
        REML criterion or ML deviance (Gaussian), -2 log-likelihood otherwise.
    fixed_theta : bool
        True when there is no variance parameter to optimise.
    """

    model: Model
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    objective: float
    fixed_theta: bool = False

    @classmethod
    def from_fit(cls, fit: LmmFit | GlmmFit | GlmFit) -> Generator:
        """From a fitted LMM, GLMM or GLM."""
        if isinstance(fit, GlmFit):
            return cls(model=fit.model, theta=np.zeros(0), beta=f64(fit.beta),
                       sigma=1.0, objective=float(fit.objective), fixed_theta=True)
        sigma = fit.sigma if isinstance(fit, LmmFit) else 1.0
        return cls(model=fit.model, theta=f64(fit.theta), beta=f64(fit.beta), sigma=sigma,
                   objective=float(fit.objective))

    @classmethod
    def linear_model(cls, design: Design, reml: bool,
                     like: LinearMixedModel | None = None) -> Generator:
        """From a design with no random effects, fitted by least squares (``like``: see
        :meth:`LinearMixedModel.from_design <vctest.model.lmm.LinearMixedModel.from_design>`)."""
        model = LinearMixedModel.from_design(design, random_effects=False, like=like)
        res = model.run(np.zeros(0), reml)
        dof = design.n - design.p if reml else design.n
        return cls(model=model, theta=np.zeros(0), beta=res.beta,
                   sigma=math.sqrt(res.pwrss / dof), objective=res.objective, fixed_theta=True)

    @property
    def gaussian(self) -> bool:
        """A linear (mixed) model."""
        return isinstance(self.model, LinearMixedModel)

    @property
    def mu(self) -> np.ndarray:
        """The fitted fixed part X beta."""
        return np.asarray(self.model.design.X, float) @ self.beta

    def eta_fixed(self) -> np.ndarray:
        """offset + X beta (binomial / Poisson)."""
        return f64(self.model.offset + self.mu)

    def linear_predictor(self, rng: np.random.Generator) -> np.ndarray:
        """offset + X beta + Z Lambda(theta) u with fresh ``u ~ N(0, I)`` (no u for a GLM)."""
        if self.fixed_theta:
            return self.eta_fixed()
        return self.model.draw_linear_predictor(self.theta, self.beta, rng)


#: The names the LMM and GLMM drivers used to give their generators.
GeneratingModel = GlmmGenerator = Generator


@dataclass(frozen=True, eq=False)
class Packed:
    """One model in the engine's inputs, and the map of its estimates to user units."""

    structure: Any
    data: Data
    start: Start
    shift: float  #: the engine's criterion plus this is the user's
    beta_map: np.ndarray  #: user beta = beta_map @ engine beta + beta_offset
    beta_offset: np.ndarray


def _pack(model: Model, theta: np.ndarray, beta: np.ndarray, reml: bool,
          gen: Generator) -> Packed:
    """``model`` ready for refits of responses simulated from ``gen``."""
    st = model.structure
    if isinstance(model, LinearMixedModel):
        g = gen.model
        assert isinstance(g, LinearMixedModel)
        s = model.y_scale
        # y_user = s_g y_sim + X_g b_g = s_g y_sim + y - r_g, so the engine's response of
        # this model, (y_user - X b_ols) / s, is (s_g y_sim + r - r_g) / s
        resid_m, resid_g = model.y_engine * s, g.y_engine * g.y_scale
        data = Data(y=model.y_engine, wt=model.weights, offset=np.zeros(model.n),
                    fam=GAUSSIAN, link=IDENTITY, reml=int(bool(reml)),
                    resp_scale=g.y_scale / s, resp_shift=f64((resid_m - resid_g) / s))
        start = model.start(theta, np.zeros(model.p))
        return Packed(structure=st, data=data, start=start, shift=model.criterion_shift(reml),
                      beta_map=model.units.a * s, beta_offset=model.beta_ols)
    start = model.start(theta, model.beta_to_engine(beta))
    return Packed(structure=st, data=model.data(), start=start,
                  shift=model.criterion_shift(reml),
                  beta_map=model.units.a, beta_offset=model.beta_to_user(np.zeros(st.p)))


def _sim(gen: Generator) -> Sim:
    """The generator in the engine's units (the simulated response is in those units)."""
    m = gen.model
    if isinstance(m, LinearMixedModel):
        beta_e = m.units.to_engine((gen.beta - m.beta_ols) / m.y_scale)
        return Sim(eta0=f64(m.units.x @ beta_e), theta=f64(gen.theta),
                   sigma=float(gen.sigma / m.y_scale), fam=GAUSSIAN, link=IDENTITY,
                   weights=f64(m.weights))
    data = m.data()
    eta0 = data.offset + m.units.x @ m.beta_to_engine(gen.beta)
    return Sim(eta0=f64(eta0), theta=f64(gen.theta), sigma=1.0, fam=m.fam_code,
               link=m.link_code, weights=f64(m.weights))


@dataclass(frozen=True, eq=False)
class BootstrapTask:
    """Replicates ``start .. stop - 1`` of one bootstrap (picklable; see executor).

    Returns the per-replicate arrays ``(objective, estimates_null,
    estimates_full, n_evals, status)``; estimates are theta then beta (user units).
    """

    gen: Generator
    null: Packed
    full: Packed
    embed: np.ndarray
    ctl: Any
    seed: np.random.SeedSequence
    threads: int | None = None

    @property
    def dims(self) -> tuple[int, int]:
        """Columns of the null and full estimates (theta and beta)."""
        return tuple(m.start.theta.size + m.start.beta.size  # type: ignore[return-value]
                     for m in (self.null, self.full))

    def _run(self, seeds: np.ndarray, simulate_only: bool) -> tuple[np.ndarray, ...]:
        m = seeds.size
        n = self.null.structure.n
        y = np.empty((m if simulate_only else 1, n))
        obj = np.empty((m, 2))
        est = [np.empty((m, d)) for d in self.dims]
        nev = np.empty((m, 2), dtype=np.int64)
        status = np.empty((m, 2), dtype=np.int64)
        previous = set_threads(self.threads) if self.threads is not None else None
        sim_st = self.gen.model.structure
        try:
            # uint64 wrap-around in the generators is intended (matters only when the
            # kernels run as plain Python with NUMBA_DISABLE_JIT=1)
            with np.errstate(over="ignore"):
                run_bootstrap_kernel(seeds, sim_st, _sim(self.gen), self.null.structure,
                                     self.null.data, self.null.start, self.full.structure,
                                     self.full.data, self.full.start, self.embed, self.ctl,
                                     simulate_only, y, obj, est[0], est[1], nev, status)
        finally:
            if previous is not None:
                set_threads(previous)
        if simulate_only:
            return (y,)
        for k, packed in enumerate((self.null, self.full)):
            obj[:, k] += packed.shift
            d = packed.start.theta.size
            est[k][:, d:] = est[k][:, d:] @ packed.beta_map.T + packed.beta_offset
        return obj, est[0], est[1], nev, status

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        return self._run(replicate_seeds(self.seed, start, stop), False)

    def simulate(self, index: int) -> np.ndarray:
        """The response replicate ``index`` draws, in the user's units."""
        y = self._run(replicate_seeds(self.seed, index, index + 1), True)[0][0]
        m = self.gen.model
        if isinstance(m, LinearMixedModel):
            return y * m.y_scale + (m.y - m.y_engine * m.y_scale)
        return y


def make_task(null: Generator, full: LmmFit | GlmmFit, embed: np.ndarray, *,
              reml: bool = False, seed_seq: np.random.SeedSequence, threads: int | None,
              settings: OptimizerSettings | GlmmSettings | None = None,
              simulate_from: Generator | None = None) -> BootstrapTask:
    """Pack a fitted null and full model into a :class:`BootstrapTask`.

    ``full`` needs only ``model``, ``theta``, ``beta`` and ``settings`` (the
    full model's warm start).  The responses are simulated from ``null``, or
    from ``simulate_from`` when given (a power simulation: the alternative
    generates, both models are refitted); ``null``'s theta and beta are then
    only the null refits' warm start.
    """
    settings = settings or full.settings
    gen = null if simulate_from is None else simulate_from
    if null.fixed_theta:
        embed = np.array([-2])  # no random effects: the full model at theta = 0
    embed = np.ascontiguousarray(embed if embed.size else np.array([-1]), dtype=np.int64)
    beta_full = f64(full.beta)
    return BootstrapTask(
        gen=gen, null=_pack(null.model, null.theta, null.beta, reml, gen),
        full=_pack(full.model, f64(full.theta), beta_full, reml, gen), embed=embed,
        ctl=settings.kernel(parallel=True), seed=seed_seq, threads=threads)


def run_bootstrap(
    null: Generator,
    full: LmmFit | GlmmFit,
    embed: np.ndarray,
    *,
    nsim: int,
    seed_seq: np.random.SeedSequence,
    observed: float,
    reml: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
    stop_alpha: float | None = None,
    stop_error: float = 1e-3,
    settings: OptimizerSettings | GlmmSettings | None = None,
    backend: str = "local",
    client: Any = None,
    n_workers: int = 1,
) -> BootstrapRun:
    """Simulate ``nsim`` responses from ``null`` and refit both models to each.

    Parameters
    ----------
    null : Generator
        The fitted null model (simulated from, then refitted).
    full : LmmFit or GlmmFit
        The fitted full model (refitted from its estimate).
    embed : ndarray of int64
        Null theta positions in the full theta (see
        ``vctest.model.nesting.nesting``); ``[-1]`` if not available.
    nsim : int
        Replicates (the maximum, with sequential stopping).
    seed_seq : numpy.random.SeedSequence
    observed : float
        The observed statistic (for sequential stopping).
    reml : bool, default False
        Compare REML criteria (LMMs with the same fixed effects) or ML deviances.
    threads : int, optional
        Numba threads (default all; ignored on Dask workers).
    progress : bool, optional
        Show a tqdm bar; ``None`` shows one on a terminal or in a Jupyter
        notebook (a widget with ``vctest[notebook]``, else text) when the run
        is expected to take more than a couple of seconds.
    stop_alpha, stop_error : float, optional
        Sequential stopping: stop once ``p < stop_alpha`` or ``p > stop_alpha``
        is settled with error ``stop_error`` (see
        ``vctest.nulls.approximations``).
    settings : OptimizerSettings or GlmmSettings, optional
        Default: the full fit's.
    backend : {"local", "dask"}
    client : dask.distributed.Client, optional
    n_workers : int
        Dask workers (sets the chunk size).

    Returns
    -------
    BootstrapRun
        A run interrupted by ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM: see
        ``vctest._signals``) keeps the replicates that finished and says so
        (``interrupted``).  A run whose first ``GIVE_UP_AFTER`` (or more)
        replicates all failed, even after the second look of
        ``recheck``, stops there (``gave_up``).

    Examples
    --------
    >>> import numpy as np, vctest
    >>> from vctest.model.glm import fit_glm
    >>> full = vctest.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                   "cbpp", family="binomial")
    >>> glm = fit_glm(full.model.without_random_effects())
    >>> run = run_bootstrap(Generator.from_fit(glm), full, np.array([-2]), nsim=20,
    ...                     seed_seq=np.random.SeedSequence(1), observed=14.0)
    >>> run.replicates.statistic.shape, run.replicates.n_failed
    ((20,), 0)
    """
    local = backend == "local"
    task = make_task(null, full, embed, reml=reml, seed_seq=seed_seq,
                     threads=threads if local else None, settings=settings)
    d0, d1 = null.theta.size, full.theta.size
    models = (None if null.fixed_theta else null.model, full.model)

    def checker(estimates: tuple[np.ndarray, np.ndarray]) -> Callable[[int, np.ndarray, int],
                                                                       bool]:
        return converged_checker(models, estimates, reml)

    def all_failed(arrays: tuple[np.ndarray, ...]) -> bool:
        o, e0, e1, _, st = arrays
        if np.any(classify(o, st, False)[1] == 0):
            return False
        st = st.copy()
        recheck(st, o, task.simulate, checker((e0, e1)))
        return not np.any(classify(o, st, False)[1] == 0)

    raw = run_replicates(task, nsim=nsim, dims=task.dims, observed=observed, null_fixed=False,
                         threads=threads, progress=progress, stop_alpha=stop_alpha,
                         stop_error=stop_error, backend=backend, client=client,
                         n_workers=n_workers, give_up=all_failed)
    obj, est0, est1, nev, status = raw.arrays
    recheck(status, obj, task.simulate, checker((est0, est1)))
    th0, th1 = est0[:, :d0], est1[:, :d1]
    stat, failure = classify(obj, status, False)
    null_singular = (np.zeros(obj.shape[0], dtype=bool) if null.fixed_theta
                     else null.model.layout.singular(th0, null.model.theta_scale))
    rec = ReplicateRecord(statistic=stat, objective=obj, theta_null=th0, theta_full=th1,
                          n_evals=nev, status=status, failure=failure,
                          full_singular=full.model.layout.singular(th1, full.model.theta_scale),
                          null_singular=null_singular)
    return BootstrapRun(replicates=rec, n_requested=nsim, stopped_early=raw.stopped_early,
                        seconds=raw.seconds, threads=raw.threads, interrupted=raw.interrupted,
                        gave_up=raw.gave_up)


@dataclass(frozen=True, eq=False)
class BootstrapRun:
    """What a bootstrap run produced and how it ran."""

    replicates: ReplicateRecord
    n_requested: int
    stopped_early: bool
    seconds: float
    threads: int
    interrupted: bool = False
    gave_up: bool = False


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
class RawRun:
    """The per-replicate arrays of the replicates that ran, and how the run went."""

    arrays: tuple[np.ndarray, ...]
    stopped_early: bool
    interrupted: bool
    seconds: float
    threads: int
    gave_up: bool = False


def run_replicates(task: Any, *, nsim: int, dims: tuple[int, int], observed: float,
                   null_fixed: bool, threads: int | None, progress: bool | None,
                   stop_alpha: float | None, stop_error: float, backend: str, client: Any,
                   n_workers: int,
                   give_up: Callable[[tuple[np.ndarray, ...]], bool] | None = None) -> RawRun:
    """Run a bootstrap task in batches: progress bar, sequential stopping, Dask, Ctrl-C.

    ``task(start, stop)`` returns ``(objective (m, 2), theta_null (m, d0),
    theta_full (m, d1), n_evals (m, 2), status (m, 2))`` for replicates
    ``start .. stop - 1`` (LMM and GLMM tasks alike); see :func:`run_bootstrap`
    for the other arguments.  ``give_up(arrays)``, called after a batch while
    no replicate has succeeded and at least :data:`GIVE_UP_AFTER` have run,
    stops the run when it returns True (every replicate so far failed).
    Ctrl-C or SIGTERM between batches keeps the finished replicates.
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
    done, stopped, interrupted, gave_up, hopeful = 0, False, False, False, give_up is None

    def take(a: int, b: int, arrays: tuple[np.ndarray, ...]) -> None:
        for out, part in zip((obj, th0, th1, nev, status), arrays, strict=True):
            out[a:b] = part
        state["filled"] += b - a
        now = time.perf_counter()
        per_rep = (now - start_time) / max(state["filled"], 1)
        if state["bar"] is None and _want_progress(progress, per_rep * (nsim - state["filled"])):
            from vctest._progress import progress_bar

            state["bar"] = progress_bar(total=nsim, initial=state["filled"], unit="rep",
                                        desc="bootstrap", leave=False)
        elif state["bar"] is not None:
            state["bar"].update(b - a)

    try:
        with interruptible():
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
                    if not hopeful and GIVE_UP_AFTER <= done < nsim:
                        arrays = (obj[:done], th0[:done], th1[:done], nev[:done], status[:done])
                        gave_up = give_up(arrays) if give_up is not None else False
                        hopeful = not gave_up
                        if gave_up:
                            break
                if gave_up:
                    break
                if stop_alpha is not None and done < nsim:
                    stat, failure = classify(obj[:done], status[:done], null_fixed)
                    good = failure == 0
                    k = count_exceed(observed, stat[good])
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
                  seconds=time.perf_counter() - start_time, threads=used_threads,
                  gave_up=gave_up)


def converged_checker(models: tuple[Model | None, Model], estimates: tuple[np.ndarray, np.ndarray],
                      reml: bool) -> Callable[[int, np.ndarray, int], bool]:
    """``converged_at(which, y, i)`` for :func:`recheck`: the diagnostics of refit ``i``.

    ``models`` are the null (None when it has no variance to optimise) and the
    full model; ``estimates`` their per-replicate estimates (theta then beta).
    """
    def converged_at(which: int, y: np.ndarray, i: int) -> bool:
        model = models[which]
        if model is None:
            return False
        d = model.layout.size
        est = estimates[which][i]
        if isinstance(model, LinearMixedModel):
            return model.with_response(y).diagnostics_at(est[:d], reml).converged
        return model.with_response(y).diagnostics_at(est[:d], est[d:]).converged

    return converged_at


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


def _want_progress(progress: bool | None, remaining_seconds: float) -> bool:
    if progress is not None:
        return bool(progress)
    from vctest._progress import interactive

    return remaining_seconds > PROGRESS_AFTER_SECONDS and interactive()
