"""Fitting a linear mixed model from a formula and data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vctest._data import as_frame
from vctest.api._checks import check_family, offset_values
from vctest.api.smooth_test import check_smooth_glmm
from vctest.formula.design import Design, build_design
from vctest.model.fit import OPTIMIZERS, LmmFit, fit_model
from vctest.model.glmm import OPTIMIZERS as GLMM_OPTIMIZERS
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, fit_glmm
from vctest.model.lmm import LinearMixedModel
from vctest.model.smooth_fit import SmoothFit, fit_smooth
from vctest.model.smooth_glmm import fit_smooth_glmm


def _require_blocks(design: Design) -> Design:
    if not design.blocks:
        raise ValueError("the formula has no random-effects term such as `(1 | group)`; a "
                         "mixed model needs at least one (for a GLM use statsmodels).")
    return design


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
    link: str | None = None,
    offset: str | Any = None,
    weights: str | Any = None,
) -> LmmFit | GlmmFit | SmoothFit:
    """Fit a linear mixed model given in lme4 syntax.

    Parameters
    ----------
    formula : str
        An lme4-style formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
        Random-effects terms: ``(1 | g)``, ``(x | g)``, ``(0 + x | g)``,
        ``(1 + x || g)`` (independent), ``(1 | a/b)`` (nested), ``(1 | a:b)``,
        several and crossed terms.  Smooth terms ``s(x, k=10, bs="cr")`` or
        ``bs="tp"`` make a penalised-spline (additive) mixed model, fitted as
        ``mgcv::gamm(method="REML")`` does (a :class:`~vctest.model.smooth_fit.SmoothFit`,
        with scalar random-effects terms; binomial and Poisson by the Laplace
        approximation, as ``gamm4``; see :doc:`/smooth`).
    data : pandas.DataFrame or str
        The data, a path to a CSV/Parquet file, or a bundled data set name.
        Rows with missing values in the variables used are dropped with a
        warning that says how many.
    reml : bool, default True
        Fit by REML (default, as lme4) or by maximum likelihood.
    optimizer : {"bfgs", "L-BFGS-B", "Powell", "Nelder-Mead"}
        ``"bfgs"``: vctest's bounded quasi-Newton kernel; others: SciPy's.
    family : {"gaussian", "binomial", "poisson"}, default "gaussian"
        ``"binomial"`` (0/1, or ``cbind(successes, failures)`` for successes
        out of several trials) and ``"poisson"`` (counts) fit a GLMM by the Laplace
        approximation as lme4's ``glmer`` does (:class:`vctest.model.glmm.GlmmFit`,
        always maximum likelihood; ``reml`` is ignored).
    link : str, optional
        GLMM link: ``"logit"`` (default), ``"probit"`` or ``"cloglog"`` for
        binomial, ``"log"`` for Poisson.
    offset : str or array_like, optional
        GLMM offset (e.g. log exposure): a column of ``data`` or one value per
        row of ``data``.
    weights : str or array_like, optional
        Prior weights, as lme4's ``weights=``: a column of ``data`` or one
        positive value per row of ``data``.  Gaussian: row i has residual
        variance ``sigma^2 / w_i``; binomial: numbers of trials for a
        proportion response (times those of a ``cbind`` response).

    Returns
    -------
    LmmFit or GlmmFit
        With ``theta``, ``beta``, ``loglik``, ``varcorr``, ``singular``,
        ``converged``, ``diagnostics``, ``n_evals`` and ``refit(y)`` (and
        ``sigma`` for a linear mixed model).

    Examples
    --------
    >>> import vctest
    >>> m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    >>> round(m.objective, 3)  # lme4: REMLcrit 1743.628
    1743.628
    >>> m.singular, m.converged
    (False, True)
    >>> g = vctest.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
    ...                family="binomial")
    >>> round(g.deviance, 3), round(float(g.theta[0]), 4)  # lme4: 73.474, 0.6421
    (73.472, 0.6423)
    """
    _fit_iv(formula, reml, optimizer)
    check_family(family, link, offset)
    frame = as_frame(data)
    design = build_design(formula, frame, weights=weights)
    if design.smooths:
        if family != "gaussian":
            check_smooth_glmm(family, link, offset)
            return fit_smooth_glmm(design, family)
        return fit_smooth(design, reml=reml)
    if family != "gaussian":
        if optimizer not in GLMM_OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {GLMM_OPTIMIZERS} for a GLMM; got "
                             f"{optimizer!r}.")
        model = GeneralizedLinearMixedModel.from_design(
            _require_blocks(design), family, link, offset_values(offset, frame, design.row_index),
            offset_column=offset if isinstance(offset, str) else None)
        return fit_glmm(model, optimizer=optimizer)
    model = LinearMixedModel.from_design(design)
    return fit_model(model, reml=reml, optimizer=optimizer)
