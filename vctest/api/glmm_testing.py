"""GLMM fits and the bootstrap test of their variance components."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2

from vctest._pvalue import clean_statistic, monte_carlo_pvalue
from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest.formula.design import Design
from vctest.model.laplace import GeneralizedLinearMixedModel, fit_glmm, glm_fit
from vctest.model.reduce import drop_term, locate_term
from vctest.nulls.approximations import bartlett_pvalue, gamma_pvalue
from vctest.nulls.asymptotic import mixture_50_50
from vctest.nulls.executor import chunk_ranges, run_chunks
from vctest.nulls.glmm_bootstrap import GlmmBootstrapTask, statistics
from vctest.results import TestResult

GLMM_FAMILIES = ("binomial", "poisson")


def fit_glmm_design(design: Design, family: str):
    """Fit a GLMM design (or raise a clear error when it has no random effects)."""
    if not design.blocks:
        raise ValueError("the formula has no random-effects term such as `(1 | group)`; "
                         "a mixed model needs at least one.")
    return fit_glmm(GeneralizedLinearMixedModel.from_design(design, family))


def glmm_vc_test(design: Design, *, family: str, term: str, method: str, nsim: int,
                 seed: SeedLike, backend: str, client: Any, progress: bool | None,
                 settings_extra: dict[str, Any]) -> TestResult:
    """Test a variance component of a GLMM: bootstrap (or the asymptotic mixture)."""
    if method not in ("bootstrap", "asymptotic"):
        raise ValueError(f"no exact null exists for a GLMM variance component; use "
                         f"method='bootstrap' (or 'asymptotic'), not {method!r}.")
    loc = locate_term(design, term)
    null_design = drop_term(design, loc)
    full = fit_glmm_design(design, family)
    if null_design.blocks:
        null = fit_glmm(GeneralizedLinearMixedModel.from_design(null_design, family))
        null_obj = null.objective
    else:
        null = None
        _, null_obj = glm_fit(null_design, family)
    statistic = float(clean_statistic(null_obj - full.objective))
    df = loc.n_params_removed
    asym = {f"naive chi2({df})": float(chi2.sf(statistic, df)) if statistic > 0 else 1.0}
    if loc.whole_block and design.blocks[loc.block].k == 1:
        asym["50:50 mixture chi2(0):chi2(1)"] = mixture_50_50(statistic)
    settings = {**settings_extra, "formula": design.formula.text,
                "null_formula": null_design.formula.text, "term": loc.label,
                "family": family, "method": method, "n": design.n, "reml": False,
                "data_hash": design.data_hash}
    fits = {"full": full, "null": null}
    if method == "asymptotic":
        key = next((k for k in asym if "mixture" in k), next(iter(asym)))
        return TestResult(statistic=statistic, pvalue=asym[key], pvalue_mc_se=None,
                          pvalue_ci=None, method="asymptotic", test="LRT (Laplace)",
                          term=loc.label, reference=f"asymptotic {key}",
                          null_distribution=None, asymptotic=asym, settings=settings,
                          seed=None, seed_entropy=None, fits=fits)
    ss = seed_sequence(seed)
    task = GlmmBootstrapTask(full=full, null=null, null_design=null_design, family=family,
                             seed=ss)
    obj = np.full((nsim, 2), np.nan)
    failed = np.zeros(nsim, dtype=bool)
    theta = np.full((nsim, full.theta.size), np.nan)
    sing1 = np.zeros(nsim, dtype=bool)
    sing0 = np.zeros(nsim, dtype=bool)

    def take(a: int, b: int, r) -> None:
        obj[a:b], failed[a:b], theta[a:b], sing1[a:b], sing0[a:b] = r

    size = 50 if backend == "local" else max(1, nsim // 16)
    run_chunks(task, chunk_ranges(0, nsim, size), take, backend=backend, client=client)
    stat = statistics(obj, failed)
    ok = np.isfinite(stat)
    sample = stat[ok]
    n_failed = int((~ok).sum())
    if sample.size == 0:
        raise RuntimeError(f"all {nsim} bootstrap refits failed; the model cannot be "
                           "bootstrapped as specified.")
    mc = monte_carlo_pvalue(statistic, sample)
    bound = (1 + mc.n_exceed + n_failed) / (1 + sample.size + n_failed)
    if n_failed > 0.01 * nsim:
        warnings.warn(f"{n_failed} of {nsim} GLMM bootstrap refits failed; the p-value "
                      f"{mc.pvalue:.4g} excludes them ({bound:.4g} if all had exceeded).",
                      UserWarning, stacklevel=3)
    settings.update(nsim=nsim, df=df, backend=backend)
    return TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="bootstrap", test="LRT (Laplace, parametric bootstrap)", term=loc.label,
        reference=("parametric bootstrap: responses simulated from the fitted null "
                   f"{family} model, both models refitted (Laplace)"),
        null_distribution=sample, asymptotic=asym, settings=settings,
        seed=None if seed is None or isinstance(seed, np.random.SeedSequence) else int(seed),
        seed_entropy=entropy_of(ss), n_failed=n_failed, pvalue_bound=bound,
        failures={"refit failed": n_failed} if n_failed else {},
        approximations={f"gamma approximation (df={df})": gamma_pvalue(statistic, sample),
                        f"Bartlett-scaled chi2({df})": bartlett_pvalue(statistic, sample, df)},
        fits=fits,
        replicate_summary={"full_refits_at_boundary": int(np.sum(sing1 & ok)),
                           "null_refits_at_boundary": int(np.sum(sing0 & ok)),
                           "refits_rechecked": 0,
                           "pvalue_without_rechecked": mc.pvalue},
        replicates=_GlmmRecord(statistic=stat, objective=obj, theta_full=theta,
                               failure=(~ok).astype(np.int8), full_singular=sing1,
                               null_singular=sing0),
    )


@dataclass(frozen=True, eq=False)
class _GlmmRecord:
    """Per-replicate outcome of a GLMM bootstrap (NaN statistic where failed)."""

    statistic: np.ndarray
    objective: np.ndarray
    theta_full: np.ndarray
    failure: np.ndarray
    full_singular: np.ndarray
    null_singular: np.ndarray
