"""Parametric bootstrap comparison of two nested linear mixed models."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from vctest._data import as_frame
from vctest._pvalue import clean_statistic, monte_carlo_pvalue
from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest.api.glmm_testing import (
    check_family,
    fit_glmm_design,
    glmm_generating_model,
    offset_values,
)
from vctest.formula.design import Design, build_design
from vctest.model.fit import LmmFit, fit_model
from vctest.model.glm import GlmFit
from vctest.model.glmm import GlmmFit
from vctest.model.lmm import LinearMixedModel
from vctest.model.nesting import nesting
from vctest.nulls.approximations import bartlett_pvalue, gamma_pvalue
from vctest.nulls.bootstrap import GeneratingModel, run_bootstrap
from vctest.nulls.executor import BACKENDS, resolve_client
from vctest.nulls.glmm_bootstrap import GlmmGenerator, run_glmm_bootstrap
from vctest.results import TestResult


class BootstrapFailureWarning(UserWarning):
    """More than 1% of the bootstrap replicates failed to refit."""


def check_bootstrap_args(nsim: object, threads: object, progress: object,
                         stop_alpha: object, stop_error: object) -> None:
    """Validate the bootstrap settings shared by :func:`compare` and ``vc_test``."""
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
        raise ValueError(f"`nsim` must be a positive integer; got {nsim!r}.")
    if threads is not None and (isinstance(threads, bool)
                                or not isinstance(threads, int | np.integer) or threads < 1):
        raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"`progress` must be True, False or None; got {progress!r}.")
    if stop_alpha is not None and not (isinstance(stop_alpha, float | int)
                                       and 0 < stop_alpha < 1):
        raise ValueError(f"`stop_alpha` must be in (0, 1) or None; got {stop_alpha!r}.")
    if not (isinstance(stop_error, float | int) and 0 < stop_error < 1):
        raise ValueError(f"`stop_error` must be in (0, 1); got {stop_error!r}.")


def check_backend(backend: object, keep_null: object = None) -> None:
    """Validate ``backend`` (and ``keep_null``)."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}; got {backend!r}.")
    if keep_null is not None and not isinstance(keep_null, bool):
        raise TypeError(f"`keep_null` must be True, False or None; got {keep_null!r}.")


def _n_workers(backend: str, client: Any) -> int:
    if backend != "dask":
        return 1
    return max(len(resolve_client(client).scheduler_info().get("workers", {})), 1)


def bootstrap_test(
    *,
    full: LmmFit | GlmmFit,
    null: GeneratingModel | GlmmGenerator,
    null_fit: LmmFit | GlmmFit | GlmFit | None,
    embed: np.ndarray,
    df: int,
    reml: bool,
    term: str,
    asymptotic: dict[str, float],
    settings: dict[str, Any],
    nsim: int,
    seed: SeedLike,
    threads: int | None,
    progress: bool | None,
    stop_alpha: float | None,
    stop_error: float,
    notes: list[str],
    backend: str = "local",
    client: Any = None,
) -> TestResult:
    """Run the bootstrap for two fitted models and assemble the result."""
    statistic = float(clean_statistic(null.objective - full.objective))
    ss = seed_sequence(seed)
    common: dict[str, Any] = {
        "nsim": int(nsim), "seed_seq": ss, "observed": statistic, "threads": threads,
        "progress": progress, "stop_alpha": stop_alpha, "stop_error": stop_error,
        "backend": backend, "client": client, "n_workers": _n_workers(backend, client)}
    glmm = isinstance(null, GlmmGenerator)
    if glmm:
        run = run_glmm_bootstrap(null, full, embed, **common)
    else:
        run = run_bootstrap(null, full, embed, reml=reml, **common)
    rec = run.replicates
    ok = rec.failure == 0
    sample = rec.statistic[ok]
    n_failed = rec.n_failed
    n_run = rec.failure.size
    if sample.size == 0:
        raise RuntimeError(
            f"all {n_run} bootstrap replicates failed to refit "
            f"({rec.failure_counts()}); the model cannot be bootstrapped as specified."
        )
    mc = monte_carlo_pvalue(statistic, sample)
    bound = (1 + mc.n_exceed + n_failed) / (1 + sample.size + n_failed)
    if n_failed > 0.01 * n_run:
        warnings.warn(
            f"{n_failed} of {n_run} bootstrap refits failed ({rec.failure_counts()}); the "
            f"p-value {mc.pvalue:.4g} excludes them, and would be {bound:.4g} if all had "
            "exceeded the observed statistic.",
            BootstrapFailureWarning,
            stacklevel=3,
        )
    test_name = ("LRT (Laplace, parametric bootstrap)" if glmm else
                 ("RLRT" if reml else "LRT") + " (parametric bootstrap)")
    approx = {
        f"gamma approximation (moment-matched, df={df})": gamma_pvalue(statistic, sample),
        f"Bartlett-scaled chi2({df})": bartlett_pvalue(statistic, sample, df),
    }
    settings = {**settings, "nsim": int(nsim), "n_run": n_run, "reml": reml, "df": df,
                "threads": run.threads, "seconds": round(run.seconds, 3),
                "stop_alpha": stop_alpha, "stop_error": stop_error if stop_alpha else None,
                "stopped_early": run.stopped_early, "interrupted": run.interrupted,
                "backend": backend}
    notes = list(notes)
    if run.interrupted:
        notes.append(f"interrupted: the result uses the {n_run} of {nsim} replicates that "
                     "finished.")
        warnings.warn(f"bootstrap interrupted after {n_run} of {nsim} replicates; the result "
                      "uses those that finished.", RuntimeWarning, stacklevel=3)
    if run.stopped_early:
        notes.append(f"sequential stopping: the decision at alpha = {stop_alpha} was settled "
                     f"after {n_run} of {nsim} replicates (error <= {stop_error}).")
    return TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="bootstrap", test=test_name, term=term,
        reference=("parametric bootstrap: responses simulated from the fitted null model, "
                   "both models refitted to each"
                   + (f" (Laplace approximation, {full.model.family} family)" if glmm else "")),
        null_distribution=sample, asymptotic=asymptotic, settings=settings,
        seed=None if seed is None or isinstance(seed, np.random.SeedSequence) else int(seed),
        seed_entropy=entropy_of(ss), n_failed=n_failed, pvalue_bound=bound,
        failures=rec.failure_counts(), approximations=approx, replicates=rec,
        replicate_summary=rec.summary(statistic),
        fits={"full": full, "null": null_fit}, notes=tuple(notes),
    )


def generating_model(design: Design, reml: bool) -> tuple[GeneratingModel, LmmFit | None]:
    """Fit a null design (mixed or linear) and wrap it for simulation."""
    if design.blocks:
        fit = fit_model(LinearMixedModel.from_design(design), reml=reml)
        return GeneratingModel.from_fit(fit), fit
    return GeneratingModel.linear_model(design, reml), None


def _shape(design: Design) -> list[int]:
    """Rows used and columns used of the data."""
    cols = design.frame.shape[1] if design.frame is not None else None
    return [design.n, cols]


def _aligned_designs(full: str, null: str,
                     frame: pd.DataFrame) -> tuple[Design, Design, np.ndarray]:
    """Both designs on the rows complete for both formulas.

    Also returns the positions in ``frame`` of the rows the designs were built
    from, so ``rows[design.row_index]`` locates each design row in ``frame``.
    """
    d_full = build_design(full, frame)
    d_null = build_design(null, frame)
    if d_full.n == d_null.n and np.array_equal(d_full.row_index, d_null.row_index):
        return d_full, d_null, np.arange(len(frame))
    rows = np.intersect1d(d_full.row_index, d_null.row_index)
    sub = frame.iloc[rows].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(full, sub), build_design(null, sub), rows


def compare(
    full: str | LmmFit | GlmmFit,
    null: str | LmmFit | GlmmFit,
    data: pd.DataFrame | str | None = None,
    *,
    nsim: int = 1000,
    seed: SeedLike = None,
    reml: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
    stop_alpha: float | None = None,
    stop_error: float = 1e-3,
    backend: str = "local",
    client: Any = None,
    family: str = "gaussian",
    link: str | None = None,
    offset: str | Any = None,
) -> TestResult:
    """Parametric bootstrap likelihood-ratio test of two nested mixed models (LMM or GLMM).

    Simulates ``nsim`` responses from the fitted null model, refits both
    models to each (Numba kernels, parallel over replicates, warm starts) and
    refers the observed 2(l1 - l0) to the simulated values:
    p = (1 + #{T* >= t}) / (1 + B) over the B replicates that refitted.
    Failed refits are counted and reported, never fatal.

    Parameters
    ----------
    full, null : str or LmmFit
        lme4 formulas (then ``data`` is required) or fitted models.  The null
        may have no random effects (``"y ~ x"``).  The pair is checked to be
        nested.
    data : pandas.DataFrame or str, optional
        Data for formula arguments (DataFrame, CSV/Parquet path or bundled
        name).  Both models use the rows complete for both.
    nsim : int, default 1000
        Bootstrap replicates (the maximum with sequential stopping).
    seed : int, numpy.random.SeedSequence or None
        One seed fixes every replicate, whatever the number of threads.
    reml : bool, default False
        Compare ML deviances (default).  ``True`` compares REML criteria,
        allowed only when both models have the same fixed effects.
    threads : int, optional
        Numba threads (default: all).
    progress : bool, optional
        Progress bar; by default shown on a terminal for runs longer than a
        couple of seconds.
    stop_alpha : float, optional
        Stop early once ``p < stop_alpha`` or ``p > stop_alpha`` is settled
        with error ``stop_error`` (Clopper-Pearson looks at B = 100, 200, 400,
        ...; see :mod:`vctest.nulls.approximations`).
    stop_error : float, default 1e-3
    backend : {"local", "dask"}, default "local"
        ``"dask"`` runs chunks of replicates on a Dask cluster (``client`` or
        the default client), with the model shipped once per worker; the
        numbers equal a local run with the same seed.
    client : dask.distributed.Client, optional
    family : {"gaussian", "binomial", "poisson"}, default "gaussian"
        Binomial and Poisson models are GLMMs fitted by the Laplace
        approximation (maximum likelihood); the null may be a GLM.
    link : str, optional
        GLMM link (see :func:`vctest.fit`).
    offset : str or array_like, optional
        GLMM offset: a column of ``data`` or one value per row of ``data``.

    Returns
    -------
    TestResult
        ``method="bootstrap"``, with ``n_failed``, ``failures``,
        ``pvalue_bound`` (failed replicates counted as extreme), the gamma and
        Bartlett approximations and the per-replicate record.

    Raises
    ------
    ValueError
        If the models are not nested, or REML is asked for models with
        different fixed effects.

    Examples
    --------
    >>> import vctest
    >>> res = vctest.compare("Reaction ~ Days + (Days | Subject)",
    ...                      "Reaction ~ Days + (1 | Subject)", "sleepstudy",
    ...                      nsim=200, seed=1)
    >>> round(res.statistic, 4)   # lme4: 42.1393
    42.1393
    >>> res.pvalue == 1 / 201, res.n_failed
    (True, 0)
    """
    check_bootstrap_args(nsim, threads, progress, stop_alpha, stop_error)
    check_backend(backend)
    if not isinstance(reml, bool):
        raise TypeError(f"`reml` must be True or False; got {reml!r}.")
    if isinstance(full, GlmmFit) and isinstance(null, GlmmFit | GlmFit):
        family, link, offset = full.model.family, full.model.link, full.model.offset
    check_family(family, link, offset)
    glmm = family != "gaussian"
    if glmm and reml:
        raise ValueError("GLMMs are fitted by maximum likelihood; use reml=False.")
    if isinstance(full, str) != isinstance(null, str):
        raise TypeError("`full` and `null` must both be formulas or both be fitted models.")
    if isinstance(full, str):
        if data is None:
            raise ValueError("`data` is required when the models are given as formulas.")
        frame = as_frame(data)
        d_full, d_null, rows = _aligned_designs(full, null, frame)
        if glmm:  # the offset on the rows the models use, as positions in `data`
            offset = offset_values(offset, frame, rows[d_full.row_index])
    elif (isinstance(full, LmmFit) and isinstance(null, LmmFit)) or (
            isinstance(full, GlmmFit) and isinstance(null, GlmmFit | GlmFit)):
        d_full, d_null = full.model.design, null.model.design
    else:
        raise TypeError(f"`full` and `null` must be formula strings or fits from "
                        f"vctest.fit; got {type(full).__name__} and {type(null).__name__}.")
    if not d_full.blocks:
        raise ValueError("the full model has no random-effects term; compare a mixed model "
                         "with a simpler one.")
    nest = nesting(d_full, d_null)
    if reml and not nest.same_fixed:
        raise ValueError(
            "REML criteria of models with different fixed effects are not comparable; "
            "use reml=False (ML), the default."
        )
    if glmm:
        full_fit: LmmFit | GlmmFit = fit_glmm_design(d_full, family, link, offset)
        gen, null_fit = glmm_generating_model(d_null, family, full_fit.model.link, offset)
    else:
        full_fit = fit_model(LinearMixedModel.from_design(d_full), reml=reml)
        gen, null_fit = generating_model(d_null, reml)
    statistic = float(clean_statistic(gen.objective - full_fit.objective))
    asym = {f"naive chi2({nest.df})": float(chi2.sf(statistic, nest.df)) if statistic > 0
            else 1.0}
    settings = {"formula": d_full.formula.text, "null_formula": d_null.formula.text,
                "method": "bootstrap", "family": family,
                "link": full_fit.model.link if glmm else None, "n": d_full.n,
                "n_dropped": d_full.n_dropped,
                "data_shape": _shape(d_full),
                "data_hash": d_full.data_hash}
    return bootstrap_test(
        full=full_fit, null=gen, null_fit=null_fit, embed=nest.embed, df=nest.df, reml=reml,
        term=f"{d_full.formula.text}  vs  {d_null.formula.text}", asymptotic=asym,
        settings=settings, nsim=int(nsim), seed=seed, threads=threads, progress=progress,
        stop_alpha=stop_alpha, stop_error=stop_error, backend=backend, client=client,
        notes=["the full model is a boundary (singular) fit."] if full_fit.singular else [],
    )
