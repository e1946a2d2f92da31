"""``ranova``: one test per random-effects term, as ``lmerTest::ranova`` with correct p-values.

Each row removes one random-effects term -- or, for a term with slopes, one
slope (``(Days | Subject)`` -> ``(1 | Subject)``, lmerTest's
``reduce.terms = TRUE``) -- refits, and reports lmerTest's columns (npar,
logLik, AIC, LRT, Df, the naive chi-square p) next to

* ``Pr(chibar)``: the chi-bar-square reference of the boundary (Self & Liang
  1987; Stram & Lee 1994): removing one variance and its k - 1 covariances
  of a k-column term gives 50:50 chi2(k-1):chi2(k) -- the covariances are
  interior, only the variance is on its bound, so the weights do not depend
  on the Fisher information;
* ``Pr(ref)`` with its Monte Carlo SE: the exact finite-sample null
  (Crainiceanu & Ruppert 2004; Greven et al. 2008 with other random effects)
  when the row removes a single variance component of an LMM, else a
  parametric bootstrap (both models refitted to responses simulated from the
  reduced model).  Each row draws from its own child of one
  :class:`numpy.random.SeedSequence`, so a row's numbers do not depend on
  the other rows, and the rows simulate in parallel
  (:func:`vctest.nulls.executor.run_rows`) with the same numbers on any
  number of threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest._table_result import TableResult
from vctest.api._checks import check_bootstrap_args
from vctest.api._pipeline import (
    Draws,
    FittedPair,
    check_method,
    fit_pair,
    located_pair,
    reference,
)
from vctest.api._sources import ModelSource, model_source
from vctest.formula.design import Design
from vctest.model.reduce import TermLocation
from vctest.nulls.asymptotic import chibar_pvalue
from vctest.nulls.executor import run_rows
from vctest.results import TestResult

__all__ = ["ranova", "ranova_of", "ranova_rows"]

METHODS = ("auto", "bootstrap", "asymptotic")


def ranova_rows(design: Design) -> list[tuple[str, TermLocation]]:
    """lmerTest's reductions of ``design``: (row label, what the row removes).

    A term with covariates gives one row per covariate column, removing that
    column's variance and covariances (the whole term when it is the only
    column): ``"Days in (Days | Subject)"``.  An intercept-only term gives one
    row removing it: ``"(1 | Batch)"``.
    """
    rows = []
    for j, blk in enumerate(design.blocks):
        k = blk.k
        written = blk.term.source if blk.term.source.startswith("(") else blk.term.label
        covariates = [c for c, name in enumerate(blk.column_names) if name != "(Intercept)"]
        if not covariates:
            rows.append((blk.term.label, TermLocation(
                block=j, columns=tuple(range(k)), whole_block=True, label=blk.term.label,
                n_params_removed=k * (k + 1) // 2)))
            continue
        for c in covariates:
            name = blk.column_names[c]
            label = f"(0 + {name} | {blk.name})"
            rows.append((f"{name} in {written}", TermLocation(
                block=j, columns=(c,), whole_block=k == 1, label=label, n_params_removed=k)))
    return rows


def _chibar(statistic: float, loc: TermLocation, design: Design) -> float:
    k = design.blocks[loc.block].k
    if len(loc.columns) != 1:
        return float("nan")
    return chibar_pvalue(statistic, (0.5, 0.5), (k - 1, k))


def ranova(
    fit_or_formula: Any,
    data: pd.DataFrame | str | None = None,
    *,
    method: str | None = None,
    nsim: int = 1000,
    nsim_exact: int = 100_000,
    seed: SeedLike = None,
    reml: bool | None = None,
    threads: int | None = None,
    family: str = "gaussian",
    link: str | None = None,
    offset: Any = None,
) -> TableResult:
    """One likelihood-ratio test per random-effects term, as lmerTest's ``ranova``.

    The first row (``<none>``) is the model; each further row removes one
    term, or one slope of a term with slopes (``Days in (Days | Subject)``
    reduces ``(Days | Subject)`` to ``(1 | Subject)``).  The columns npar,
    logLik, AIC, LRT, Df and ``Pr(>Chisq)`` are lmerTest's (the last is the
    naive chi-square p-value, which ignores that a variance is on its
    boundary under the null: conservative); vctest adds

    * ``Pr(chibar)``: the chi-bar-square mixture 50:50 chi2(Df-1):chi2(Df);
    * ``Pr(ref)``, ``MC.SE``, ``reference``: the exact null (LMM, the row removes
      one variance component) or a parametric bootstrap (slopes, GLMMs, or
      ``method="bootstrap"``), with its Monte Carlo standard error.

    Parameters
    ----------
    fit_or_formula : LmmFit, GlmmFit or str
        A fit from :func:`vctest.fit`, or an lme4 formula (then ``data``).
    data : pandas.DataFrame or str, optional
        Data for a formula (DataFrame, CSV/Parquet path or bundled name).
    method : {"auto", "bootstrap", "asymptotic"}, optional
        ``"auto"`` (default): exact where the row removes a single variance
        component of an LMM, bootstrap otherwise.  ``"bootstrap"``: every row
        by bootstrap.  ``"asymptotic"``: no simulation (``Pr(ref)`` empty).
    nsim : int, default 1000
        Bootstrap replicates per bootstrap row.
    nsim_exact : int, default 100000
        Exact null draws per exact row.
    seed : int, SeedSequence or None
        One seed for the table; row i draws from the SeedSequence child
        ``spawn_key + (i,)``.
    reml : bool, optional
        For a formula: REML (default for an LMM, as lmerTest's ``lmer``) or ML.
        A fit keeps its own criterion.
    threads : int, optional
        Threads for the simulations (default all of Numba's).  The models are
        fitted first, row after row; then up to ``threads`` rows simulate
        side by side, each with ``threads // rows`` Numba threads.  A row's
        numbers depend only on its seed, never on ``threads``.
    family, link, offset
        For a GLMM given as a formula (see :func:`vctest.fit`).

    Returns
    -------
    TableResult
        ``to_frame()``, ``summary()``, HTML in a notebook, ``to_dict()`` /
        ``to_json()``, ``methods_text()``; ``results`` holds each row's
        :class:`~vctest.results.TestResult`.

    Raises
    ------
    ValueError
        If the model has no random effects or an argument is out of range.

    Examples
    --------
    >>> import vctest
    >>> tab = vctest.ranova("Reaction ~ Days + (Days | Subject)", "sleepstudy",
    ...                     nsim=99, seed=1)
    >>> tab.to_frame()[["npar", "LRT", "Df"]].round(4)   # lmerTest: 42.8368 on 2 Df
                              npar      LRT   Df
    <none>                       6      NaN  NaN
    Days in (Days | Subject)     4  42.8368  2.0
    >>> float(tab["Pr(ref)"].iloc[1]) == 1 / 100   # no replicate reached 42.8
    True
    """
    method = "auto" if method is None else method
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    if isinstance(nsim_exact, bool) or not isinstance(nsim_exact, int | np.integer) or \
            nsim_exact < 1:
        raise ValueError(f"`nsim_exact` must be a positive integer; got {nsim_exact!r}.")
    check_bootstrap_args(nsim, threads, None, None, 1e-3)
    src = model_source(fit_or_formula, data, reml=reml, family=family, link=link,
                       offset=offset)
    return ranova_of(src, method=method, nsim=nsim, nsim_exact=nsim_exact,
                     ss=seed_sequence(seed), threads=threads,
                     seed=seed if isinstance(seed, int) else None)


def ranova_of(src: ModelSource, *, method: str, nsim: int, nsim_exact: int,
              ss: np.random.SeedSequence, threads: int | None,
              seed: int | None = None) -> TableResult:
    """The ranova table of a fitted model (arguments checked by :func:`ranova`)."""
    design, full_fit = src.design, src.fit
    if not design.blocks:
        raise ValueError("the model has no random-effects term; ranova tests random effects.")
    rows = ranova_rows(design)
    glmm = src.family != "gaussian"
    table = [{"npar": full_fit.df, "logLik": full_fit.loglik, "AIC": full_fit.aic,
              "LRT": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan, "Pr(chibar)": np.nan,
              "Pr(ref)": np.nan, "MC.SE": np.nan, "reference": ""}]
    results: dict[str, TestResult] = {}
    notes: list[str] = []
    jobs: list[tuple[int, FittedPair, str]] = []
    for i, (_, loc) in enumerate(rows):
        pair = located_pair(design, loc, family=src.family, link=src.link,
                            offset=src.offset, reml=src.reml)
        fitted = fit_pair(pair)
        stat, df = fitted.statistic, loc.n_params_removed
        naive = next(iter(fitted.asymptotic.values()))
        null_obj = fitted.generator.objective
        null_npar = full_fit.df - df
        table.append({"npar": null_npar, "logLik": -0.5 * null_obj,
                      "AIC": null_obj + 2.0 * null_npar, "LRT": stat, "Df": df,
                      "Pr(>Chisq)": naive, "Pr(chibar)": _chibar(stat, loc, design),
                      "Pr(ref)": np.nan, "MC.SE": np.nan, "reference": "chi-bar-square"})
        if method != "asymptotic":
            kind = "exact" if (method == "auto" and not glmm and pair.single_scalar) \
                else "bootstrap"
            check_method(pair, kind)
            jobs.append((i, fitted, kind))

    def simulate(j: int, row_threads: int | None) -> TestResult:
        i, fitted, kind = jobs[j]
        child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i))
        draws = Draws(nsim=nsim_exact if kind == "exact" else nsim, seed=child,
                      threads=row_threads, progress=False)
        return reference(fitted, kind, draws)

    for (i, _, kind), res in zip(jobs, run_rows(simulate, len(jobs), threads), strict=True):
        results[rows[i][0]] = res
        se = np.nan if res.pvalue_mc_se is None else res.pvalue_mc_se
        table[i + 1].update({"Pr(ref)": res.pvalue, "MC.SE": se, "reference": kind})
        notes += [n for n in res.notes if n not in notes]
    frame = pd.DataFrame(table, index=["<none>"] + [label for label, _ in rows])
    frame["npar"] = frame["npar"].astype(int)
    crit = "REML" if src.reml else "ML"
    if not glmm:
        notes.insert(0, f"fits by {crit}; LRT = 2 (logLik - logLik of the reduced model), "
                        "lmerTest's statistic.")
    notes.append("Pr(>Chisq) is the naive chi-square p-value (lmerTest's): a removed variance "
                 "lies on its boundary, so it is conservative; use Pr(ref) (or Pr(chibar)).")
    settings = {"formula": design.formula.text, "method": method, "nsim": nsim,
                "nsim_exact": nsim_exact, "reml": src.reml, "family": src.family,
                "n": design.n, "seed": seed,
                "seed_entropy": entropy_of(ss)}
    return TableResult(
        title=f"ANOVA-like table for random effects: single term deletion ({crit}): "
              f"{design.formula.text}",
        frame=frame, notes=tuple(notes), settings=settings,
        methods=_methods_paragraph(design, src.reml, glmm, frame, nsim, nsim_exact),
        results=results)


def _methods_paragraph(design: Design, reml: bool, glmm: bool, frame: pd.DataFrame,
                       nsim: int, nsim_exact: int) -> str:
    kinds = set(frame["reference"].iloc[1:])
    fit_kind = ("maximum likelihood with the Laplace approximation" if glmm else
                "restricted maximum likelihood (REML)" if reml else "maximum likelihood (ML)")
    text = [f"We assessed each random-effects term of the model {design.formula.text} "
            f"(n = {design.n}) by a likelihood-ratio test against the model without it "
            f"(for a term with slopes, without one slope), all models fitted by {fit_kind} "
            "with vctest."]
    if "exact" in kinds:
        text.append("Where a row removes a single variance component the statistic was "
                    "referred to its exact finite-sample null distribution (Crainiceanu & "
                    "Ruppert 2004; Greven et al. 2008 with other random effects), simulated with "
                    f"{nsim_exact} draws.")
    if "bootstrap" in kinds:
        lead = "For the other rows it" if "exact" in kinds else "Each statistic"
        text.append(f"{lead} was referred to a parametric bootstrap with {nsim} "
                    "replicates, both models refitted to each response simulated from the "
                    "reduced model (Halekoh & Højsgaard 2014).")
    text.append("The chi-bar-square mixture 50:50 chi2(df-1):chi2(df) (Self & Liang 1987; "
                "Stram & Lee 1994) is reported for comparison; the naive chi-square p-value "
                "ignores the boundary and is conservative.")
    return " ".join(text)
