"""GLMM fits from formulas and the bootstrap test of their variance components."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from vctest._pvalue import clean_statistic
from vctest._rng import SeedLike
from vctest.formula.design import Design
from vctest.model.glm import GeneralizedLinearModel, GlmFit, family_iv, fit_glm
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, fit_glmm
from vctest.model.nesting import nesting
from vctest.model.reduce import drop_term, locate_term
from vctest.nulls.asymptotic import mixture_50_50, mixture_slope
from vctest.nulls.glmm_bootstrap import GlmmGenerator
from vctest.results import TestResult

GLMM_FAMILIES = ("binomial", "poisson")


def check_family(family: object, link: object, offset: object = None) -> None:
    """Validate ``family`` (any of vctest's), and ``link`` and ``offset`` (GLMMs only)."""
    if family not in ("gaussian", *GLMM_FAMILIES):
        raise ValueError(f"`family` must be 'gaussian', 'binomial' or 'poisson'; got "
                         f"{family!r}.")
    if family == "gaussian":
        if link is not None:
            raise ValueError("`link` applies to family='binomial' or 'poisson' only; a "
                             "Gaussian mixed model has the identity link.")
        if offset is not None:
            raise ValueError("`offset` applies to family='binomial' or 'poisson' only.")
    else:
        family_iv(family, link)


def offset_values(offset: Any, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray | None:
    """The offset on the rows a model uses (``rows``: their positions in ``frame``).

    ``offset`` is a column name of ``frame`` or one value per row of
    ``frame`` (before rows with missing values were dropped).
    """
    if offset is None:
        return None
    if isinstance(offset, str):
        if offset not in frame.columns:
            raise ValueError(f"`offset` column {offset!r} is not in the data; columns are "
                             f"{list(frame.columns)[:20]}.")
        values = pd.to_numeric(frame[offset], errors="coerce").to_numpy(dtype=float)
        name = f"`offset` column {offset!r}"
    else:
        try:
            values = np.asarray(offset, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`offset` must be a column name or numeric values; got "
                            f"{type(offset).__name__}.") from exc
        if values.size != len(frame):
            raise ValueError(f"`offset` must have one value per row of the data ({len(frame)}); "
                             f"got {values.size}.")
        name = "`offset`"
    used = values[rows]
    if not np.all(np.isfinite(used)):
        bad = int(np.sum(~np.isfinite(used)))
        raise ValueError(f"{name} has missing or non-finite values on {bad} of the rows "
                         "used; fix them or drop those rows first.")
    return used


def fit_glmm_design(design: Design, family: str, link: str | None = None,
                    offset: np.ndarray | None = None) -> GlmmFit:
    """Fit a GLMM design (a clear error when it has no random effects)."""
    if not design.blocks:
        raise ValueError("the formula has no random-effects term such as `(1 | group)`; "
                         "a mixed model needs at least one.")
    return fit_glmm(GeneralizedLinearMixedModel.from_design(design, family, link, offset))


def glmm_generating_model(design: Design, family: str, link: str | None,
                          offset: np.ndarray | None) -> tuple[GlmmGenerator, GlmmFit | GlmFit]:
    """Fit a null design (GLMM, or GLM without random effects) and wrap it for simulation."""
    if design.blocks:
        fit: GlmmFit | GlmFit = fit_glmm_design(design, family, link, offset)
    else:
        fit = fit_glm(GeneralizedLinearModel.from_design(design, family, link, offset))
    return GlmmGenerator.from_fit(fit), fit


def glmm_vc_test(design: Design, *, family: str, link: str | None, offset: np.ndarray | None,
                 term: str, method: str, nsim: int, seed: SeedLike, threads: int | None,
                 progress: bool | None, stop_alpha: float | None, stop_error: float,
                 backend: str, client: Any, settings_extra: dict[str, Any]) -> TestResult:
    """Test a variance component of a GLMM: parametric bootstrap (or the asymptotic mixture)."""
    from vctest.api.comparing import bootstrap_test

    if method not in ("bootstrap", "asymptotic"):
        raise ValueError(f"no exact null exists for a GLMM variance component; use "
                         f"method='bootstrap' (or 'asymptotic'), not {method!r}.")
    loc = locate_term(design, term)
    null_design = drop_term(design, loc)
    full = fit_glmm_design(design, family, link, offset)
    generator, null_fit = glmm_generating_model(null_design, family, full.model.link, offset)
    statistic = float(clean_statistic(generator.objective - full.objective))
    df = loc.n_params_removed
    asym = {f"naive chi2({df})": float(chi2.sf(statistic, df)) if statistic > 0 else 1.0}
    block = design.blocks[loc.block]
    if loc.whole_block and block.k == 1:
        asym["50:50 mixture chi2(0):chi2(1)"] = mixture_50_50(statistic)
    elif not loc.whole_block and len(loc.columns) == 1 and block.k == 2:
        asym["50:50 mixture chi2(1):chi2(2)"] = mixture_slope(statistic)
    settings = {**settings_extra, "formula": design.formula.text,
                "null_formula": null_design.formula.text, "term": loc.label,
                "family": family, "link": full.model.link, "method": method, "n": design.n,
                "n_dropped": design.n_dropped, "data_hash": design.data_hash,
                "offset": offset is not None}
    notes = ["the full model is a boundary (singular) fit."] if full.singular else []
    if method == "asymptotic":
        mixtures = [k for k in asym if k.startswith("50:50")]
        if not mixtures:
            raise ValueError(f"no asymptotic mixture is implemented for removing {loc.label} "
                             f"({df} covariance parameters); use method='bootstrap'.")
        return TestResult(statistic=statistic, pvalue=asym[mixtures[0]], pvalue_mc_se=None,
                          pvalue_ci=None, method="asymptotic", test="LRT (Laplace)",
                          term=loc.label,
                          reference=f"asymptotic {mixtures[0]} (Self & Liang 1987)",
                          null_distribution=None, asymptotic=asym, settings=settings,
                          seed=None, seed_entropy=None,
                          fits={"full": full, "null": null_fit}, notes=tuple(notes))
    nest = nesting(design, null_design)
    return bootstrap_test(
        full=full, null=generator, null_fit=null_fit, embed=nest.embed, df=nest.df,
        reml=False, term=loc.label, asymptotic=asym, settings=settings, nsim=nsim, seed=seed,
        threads=threads, progress=progress, stop_alpha=stop_alpha, stop_error=stop_error,
        notes=notes, backend=backend, client=client,
    )
