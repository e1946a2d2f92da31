"""``vc_test``: is the variance of one random-effects term zero?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from vctest._data import as_frame
from vctest._pvalue import clean_statistic, monte_carlo_pvalue, pvalue_from_counts
from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest.api.comparing import (
    _n_workers,
    _shape,
    bootstrap_test,
    check_backend,
    check_bootstrap_args,
    generating_model,
)
from vctest.api.glmm_testing import check_family, glmm_vc_test, offset_values
from vctest.formula.design import build_design
from vctest.model.fit import LmmFit, fit_model
from vctest.model.lmm import LinearMixedModel
from vctest.model.nesting import nesting
from vctest.model.reduce import drop_term, locate_term
from vctest.nulls.asymptotic import mixture_50_50, mixture_slope
from vctest.nulls.exact import SpectralTask, invert_rlrt, simulate_null, spectral_design
from vctest.results import QUANTILE_LEVELS, TestResult

METHODS = ("exact", "asymptotic", "bootstrap")

#: Exact null samples up to this size are kept in the result by default.
KEEP_NULL_UP_TO = 1_000_000

#: Default number of draws: exact null draws are cheap, bootstrap refits are not.
DEFAULT_NSIM = {"exact": 100_000, "asymptotic": 0, "bootstrap": 1000}


def _vc_test_iv(term: object, method: object, nsim: object, reml: object,
                threads: object) -> None:
    if not isinstance(term, str):
        raise TypeError(f"`term` must be a string such as '(1 | g)'; got {type(term).__name__}.")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    if nsim is not None and (isinstance(nsim, bool) or not isinstance(nsim, int | np.integer)
                             or nsim < 1):
        raise ValueError(f"`nsim` must be a positive integer or None; got {nsim!r}.")
    if not isinstance(reml, bool):
        raise TypeError(f"`reml` must be True or False; got {reml!r}.")
    if threads is not None and (isinstance(threads, bool)
                                or not isinstance(threads, int | np.integer) or threads < 1):
        raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")


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
        The term to test, e.g. ``"(1 | Batch)"`` or ``"(0 + Days | Subject)"``; for
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
    seed : int, numpy.random.SeedSequence or None
        Same seed, same draws -- whatever the number of threads.
    reml : bool, default True
        RLRT (REML fits) or LRT (ML fits).
    threads : int, optional
        Numba threads for the simulation (default: all).
    progress : bool, optional
        Bootstrap progress bar (default: on a terminal, for runs longer than
        a couple of seconds).
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

    Returns
    -------
    TestResult

    Raises
    ------
    ValueError
        If the term is not in the model, or ``method="exact"`` is asked of a
        term that is not a single variance component.

    Examples
    --------
    >>> import vctest
    >>> res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
    ...                      nsim=20_000, seed=1)
    >>> round(res.statistic, 3)
    6.369
    >>> res.pvalue < 0.01   # exact p = 0.0044 (the ANOVA F test)
    True
    """
    check_family(family, link, offset)
    if method is None:
        method = "exact" if family == "gaussian" else "bootstrap"
    _vc_test_iv(term, method, nsim, reml, threads)
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
    design = build_design(formula, frame)
    if family != "gaussian":
        return glmm_vc_test(design, family=family, link=link,
                            offset=offset_values(offset, frame, design.row_index), term=term,
                            method=method, nsim=nsim, seed=seed, threads=threads,
                            progress=progress, stop_alpha=stop_alpha, stop_error=stop_error,
                            backend=backend, client=client,
                            settings_extra={"data_shape": _shape(design)})
    loc = locate_term(design, term)
    null_design = drop_term(design, loc)
    full = fit_model(LinearMixedModel.from_design(design), reml=reml)
    generator, null_fit = generating_model(null_design, reml)
    statistic = float(clean_statistic(generator.objective - full.objective))
    block = design.blocks[loc.block]
    single_scalar = loc.whole_block and block.k == 1
    test_name = "RLRT" if reml else "LRT"
    asym: dict[str, float] = {
        f"naive chi2({loc.n_params_removed})": float(chi2.sf(statistic, loc.n_params_removed))
        if statistic > 0 else 1.0
    }
    if single_scalar:
        asym["50:50 mixture chi2(0):chi2(1)"] = mixture_50_50(statistic)
    elif not loc.whole_block and len(loc.columns) == 1 and block.k == 2:
        asym["50:50 mixture chi2(1):chi2(2)"] = mixture_slope(statistic)
    settings = {
        "formula": design.formula.text, "null_formula": null_design.formula.text,
        "term": loc.label, "reml": reml, "method": method, "n": design.n,
        "n_dropped": design.n_dropped, "data_hash": design.data_hash,
        "data_shape": _shape(design),
    }
    fits = {"full": full, "null": null_fit}
    notes: list[str] = []
    if full.singular:
        notes.append("the full model is a boundary (singular) fit.")

    if method == "bootstrap":
        nest = nesting(design, null_design)
        return bootstrap_test(
            full=full, null=generator, null_fit=null_fit, embed=nest.embed, df=nest.df,
            reml=reml, term=loc.label, asymptotic=asym, settings=settings, nsim=nsim,
            seed=seed, threads=threads, progress=progress, stop_alpha=stop_alpha,
            stop_error=stop_error, notes=notes, backend=backend, client=client,
        )

    if method == "asymptotic":
        mixtures = [k for k in asym if k.startswith("50:50")]
        if not mixtures:
            raise ValueError(
                f"no asymptotic mixture is implemented for removing {loc.label} "
                f"({loc.n_params_removed} covariance parameters); use method='exact' for a "
                "single variance component, or method='bootstrap'."
            )
        return TestResult(
            statistic=statistic, pvalue=asym[mixtures[0]], pvalue_mc_se=None, pvalue_ci=None,
            method="asymptotic", test=test_name, term=loc.label,
            reference=f"asymptotic {mixtures[0]} (Self & Liang 1987; Stram & Lee 1994)",
            null_distribution=None, asymptotic=asym, settings=settings, seed=None,
            seed_entropy=None, fits=fits, notes=tuple(notes),
        )

    if not single_scalar:
        raise ValueError(
            f"`term` {loc.label} is not a single variance component: removing it removes "
            f"{loc.n_params_removed} covariance parameters of {block.term.label}. The exact "
            "null applies to one variance component; use method='bootstrap' or "
            "method='asymptotic' for the chi-bar-square reference."
        )
    ss = seed_sequence(seed)
    sd = spectral_design(design, loc.block)
    keep = nsim <= KEEP_NULL_UP_TO if keep_null is None else keep_null
    sample, sketch = simulate_null(
        SpectralTask(sd, reml, ss, threads if backend == "local" else None), int(nsim),
        statistic, keep=keep, backend=backend, client=client,
        n_workers=_n_workers(backend, client),
    )
    if sample is not None:
        mc = monte_carlo_pvalue(statistic, sample)
        null_summary = None
    else:
        mc = pvalue_from_counts(sketch.n_exceed, sketch.n)
        null_summary = sketch.summary(QUANTILE_LEVELS)
    several = len(design.blocks) > 1
    if several:
        reference = (
            f"exact finite-sample null of the {test_name} for the tested term's "
            "single-component design (Crainiceanu & Ruppert 2004), used for the model with "
            "other random effects by the pseudo-model approach of Greven et al. (2008)"
        )
        notes.append("with several variance components the exact null is an approximation "
                     "(Greven et al. 2008); it is good unless the other variance components "
                     "are near zero.")
        if null_fit is not None and null_fit.singular:
            notes.append("the null model is a boundary fit: a nuisance variance is estimated "
                         "at zero, where the pseudo-model approximation is least reliable.")
        confint = None
    else:
        reference = (f"exact finite-sample null of the {test_name} (Crainiceanu & Ruppert "
                     "2004), simulated from its spectral representation")
        confint = _confint_closure(full, sd, ss, threads) if reml else None
    if sd.K + sd.p >= sd.n:
        notes.append(f"p + K = {sd.p + sd.K} >= n = {sd.n}: the spectral null is not exact.")
    settings.update(nsim=int(nsim), K=sd.K, p=sd.p)
    return TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="exact", test=test_name, term=loc.label, reference=reference,
        null_distribution=sample, asymptotic=asym, settings=settings,
        seed=None if seed is None or isinstance(seed, np.random.SeedSequence) else int(seed),
        seed_entropy=entropy_of(ss), fits=fits, notes=tuple(notes), _confint=confint,
        null_summary=null_summary,
    )


def _confint_closure(full: LmmFit, sd, ss, threads):
    model = full.model
    intercept = model.design.blocks[0].column_names == ("(Intercept)",)

    def profile(lam: float) -> float:
        return model.objective(np.array([np.sqrt(lam)]), True)

    def confint(level: float = 0.95, nsim: int = 20_000, rtol: float = 1e-3):
        return invert_rlrt(profile, float(full.theta[0] ** 2), sd, level=level, nsim=nsim,
                           seed=ss, threads=threads, rtol=rtol, intercept=intercept)

    return confint
