"""``reduce``: backward elimination of random-effects terms, as ``lmerTest::step``.

At each step the :func:`~vctest.api.ranova.ranova` table of the current model
is computed; the row with the largest p-value is removed while that p-value
exceeds ``alpha``, and the reduced model is refitted.  The p-values are the
boundary-correct ones (exact or bootstrap, or the chi-bar-square with
``method="asymptotic"``) rather than lmerTest's naive chi-square, but a
selection procedure is still a selection procedure: **p-values of the kept
terms, computed on the data that chose them, are not calibrated** (they are
too small), so report the selected model as selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest._table_result import TableResult
from vctest.api._checks import check_bootstrap_args
from vctest.api._sources import ModelSource, fit_design, model_source
from vctest.api.ranova import METHODS, ranova_of, ranova_rows
from vctest.model.reduce import drop_term

__all__ = ["reduce"]

SELECTION_NOTE = ("p-values after selection are not calibrated: the kept terms' p-values "
                  "were computed on the data that selected them; report the final model as "
                  "the result of backward elimination at this alpha.")


def reduce(
    fit_or_formula: Any,
    data: pd.DataFrame | str | None = None,
    *,
    alpha: float = 0.05,
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
    """Remove random-effects terms backwards while their p-value exceeds ``alpha``.

    Parameters
    ----------
    fit_or_formula, data, method, nsim, nsim_exact, reml, threads, family, link, offset
        As for :func:`vctest.ranova` (the p-value used is ``Pr(ref)``, or
        ``Pr(chibar)`` with ``method="asymptotic"``).
    alpha : float, default 0.05
        Keep a term whose p-value is at most ``alpha``.
    seed : int, SeedSequence or None
        Step s uses the child ``spawn_key + (s,)`` (and each of its rows a
        child of that).

    Returns
    -------
    TableResult
        One row per term removed (``Eliminated`` = its step) and per term
        kept (``Eliminated`` = 0, with its p-value in the final model);
        ``settings["final_formula"]`` is the selected model.  The notes say
        that p-values after selection are not calibrated.

    Examples
    --------
    >>> import vctest
    >>> tab = vctest.reduce("strength ~ 1 + (1 | batch/cask)", "Pastes",
    ...                     nsim_exact=20_000, seed=1)
    >>> tab.to_frame()[["Eliminated", "Df"]]
                      Eliminated  Df
    (1 | batch)                1   1
    (1 | cask:batch)           0   1
    >>> tab.settings["final_formula"]
    'strength ~ 1 + (1 | cask:batch)'
    """
    method = "auto" if method is None else method
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    if isinstance(nsim_exact, bool) or not isinstance(nsim_exact, int | np.integer) or \
            nsim_exact < 1:
        raise ValueError(f"`nsim_exact` must be a positive integer; got {nsim_exact!r}.")
    check_bootstrap_args(nsim, threads, None, None, 1e-3)
    src = model_source(fit_or_formula, data, reml=reml, family=family, link=link,
                       offset=offset)
    ss = seed_sequence(seed)
    pcol = "Pr(chibar)" if method == "asymptotic" else "Pr(ref)"
    eliminated: list[dict[str, Any]] = []
    labels: list[str] = []
    step = 0
    start_formula = src.design.formula.text
    final: pd.DataFrame | None = None
    while True:
        step += 1
        child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, step))
        table = ranova_of(src, method=method, nsim=nsim, nsim_exact=nsim_exact, ss=child,
                          threads=threads).to_frame().iloc[1:]
        worst = table[pcol].idxmax()
        if not table[pcol].loc[worst] > alpha:
            final = table
            break
        eliminated.append({"Eliminated": step, **table.loc[worst].to_dict()})
        labels.append(str(worst))
        loc = dict(ranova_rows(src.design))[worst]
        reduced = drop_term(src.design, loc)
        if not reduced.blocks:
            src = ModelSource(design=reduced, fit=src.fit, family=src.family, link=src.link,
                              offset=src.offset, reml=src.reml)
            break
        src = ModelSource(design=reduced,
                          fit=fit_design(reduced, family=src.family, link=src.link,
                                         offset=src.offset, reml=src.reml),
                          family=src.family, link=src.link, offset=src.offset, reml=src.reml)
    rows = eliminated
    if final is not None:
        rows = rows + [{"Eliminated": 0, **r.to_dict()} for _, r in final.iterrows()]
        labels = labels + [str(i) for i in final.index]
    frame = pd.DataFrame(rows, index=labels)
    if len(frame):
        frame["Eliminated"] = frame["Eliminated"].astype(int)
        frame["npar"] = frame["npar"].astype(int)
        frame["Df"] = frame["Df"].astype(int)
    notes = [SELECTION_NOTE]
    if not src.design.blocks:
        notes.append("every random-effects term was removed: the selected model is a "
                     "fixed-effects model.")
    settings = {"formula": start_formula, "final_formula": src.design.formula.text,
                "alpha": alpha, "method": method, "pvalue_column": pcol, "nsim": nsim,
                "nsim_exact": nsim_exact, "steps": step,
                "seed": seed if isinstance(seed, int) else None,
                "seed_entropy": entropy_of(ss)}
    methods = (f"Random-effects terms of {start_formula} were selected by backward "
               f"elimination: at each step the term whose likelihood-ratio test (see ranova) "
               f"had the largest p-value above alpha = {alpha} was removed and the model "
               f"refitted, giving {src.design.formula.text}. The p-values of the selected "
               "model are not adjusted for the selection.")
    return TableResult(title=f"Backward reduction of random-effects terms (alpha = {alpha})",
                       frame=frame, notes=tuple(notes), settings=settings, methods=methods)
