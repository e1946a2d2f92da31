"""``compare``: parametric bootstrap test of two nested mixed models (LMM or GLMM)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vctest._data import as_frame
from vctest._rng import SeedLike
from vctest.api._checks import (
    check_backend,
    check_bootstrap_args,
    check_family,
    check_reml,
    offset_values,
)
from vctest.api._pipeline import (
    BootstrapFailureWarning,
    Draws,
    aligned_designs,
    bootstrap_result,
    fit_pair,
    model_pair,
)
from vctest.model.fit import LmmFit
from vctest.model.glm import GlmFit
from vctest.model.glmm import GlmmFit
from vctest.nulls.bootstrap import run_bootstrap
from vctest.results import TestResult

__all__ = ["BootstrapFailureWarning", "compare"]


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
    weights: str | Any = None,
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
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        One seed fixes every replicate, whatever the number of threads.
    reml : bool, default False
        Compare ML deviances (default).  ``True`` compares REML criteria,
        allowed only when both models have the same fixed effects.
    threads : int, optional
        Numba threads (default: all).
    progress : bool, optional
        Progress bar; by default shown on a terminal or in a Jupyter notebook
        for runs longer than a couple of seconds (a widget in a notebook with
        ``pip install 'vctest[notebook]'``, else text).
    stop_alpha : float, optional
        Stop early once ``p < stop_alpha`` or ``p > stop_alpha`` is settled
        with error ``stop_error`` (Clopper-Pearson looks at B = 100, 200, 400,
        ...; see ``vctest.nulls.approximations``).
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
    weights : str or array_like, optional
        Prior weights, as lme4's ``weights=``: a column of ``data`` or one
        positive value per row of ``data``.  Gaussian: row i has residual
        variance ``sigma^2 / w_i``; binomial: numbers of trials for a
        proportion response (times those of a ``cbind`` response).

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
    check_reml(reml)
    if isinstance(full, GlmmFit) and isinstance(null, GlmmFit | GlmFit):
        family, link, offset = full.model.family, full.model.link, full.model.offset
    check_family(family, link, offset)
    if family != "gaussian" and reml:
        raise ValueError("GLMMs are fitted by maximum likelihood; use reml=False.")
    if isinstance(full, str) != isinstance(null, str):
        raise TypeError("`full` and `null` must both be formulas or both be fitted models.")
    if isinstance(full, str):
        if data is None:
            raise ValueError("`data` is required when the models are given as formulas.")
        frame = as_frame(data)
        d_full, d_null, rows = aligned_designs(full, null, frame, weights=weights)
        # the offset on the rows the models use, as positions in `data`
        offset = offset_values(offset, frame, rows[d_full.row_index])
    elif (isinstance(full, LmmFit) and isinstance(null, LmmFit)) or (
            isinstance(full, GlmmFit) and isinstance(null, GlmmFit | GlmFit)):
        d_full, d_null = full.model.design, null.model.design
    else:
        raise TypeError(f"`full` and `null` must be formula strings or fits from "
                        f"vctest.fit; got {type(full).__name__} and {type(null).__name__}.")
    pair = model_pair(d_full, d_null, family=family, link=link, offset=offset, reml=reml)
    draws = Draws(nsim=int(nsim), seed=seed, threads=threads, progress=progress,
                  stop_alpha=stop_alpha, stop_error=stop_error, backend=backend,
                  client=client)
    # `run_bootstrap` is looked up here, so that it can be instrumented
    return bootstrap_result(fit_pair(pair), draws, run_bootstrap)
