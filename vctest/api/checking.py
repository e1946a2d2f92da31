"""``check``: one honest verdict on whether a fit can be trusted."""

from __future__ import annotations

import warnings

import numpy as np

from vctest.formula.design import Design, build_design
from vctest.formula.evaluate import required_columns
from vctest.model.doctor import ConvergenceReport, OptimizerRun, check_fit
from vctest.model.fit import LmmFit, fit_model
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, fit_glmm
from vctest.model.lmm import LinearMixedModel


def _run(label: str, fit: LmmFit) -> OptimizerRun:
    return OptimizerRun(label, fit.loglik, np.asarray(fit.theta), fit.beta.to_numpy(),
                        bool(fit.converged), fit.optimizer_message)


def _failed_run(label: str, fit, exc: Exception) -> OptimizerRun:
    return OptimizerRun(label, float("-inf"), fit.theta * np.nan,
                        fit.beta.to_numpy() * np.nan, False, str(exc))


def _rescaled_design(design, columns: list[str]):
    """The design rebuilt with ``columns`` of its data centred and scaled."""
    frame = design.frame.copy()
    for col in columns:
        x = frame[col].astype(float)
        frame[col] = (x - x.mean()) / x.std(ddof=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(design.formula.text, frame, weights=design.prior_weights)


def _grouping_only(design: Design) -> frozenset[str]:
    """Data columns used only as grouping factors (labels, not numbers to rescale)."""
    groups = {g for b in design.blocks for g in b.term.group_factors}
    columns = design.frame.columns if design.frame is not None else None
    texts = [design.formula.fixed] + [" + ".join(t.covariates)
                                      for t in design.formula.random if t.covariates]
    numeric = set().union(*(required_columns(t, "the formula", columns) for t in texts))
    return frozenset(groups - numeric)


def _lmm_refitters(fit: LmmFit):
    def refit_with(optimizer: str, start: np.ndarray | None) -> OptimizerRun:
        try:
            new = fit_model(fit.model, reml=fit.reml, start=start, optimizer=optimizer)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            return _failed_run(optimizer, fit, exc)
        return _run(optimizer, new)

    def refit_rescaled(columns: list[str]) -> OptimizerRun:
        new_design = _rescaled_design(fit.model.design, columns)
        new = fit_model(LinearMixedModel.from_design(new_design), reml=fit.reml)
        return _run("rescaled " + ", ".join(columns), new)

    return refit_with, refit_rescaled


def _glmm_refitters(fit: GlmmFit):
    def run(label, new):
        return OptimizerRun(label, new.loglik, np.asarray(new.theta), new.beta.to_numpy(),
                            bool(new.converged), new.optimizer_message)

    def refit_with(optimizer: str, start: np.ndarray | None) -> OptimizerRun:
        st = None if start is None else (start, fit.beta.to_numpy())
        try:
            return run(optimizer, fit_glmm(fit.model, start=st, optimizer=optimizer))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            return _failed_run(optimizer, fit, exc)

    def refit_rescaled(columns: list[str]) -> OptimizerRun:
        new_design = _rescaled_design(fit.model.design, columns)
        model = GeneralizedLinearMixedModel.from_design(new_design, fit.model.family,
                                                        fit.model.link, fit.model.offset)
        return run("rescaled " + ", ".join(columns), fit_glmm(model))

    return refit_with, refit_rescaled


def check(fit: LmmFit | GlmmFit) -> ConvergenceReport:
    """Diagnose a fit: gradient measures, boundary status, optimisers, scaling, verdict.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        From :func:`vctest.fit` (any family).

    Returns
    -------
    ConvergenceReport
        ``verdict`` is one of ``"converged"``, ``"boundary"``,
        ``"unidentified"``, ``"disagreement"``, ``"failed"``, ``"unchecked"``
        (non-finite derivatives: nothing can be verified), with an
        ``explanation``, the gradient measures side by side (raw, lme4's scaled
        gradient, the Newton step), per-parameter boundary status, refits by
        L-BFGS-B, Powell, Nelder-Mead and from perturbed starts with their
        spread, and scaling advice with a refit on rescaled predictors.

    Examples
    --------
    >>> import vctest
    >>> vctest.check(vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff2")).verdict
    'boundary'
    >>> vctest.check(vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")).verdict
    'converged'
    """
    if isinstance(fit, LmmFit):
        refit_with, refit_rescaled = _lmm_refitters(fit)
    elif isinstance(fit, GlmmFit):
        refit_with, refit_rescaled = _glmm_refitters(fit)
    elif type(fit).__name__ == "SmoothFit":
        raise ValueError("check() does not support fits with smooth terms yet: their variance "
                         "search (vctest.model.smooth_fit) is a different optimiser; look at "
                         "fit.converged and fit.singular instead.")
    else:
        raise TypeError(f"`fit` must be a fit from vctest.fit; got {type(fit).__name__}.")
    if fit.model.design.frame is None:  # no data to rebuild a rescaled design from
        refit_rescaled = None
    design = fit.model.design
    response = design.formula.response.text
    # Powell's coordinate search is a poor second opinion on (theta, beta) jointly
    optimizers = ("L-BFGS-B", "Powell", "Nelder-Mead") if isinstance(fit, LmmFit) else (
        "L-BFGS-B", "Nelder-Mead")
    return check_fit(fit, refit_with=refit_with, refit_rescaled=refit_rescaled,
                     response=response, skip=_grouping_only(design), optimizers=optimizers)


__all__ = ["check"]
