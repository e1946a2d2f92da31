"""``anova``: the sequential table of nested mixed models, as lme4's ``anova(m1, m2, ...)``.

The models are ordered by their number of parameters and, as lme4 does,
refitted by maximum likelihood when fitted by REML (the REML criteria of
models with different fixed effects are not comparable; lme4's
``refit = TRUE``).  Each row compares a model with the one before it:
Chisq = the drop in deviance, Df = the added parameters, and the naive
chi-square p-value (lme4's), next to the boundary-aware references:

* ``Pr(chibar)``: with one added variance (and c added covariances or fixed
  effects, which are interior) 50:50 chi2(c):chi2(c+1) (Self & Liang 1987;
  Stram & Lee 1994); with no added variance the chi-square is right; with
  several added variances the weights depend on the information matrix and
  the column is empty -- use the bootstrap;
* ``Pr(boot)`` with its Monte Carlo SE: the parametric bootstrap of
  :func:`vctest.compare` (each row its own child of one SeedSequence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest._table_result import TableResult
from vctest.api._checks import check_bootstrap_args
from vctest.api._pipeline import Draws, bootstrap_result, fit_pair, model_pair
from vctest.api._sources import ModelSource, fit_design, model_source
from vctest.model.nesting import nesting
from vctest.nulls.asymptotic import chibar_pvalue
from vctest.results import TestResult

__all__ = ["anova"]


def _boundary_reference(full: ModelSource, null: ModelSource) -> tuple[float, float, str]:
    """(variances added, interior parameters added, why not) of ``null`` -> ``full``."""
    try:
        nest = nesting(full.design, null.design)
    except ValueError as exc:
        return np.nan, np.nan, str(exc)
    diag = full.fit.model.layout.is_diagonal
    added = np.setdiff1d(np.arange(diag.size), nest.embed)
    variances = int(diag[added].sum())
    interior = int((~diag[added]).sum()) + full.design.p - null.design.p
    return variances, interior, ""


def _chibar(stat: float, variances: float, interior: float) -> float:
    if not np.isfinite(stat):
        return np.nan
    if variances == 0:
        return float(chi2.sf(stat, interior)) if stat > 0 else 1.0
    if variances == 1:
        return chibar_pvalue(max(stat, 0.0), (0.5, 0.5), (interior, interior + 1))
    return np.nan


def anova(
    *models: Any,
    data: pd.DataFrame | str | None = None,
    names: list[str] | None = None,
    refit: bool = True,
    method: str = "bootstrap",
    nsim: int = 1000,
    seed: SeedLike = None,
    threads: int | None = None,
    family: str = "gaussian",
    link: str | None = None,
) -> TableResult:
    """Compare nested mixed models in one table, as lme4's ``anova(m1, m2, ...)``.

    Parameters
    ----------
    *models : LmmFit, GlmmFit or str
        Two or more fits from :func:`vctest.fit`, or lme4 formulas (then
        ``data``), nested in order of their number of parameters.
    data : pandas.DataFrame or str, optional
        Data for formulas.
    names : list of str, optional
        Row labels (default ``"m1"``, ``"m2"``, ... in the order given).
    refit : bool, default True
        Refit REML fits by maximum likelihood (lme4's default), and say so.
        ``False`` keeps REML criteria, allowed only when all models have the
        same fixed effects.
    method : {"bootstrap", "asymptotic"}, default "bootstrap"
        ``"bootstrap"`` adds a parametric bootstrap p-value per row;
        ``"asymptotic"`` reports the chi-square and chi-bar-square columns only.
    nsim : int, default 1000
        Bootstrap replicates per row.
    seed : int, SeedSequence or None
        Row i (comparing model i with model i - 1) uses the child
        ``spawn_key + (i,)``.
    threads : int, optional
        Numba threads of each row's bootstrap.
    family, link
        For GLMMs given as formulas.

    Returns
    -------
    TableResult
        Columns npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)
        (lme4's), Pr(chibar), Pr(boot), MC.SE.

    Raises
    ------
    ValueError
        Fewer than two models, models on different rows, or REML criteria of
        models with different fixed effects.

    Examples
    --------
    >>> import vctest
    >>> tab = vctest.anova("Reaction ~ Days + (1 | Subject)",
    ...                    "Reaction ~ Days + (Days | Subject)", data="sleepstudy",
    ...                    method="asymptotic")
    >>> tab.to_frame()[["npar", "deviance", "Chisq", "Df"]].round(4)   # lme4's anova
        npar   deviance    Chisq   Df
    m1     4  1794.0786      NaN  NaN
    m2     6  1751.9393  42.1393  2.0
    """
    if len(models) < 2:
        raise ValueError(f"`anova` compares two or more models; got {len(models)}.")
    if method not in ("bootstrap", "asymptotic"):
        raise ValueError(f"`method` must be 'bootstrap' or 'asymptotic'; got {method!r}.")
    if not isinstance(refit, bool):
        raise TypeError(f"`refit` must be True or False; got {refit!r}.")
    if method == "bootstrap":
        check_bootstrap_args(nsim, threads, None, None, 1e-3)
    if names is None:
        names = [f"m{i + 1}" for i in range(len(models))]
    if len(names) != len(models) or len(set(names)) != len(names):
        raise ValueError("`names` must give one distinct label per model.")
    sources = [model_source(m, data if isinstance(m, str) else None, reml=None,
                            family=family, link=link) for m in models]
    notes: list[str] = []
    reml_fits = [s.reml for s in sources]
    if refit and any(reml_fits):
        notes.append("refitted model(s) by ML (instead of REML): "
                     + ", ".join(n for n, r in zip(names, reml_fits, strict=True) if r) + ".")
        sources = [ModelSource(design=s.design, fit=fit_design(s.design, reml=False),
                               family=s.family, link=s.link, offset=s.offset, reml=False)
                   if s.reml else s for s in sources]
    use_reml = any(s.reml for s in sources)
    if use_reml and not all(s.reml for s in sources):
        raise ValueError("some models are REML fits and some ML fits; use refit=True to "
                         "compare them all by ML.")
    rows = [s.design.row_index for s in sources]
    if any(r.size != rows[0].size or not np.array_equal(r, rows[0]) for r in rows):
        raise ValueError("the models use different rows of the data; fit them to the same "
                         "observations (remove rows with missing values first).")
    order = sorted(range(len(sources)), key=lambda i: sources[i].fit.df)
    ss = seed_sequence(seed)
    table, results = [], {}
    prev: ModelSource | None = None
    for pos, i in enumerate(order):
        s = sources[i]
        fit = s.fit
        dev = -2.0 * fit.loglik
        row: dict[str, Any] = {"npar": fit.df, "AIC": fit.aic, "BIC": fit.bic,
                               "logLik": fit.loglik, "deviance": dev, "Chisq": np.nan,
                               "Df": np.nan, "Pr(>Chisq)": np.nan, "Pr(chibar)": np.nan,
                               "Pr(boot)": np.nan, "MC.SE": np.nan}
        if prev is not None:
            stat = -2.0 * prev.fit.loglik - dev
            df = fit.df - prev.fit.df
            row.update({"Chisq": stat, "Df": df,
                        "Pr(>Chisq)": float(chi2.sf(stat, df)) if df > 0 else np.nan})
            variances, interior, why = _boundary_reference(s, prev)
            if why:
                notes.append(f"{names[i]} vs {names[order[pos - 1]]}: {why}")
            else:
                row["Pr(chibar)"] = _chibar(stat, variances, interior)
                if variances > 1:
                    notes.append(f"{names[i]} adds {variances} variances to "
                                 f"{names[order[pos - 1]]}: their chi-bar-square weights "
                                 "depend on the information matrix; see Pr(boot).")
                if method == "bootstrap":
                    res = _bootstrap_row(s, prev, use_reml, ss, pos, nsim, threads)
                    results[names[i]] = res
                    se = res.pvalue_mc_se
                    row.update({"Pr(boot)": res.pvalue, "MC.SE": np.nan if se is None else se})
        table.append(row)
        prev = s
    frame = pd.DataFrame(table, index=[names[i] for i in order])
    frame["npar"] = frame["npar"].astype(int)
    notes.append("Pr(>Chisq) is lme4's naive chi-square p-value; an added variance starts on "
                 "its boundary, so it is conservative there: use Pr(boot) or Pr(chibar).")
    settings = {"formulas": [sources[i].design.formula.text for i in order],
                "criterion": "REML" if use_reml else "ML", "method": method,
                "nsim": nsim if method == "bootstrap" else None, "n": sources[0].design.n,
                "seed": seed if isinstance(seed, int) else None,
                "seed_entropy": entropy_of(ss)}
    crit = "REML" if use_reml else "ML"
    methods = (f"We compared the nested models {'; '.join(settings['formulas'])}, fitted by "
               f"{'restricted maximum likelihood' if use_reml else 'maximum likelihood'} to "
               f"the same {settings['n']} observations, by sequential likelihood-ratio tests"
               + (f", each referred to a parametric bootstrap with {nsim} replicates "
                  "(Halekoh & Højsgaard 2014)" if method == "bootstrap" else "")
               + "; the chi-bar-square reference for an added variance (Self & Liang 1987; "
                 "Stram & Lee 1994) and the naive chi-square are given for comparison.")
    return TableResult(title=f"Data: {settings['n']} observations; models compared by {crit}",
                       frame=frame, notes=tuple(notes), settings=settings, methods=methods,
                       results=results)


def _bootstrap_row(full: ModelSource, null: ModelSource, reml: bool,
                   ss: np.random.SeedSequence, pos: int, nsim: int,
                   threads: int | None) -> TestResult:
    pair = model_pair(full.design, null.design, family=full.family, link=full.link,
                      offset=full.offset, reml=reml)
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, pos))
    draws = Draws(nsim=int(nsim), seed=child, threads=threads, progress=False)
    return bootstrap_result(fit_pair(pair), draws)
