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
  r added variances in r different terms (an orthant) the mixture of
  chi2(c) .. chi2(c+r) with weights from the covariance of their estimators,
  the inverse Fisher information at the null fit
  (:func:`vctest.model.information.covariance_information`,
  :func:`vctest.nulls.asymptotic.chibar_weights_orthant`; LMMs); with two or
  more new columns in one term the column is empty -- use the bootstrap;
* ``Pr(boot)`` with its Monte Carlo SE: the parametric bootstrap of
  :func:`vctest.compare` (each row its own child of one SeedSequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest._table_result import TableResult
from vctest.api._checks import check_bootstrap_args
from vctest.api._pipeline import Draws, bootstrap_result, fit_pair, model_pair
from vctest.api._sources import ModelSource, fit_design, model_source
from vctest.model.information import covariance_information
from vctest.model.nesting import nesting
from vctest.nulls.asymptotic import chibar_pvalue, chibar_weights_orthant
from vctest.results import TestResult

__all__ = ["anova"]


@dataclass(frozen=True)
class Boundary:
    """The chi-bar-square reference of one anova row: ``sum_k weights[k] chi2(interior + k)``.

    ``weights`` is None (with ``why``) when no reference is available.
    """

    variances: int
    interior: int
    weights: tuple[float, ...] | None
    why: str = ""
    nested: bool = True

    def describe(self) -> str:
        """The reference in words (for a row adding several variances)."""
        if self.weights is None:
            return f"no chi-bar-square ({self.why}); see Pr(boot)"
        top = self.interior + len(self.weights) - 1
        return (f"Pr(chibar) mixes chi2({self.interior})..chi2({top}) with weights "
                + ", ".join(f"{w:.4f}" for w in self.weights)
                + " from the Fisher information at the null fit")

    def pvalue(self, stat: float) -> float:
        """The chi-bar-square p-value of ``stat`` (NaN without weights)."""
        if self.weights is None or not np.isfinite(stat):
            return np.nan
        if self.variances == 0:
            return float(chi2.sf(stat, self.interior)) if stat > 0 else 1.0
        dfs = self.interior + np.arange(len(self.weights))
        return chibar_pvalue(max(stat, 0.0), self.weights, dfs)


def _boundary_reference(full: ModelSource, null: ModelSource, reml: bool) -> Boundary:
    """The boundary of ``null`` -> ``full``: which variances start at zero, and their weights.

    Added variances each in a different term (one new column per term) make
    the tangent cone an orthant times a linear space (the added covariances
    and fixed effects); the orthant's weights come from the covariance of the
    added variances' estimators, the block of the inverse Fisher information
    at the null fit (Self & Liang 1987; Stram & Lee 1994).  Two or more new
    columns of one term make a cone of covariance matrices: no weights.
    """
    try:
        nest = nesting(full.design, null.design)
    except ValueError as exc:
        return Boundary(0, 0, None, str(exc), nested=False)
    layout = full.fit.model.layout
    diag = layout.is_diagonal
    added = np.setdiff1d(np.arange(diag.size), nest.embed)
    new_var = added[diag[added]]
    variances = int(new_var.size)
    interior = int((~diag[added]).sum()) + full.design.p - null.design.p
    if variances == 0:
        return Boundary(0, interior, ())
    if variances == 1:
        return Boundary(1, interior, (0.5, 0.5))
    term_of = np.searchsorted(layout.offsets, new_var, side="right") - 1
    if np.unique(term_of).size < variances:
        return Boundary(variances, interior, None,
                        "it adds two or more columns to one term: the boundary is a cone of "
                        "covariance matrices, whose chi-bar-square weights are not implemented")
    if full.family != "gaussian":
        return Boundary(variances, interior, None,
                        "the weights need the Fisher information, implemented for LMMs only")
    theta = np.zeros(diag.size)
    theta[nest.embed] = null.fit.theta
    try:
        info = covariance_information(full.design, theta, null.fit.sigma, reml=reml)
        cov = np.linalg.inv(info)
        idx = 1 + new_var
        weights = chibar_weights_orthant(cov[np.ix_(idx, idx)])
    except (ValueError, np.linalg.LinAlgError) as exc:
        return Boundary(variances, interior, None, f"no Fisher information ({exc})")
    return Boundary(variances, interior, tuple(weights))


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
            bound = _boundary_reference(s, prev, use_reml)
            if not bound.nested:
                notes.append(f"{names[i]} vs {names[order[pos - 1]]}: {bound.why}")
            else:
                row["Pr(chibar)"] = bound.pvalue(stat)
                if bound.variances > 1:
                    notes.append(f"{names[i]} adds {bound.variances} variances to "
                                 f"{names[order[pos - 1]]}: {bound.describe()}.")
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
