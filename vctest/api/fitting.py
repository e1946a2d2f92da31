"""Fitting a linear mixed model from a formula and data."""

from __future__ import annotations

import pandas as pd

from vctest._data import as_frame
from vctest.formula.design import build_design
from vctest.model.fit import OPTIMIZERS, LmmFit, fit_model
from vctest.model.lmm import LinearMixedModel


def _fit_iv(formula: object, reml: object, optimizer: object) -> None:
    if not isinstance(formula, str):
        raise TypeError(f"`formula` must be a string such as 'y ~ x + (1 | g)'; got "
                        f"{type(formula).__name__}.")
    if not isinstance(reml, bool):
        raise TypeError(f"`reml` must be True or False; got {reml!r}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}; got {optimizer!r}.")


def fit(
    formula: str,
    data: pd.DataFrame | str,
    *,
    reml: bool = True,
    optimizer: str = "bfgs",
    family: str = "gaussian",
) -> LmmFit:
    """Fit a linear mixed model given in lme4 syntax.

    Parameters
    ----------
    formula : str
        An lme4-style formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
        Random-effects terms: ``(1 | g)``, ``(x | g)``, ``(0 + x | g)``,
        ``(1 + x || g)`` (independent), ``(1 | a/b)`` (nested), ``(1 | a:b)``,
        several and crossed terms.
    data : pandas.DataFrame or str
        The data, a path to a CSV/Parquet file, or a bundled data set name.
        Rows with missing values in the variables used are dropped with a
        warning that says how many.
    reml : bool, default True
        Fit by REML (default, as lme4) or by maximum likelihood.
    optimizer : {"bfgs", "L-BFGS-B", "Powell", "Nelder-Mead"}
        ``"bfgs"``: vctest's bounded quasi-Newton kernel; others: SciPy's.
    family : {"gaussian", "binomial", "poisson"}, default "gaussian"
        ``"binomial"`` (logit; 0/1 or ``cbind(successes, failures)``) and
        ``"poisson"`` (log) fit a GLMM by the Laplace approximation
        (:class:`vctest.model.laplace.GlmmFit`, always maximum likelihood).

    Returns
    -------
    LmmFit
        With ``theta``, ``beta``, ``sigma``, ``loglik``, ``varcorr``,
        ``singular``, ``converged``, ``diagnostics``, ``n_evals`` and
        ``refit(y)``.

    Examples
    --------
    >>> import vctest
    >>> m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    >>> round(m.objective, 3)  # lme4: REMLcrit 1743.628
    1743.628
    >>> m.singular, m.converged
    (False, True)
    """
    _fit_iv(formula, reml, optimizer)
    if family not in ("gaussian", "binomial", "poisson"):
        raise ValueError(f"`family` must be 'gaussian', 'binomial' or 'poisson'; got "
                         f"{family!r}.")
    frame = as_frame(data)
    design = build_design(formula, frame)
    if family != "gaussian":
        from vctest.api.glmm_testing import fit_glmm_design

        return fit_glmm_design(design, family)
    model = LinearMixedModel.from_design(design)
    return fit_model(model, reml=reml, optimizer=optimizer)
