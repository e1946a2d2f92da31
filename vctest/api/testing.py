"""``vc_test``: is the variance of one random-effects term zero?"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vctest._data import as_frame
from vctest._rng import SeedLike
from vctest.api._checks import (
    check_backend,
    check_bootstrap_args,
    check_family,
    check_test_args,
    offset_values,
)
from vctest.api._pipeline import Draws, test_term
from vctest.api.smooth_constant import SMOOTH_TESTS, test_smooth_constant
from vctest.api.smooth_test import test_smooth_design
from vctest.formula.design import build_design
from vctest.results import TestResult

__all__ = ["vc_test"]

#: Default number of draws: exact null draws are cheap, bootstrap refits are not.
DEFAULT_NSIM = {"exact": 100_000, "asymptotic": 0, "bootstrap": 1000}


def vc_test(
    formula: str | Any,
    data: pd.DataFrame | str | None = None,
    *,
    term: str,
    method: str | None = None,
    nsim: int | None = None,
    seed: SeedLike = None,
    reml: bool = True,
    threads: int | None = None,
    progress: bool | None = None,
    stop_alpha: float | None = None,
    stop_error: float = 1e-3,
    backend: str = "local",
    client: Any = None,
    keep_null: bool | None = None,
    family: str = "gaussian",
    link: str | None = None,
    offset: str | Any = None,
    weights: str | Any = None,
    test: str = "linear",
) -> TestResult:
    """Test whether the variance of one random-effects term is zero.

    Fits the model and the model without ``term`` (same rows, same fixed
    effects), computes the restricted (``reml=True``: RLRT) or ordinary
    (``reml=False``: LRT) likelihood-ratio statistic and refers it to

    * ``method="exact"``: the exact finite-sample null distribution of
      Crainiceanu & Ruppert (2004), simulated from its spectral form
      (``nsim`` draws).  With other random effects in the model, the null of
      the tested term's single-component design is used (the pseudo-model
      approach of Greven et al. 2008), as RLRsim's ``exactRLRT(m, mA, m0)``
      does -- vctest builds the three models itself;
    * ``method="asymptotic"``: the chi-bar-square mixture (Self & Liang 1987;
      Stram & Lee 1994): 50:50 chi2_0:chi2_1 for one variance, 50:50
      chi2_1:chi2_2 for a correlated random slope;
    * ``method="bootstrap"``: a parametric bootstrap (responses simulated from
      the fitted null model, both models refitted; see :func:`vctest.compare`)
      -- for any term, including correlated slopes.

    Parameters
    ----------
    formula : str or statsmodels MixedLM model/result
        lme4 formula of the full model, or a statsmodels ``MixedLM`` model or
        result (translated by :func:`vctest.api.statsmodels.translate`; omit
        ``data`` then).
    data : pandas.DataFrame or str
        Data frame, CSV/Parquet path or bundled data set name.
    term : str
        The term to test, e.g. ``"(1 | Batch)"`` or ``"(0 + Days | Subject)"``, or a
        smooth ``"s(x)"``: H0 "f is linear" against a smooth f (the RLRT of the
        smooth's penalised part, exact null; see :doc:`/smooth`); for
        a statsmodels model also its printed name (``"Group Var"``, a
        ``vc_formula`` key such as ``"cask Var"``).
        A term that names some columns of a correlated block (``"(0 + Days |
        Subject)"`` in ``(Days | Subject)``) removes those variances and their
        covariances.
    method : {"exact", "asymptotic", "bootstrap"}, optional
        Default ``"exact"`` for a linear mixed model, ``"bootstrap"`` for a
        GLMM (``family`` binomial or Poisson), which has no exact null.
    nsim : int, optional
        Null draws: 100,000 for the exact method, 1,000 bootstrap replicates.
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Same seed, same draws -- whatever the number of threads.
    reml : bool, default True
        RLRT (REML fits) or LRT (ML fits).
    threads : int, optional
        Numba threads for the simulation (default: all).
    progress : bool, optional
        Bootstrap progress bar (default: on a terminal or in a Jupyter notebook,
        for runs longer than a couple of seconds; a widget in a notebook with
        ``pip install 'vctest[notebook]'``, else text).
    stop_alpha, stop_error : float, optional
        Bootstrap sequential stopping (see :func:`vctest.compare`).
    backend : {"local", "dask"}, default "local"
        Where the draws or replicates run.  ``"dask"`` splits them into chunks
        on a Dask cluster (``client``, or the default client); the numbers are
        identical to a local run with the same seed.
    client : dask.distributed.Client, optional
    family : {"gaussian", "binomial", "poisson"}, default "gaussian"
        For a GLMM (Laplace fits, :func:`vctest.fit`) the test is the ML LRT
        with ``method="bootstrap"`` (or ``"asymptotic"``); there is no exact
        null.  Removing the only random-effects term compares with the GLM.
    link : str, optional
        GLMM link: ``"logit"`` (default), ``"probit"``, ``"cloglog"`` for
        binomial; ``"log"`` for Poisson.
    offset : str or array_like, optional
        GLMM offset: a column of ``data`` or one value per row of ``data``.
    keep_null : bool, optional
        Keep the whole null sample (default: up to 10^6 draws).  Without it
        memory stays flat: the p-value comes from exceedance counts and the
        quantiles from a log-histogram sketch (``result.null_summary``).
    weights : str or array_like, optional
        Prior weights, as lme4's ``weights=``: a column of ``data`` or one
        positive value per row of ``data``.  Gaussian: row i has residual
        variance ``sigma^2 / w_i``; binomial: numbers of trials for a
        proportion response (times those of a ``cbind`` response).
    test : {"linear", "constant"}, default "linear"
        For a smooth ``term``: ``"linear"`` tests H0 "f is linear" (its
        penalised part's variance is zero; for any other term: its variance is
        zero).  ``"constant"`` tests H0 "f is constant": the variance and the
        smooth's linear fixed effect (``s(x)Fx1``) are zero, by the ML LRT
        (``reml`` is ignored) with its exact null (Crainiceanu et al. 2005) for
        a Gaussian model, or a parametric bootstrap for a binomial or Poisson
        one.  The smooth must be the model's only variance component.

    Returns
    -------
    TestResult

    Raises
    ------
    ValueError
        If the term is not in the model, or ``method="exact"`` is asked of a
        term that is not a single variance component, or ``test="constant"``
        of a term that is not a smooth or of a model with other variance
        components.

    Examples
    --------
    >>> import vctest
    >>> res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
    ...                      nsim=20_000, seed=1)
    >>> round(res.statistic, 3)
    6.369
    >>> res.pvalue < 0.01   # exact p = 0.0044 (the ANOVA F test)
    True

    Does the mean reaction time change over the days at all (H0: the smooth is flat)?

    >>> res = vctest.vc_test("Reaction ~ s(Days, k=5, bs='cr')", "sleepstudy",
    ...                      term="s(Days)", test="constant", nsim=10_000, seed=1)
    >>> res.test, res.settings["restricted"], round(res.statistic, 2), res.pvalue < 0.001
    ('LRT', ['s(Days)Fx1'], 60.76, True)
    """
    check_family(family, link, offset)
    if test not in SMOOTH_TESTS:
        raise ValueError(f"`test` must be 'linear' (H0: the smooth is linear; for any term: "
                         f"its variance is zero) or 'constant' (H0: the smooth is constant); "
                         f"got {test!r}.")
    if method is None:
        method = "exact" if family == "gaussian" else "bootstrap"
    check_test_args(term, method, nsim, reml, threads)
    check_backend(backend, keep_null)
    if not isinstance(formula, str) and type(formula).__module__.startswith("statsmodels."):
        from vctest.api.statsmodels import term_from_statsmodels, translate

        if data is not None:
            raise TypeError("`data` must be omitted when `formula` is a statsmodels model or "
                            "result; its own data are used.")
        translation = translate(formula)
        formula, data = translation.formula, translation.data
        term = term_from_statsmodels(translation, term)
    elif data is None:
        raise TypeError("`data` is required when `formula` is a formula string.")
    nsim = DEFAULT_NSIM[method] if nsim is None else int(nsim)
    if method == "bootstrap":
        check_bootstrap_args(nsim, threads, progress, stop_alpha, stop_error)
    frame = as_frame(data)
    design = build_design(formula, frame, weights=weights)
    offset = offset_values(offset, frame, design.row_index)
    draws = Draws(nsim=nsim, seed=seed, threads=threads, progress=progress,
                  stop_alpha=stop_alpha, stop_error=stop_error, backend=backend,
                  client=client, keep_null=keep_null)
    if test == "constant":
        if not design.smooths:
            raise ValueError("test='constant' applies to a smooth term such as 's(x)', and the "
                             "model has none; omit `test` to test a random-effects term.")
        return test_smooth_constant(design, term, method, draws, family=family, link=link,
                                    offset=offset)
    if design.smooths:
        return test_smooth_design(design, term, method, draws, reml=reml, family=family,
                                  link=link, offset=offset)
    return test_term(design, term, method, draws, family=family, link=link, offset=offset,
                     reml=reml)
