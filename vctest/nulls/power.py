"""Power by simulation for one sample size, in compiled code: simulate, refit, test.

One :class:`PowerTask` holds a fixed design (built once per sample size), the
alternative model that generates the data sets and the two models to refit.
For data sets ``start .. stop - 1`` it

1. simulates every response from the alternative and refits the null and the
   full model to each, all in the one parallel bootstrap kernel
   (:func:`vctest.nulls.bootstrap.make_task` with ``simulate_from``): one
   likelihood-ratio statistic per data set, no DataFrame, no formula;
2. tests each statistic by every requested method: the naive chi-square and the
   chi-bar-square mixture in closed form, the exact null (Crainiceanu & Ruppert
   2004; with other random effects the pseudo-model of Greven et al. 2008)
   from the spectral kernel -- the design, hence the eigenvalues, is the same for
   every data set of one size --, and the parametric bootstrap from the data
   set's own fitted null, with the kernel as in :func:`vctest.vc_test`.

Streams: data set ``i`` is replicate ``i`` of the child ``spawn_key + (0,)``
of the size's sequence; its exact null draws come from ``+ (1, i)`` and its
bootstrap from ``+ (2, i)``.  So a data set's numbers depend only on the
user's seed and its position, never on the chunking, the threads or Dask.

With ``sequential`` the exact and bootstrap draws of a data set stop once the
decision at ``alpha`` is settled with error ``stop_error`` (looks at 100, 200,
400, ... draws; :mod:`vctest.nulls.approximations`); a statistic of 0 needs no
draws (p = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy.stats import chi2

from vctest._pvalue import count_exceed, monte_carlo_pvalue, pvalue_from_counts
from vctest._rng import child_sequence, replicate_seeds
from vctest.model.lmm import LinearMixedModel
from vctest.nulls.approximations import decision_bounds, looks, per_look_error
from vctest.nulls.asymptotic import mixture_50_50, mixture_slope
from vctest.nulls.bootstrap import (
    Generator,
    classify,
    converged_checker,
    make_task,
    recheck,
    run_bootstrap,
)
from vctest.nulls.exact import SpectralDesign, SpectralTask
from vctest.nulls.spectral import NullInputs

#: The methods a power simulation can apply to every data set.
POWER_METHODS = ("exact", "bootstrap", "asymptotic", "naive")


@dataclass(frozen=True, eq=False)
class Start:
    """A model to refit and where its refits start (what ``make_task`` reads of a fit)."""

    model: Any
    theta: np.ndarray
    beta: np.ndarray
    settings: Any


@dataclass(frozen=True, eq=False)
class PowerTask:
    """Simulate and test data sets ``start .. stop - 1`` of one sample size (picklable).

    Attributes
    ----------
    alternative : Generator
        The model that generates the data sets (true parameters).
    null, full : Generator, Start
        The two models refitted to each data set, with their warm starts.
    embed : ndarray
        Null theta positions in the full theta.
    reml : bool
    df : int
        Parameters removed (the naive chi-square's degrees of freedom).
    mixture : {"scalar", "slope"} or None
        The chi-bar-square mixture of the tested term.
    spectral : SpectralDesign or None
        Eigenvalues of the tested term (exact method).
    methods : tuple of str
    alpha, nsim_exact, nsim_bootstrap, sequential, stop_error
    seed : numpy.random.SeedSequence
        This size's sequence.
    threads : int or None
    """

    alternative: Generator
    null: Generator
    full: Start
    embed: np.ndarray
    reml: bool
    df: int
    mixture: str | None
    spectral: SpectralDesign | None
    methods: tuple[str, ...]
    alpha: float
    nsim_exact: int
    nsim_bootstrap: int
    sequential: bool
    stop_error: float
    seed: np.random.SeedSequence
    threads: int | None = None

    def simulation(self) -> Any:
        """The kernel task: data set ``i`` simulated and both models refitted."""
        return make_task(self.null, self.full, self.embed, reml=self.reml,
                         seed_seq=child_sequence(self.seed, 0), threads=self.threads,
                         settings=self.full.settings, simulate_from=self.alternative)

    def statistics(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Statistics, failure codes and estimates (null, full) of data sets ``start..stop-1``."""
        task = self.simulation()
        obj, est0, est1, _, status = task(start, stop)
        models = (None if self.null.fixed_theta else self.null.model, self.full.model)
        recheck(status, obj, lambda j: task.simulate(start + j),
                converged_checker(models, (est0, est1), self.reml))
        stat, failure = classify(obj, status, False)
        return stat, failure, obj, est0, est1

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """``(statistic, failure, pvalues, draws)`` of data sets ``start .. stop - 1``.

        ``pvalues`` and ``draws`` (null draws used) have one column per method;
        a failed data set has NaN p-values.
        """
        stat, failure, obj, est0, est1 = self.statistics(start, stop)
        m = stop - start
        pvalues = np.full((m, len(self.methods)), np.nan)
        draws = np.zeros((m, len(self.methods)), dtype=np.int64)
        task = self.simulation() if "bootstrap" in self.methods else None
        if "exact" in self.methods:
            c = self.methods.index("exact")
            pvalues[:, c], draws[:, c] = self._exact(np.where(failure == 0, stat, np.nan), start)
        for j in np.flatnonzero(failure == 0):
            i, t = start + int(j), float(stat[j])
            for c, method in enumerate(self.methods):
                if method == "naive":
                    pvalues[j, c] = float(chi2.sf(t, self.df)) if t > 0 else 1.0
                elif method == "asymptotic":
                    pvalues[j, c] = (mixture_50_50 if self.mixture == "scalar"
                                     else mixture_slope)(t)
                elif method == "bootstrap":
                    assert task is not None
                    y = task.simulate(i)
                    pvalues[j, c], draws[j, c] = self._bootstrap(
                        t, i, y, float(obj[j, 0]), est0[j], est1[j])
        return stat, failure, pvalues, draws

    @cached_property
    def exact_looks(self) -> list[tuple[int, int, int]]:
        """``(draws, below, above)`` at each look of a data set's exact null (see
        :func:`~vctest.nulls.approximations.decision_bounds`); one look without
        ``sequential``."""
        nsim = self.nsim_exact
        if not self.sequential:
            return [(nsim, -1, nsim + 1)]
        err = per_look_error(nsim, self.stop_error)
        return [(n, *decision_bounds(n, self.alpha, err)) for n in looks(nsim)]

    def _exact(self, stat: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact p-values of data sets ``start + j`` (statistics ``stat``) and their draws.

        Every look draws the next range of each undecided data set's own stream
        ``spawn_key + (1, i)``, all data sets in one parallel kernel call.
        """
        m = stat.size
        pvalue, draws = np.ones(m), np.zeros(m, dtype=np.int64)
        active = np.flatnonzero(np.isfinite(stat) & (stat > 0))  # a zero has p = 1
        pvalue[~np.isfinite(stat)] = np.nan
        if active.size == 0:
            return pvalue, draws
        assert self.inputs is not None
        streams = {int(j): child_sequence(self.seed, 1, start + int(j)) for j in active}
        k = np.zeros(m, dtype=np.int64)
        done = 0
        for checkpoint, below, above in self.exact_looks:
            seeds = np.concatenate([replicate_seeds(streams[int(j)], done, checkpoint)
                                    for j in active])
            sample = self.inputs.draw_seeds(seeds, self.threads)[0]
            for row, j in zip(sample.reshape(active.size, -1), active, strict=True):
                k[j] += count_exceed(float(stat[j]), row)
            draws[active] = checkpoint
            done = checkpoint
            active = active[(k[active] > below) & (k[active] < above)]
            if active.size == 0:
                break
        for j in np.flatnonzero(draws):
            pvalue[j] = pvalue_from_counts(int(k[j]), int(draws[j])).pvalue
        return pvalue, draws

    @cached_property
    def inputs(self) -> NullInputs | None:
        """The exact null's kernel inputs (one design per size: the same for every data set)."""
        if self.spectral is None:
            return None
        return SpectralTask(self.spectral, self.reml, self.seed).inputs

    def _bootstrap(self, t: float, i: int, y: np.ndarray, objective: float,
                   est0: np.ndarray, est1: np.ndarray) -> tuple[float, int]:
        """Parametric-bootstrap p-value of data set ``i`` (response ``y``) from its fitted null."""
        if t <= 0:
            return 1.0, 0
        d0, d1 = self.null.theta.size, self.full.theta.size
        null_model = self.null.model.with_response(y)
        theta0, beta0 = est0[:d0], est0[d0:]
        sigma = 1.0
        if isinstance(null_model, LinearMixedModel):
            res = null_model.run(theta0, self.reml)
            dof = null_model.n - null_model.p if self.reml else null_model.n
            sigma = math.sqrt(res.pwrss / dof)
        gen = Generator(model=null_model, theta=theta0, beta=beta0, sigma=sigma,
                        objective=objective, fixed_theta=self.null.fixed_theta)
        full = Start(model=self.full.model.with_response(y), theta=est1[:d1],
                     beta=est1[d1:], settings=self.full.settings)
        run = run_bootstrap(gen, full, self.embed,  # type: ignore[arg-type]
                            nsim=self.nsim_bootstrap, seed_seq=child_sequence(self.seed, 2, i),
                            observed=t, reml=self.reml, threads=self.threads, progress=False,
                            stop_alpha=self.alpha if self.sequential else None,
                            stop_error=self.stop_error)
        rec = run.replicates
        sample = rec.statistic[rec.failure == 0]
        if sample.size == 0:
            return math.nan, int(rec.failure.size)
        return monte_carlo_pvalue(t, sample).pvalue, int(rec.failure.size)
