"""``check``: one honest verdict on whether a fit can be trusted."""

from __future__ import annotations

import warnings

import numpy as np

from vctest.formula.design import build_design
from vctest.model.doctor import ConvergenceReport, OptimizerRun, check_fit
from vctest.model.fit import LmmFit, fit_model
from vctest.model.lmm import LinearMixedModel


def _run(label: str, fit: LmmFit) -> OptimizerRun:
    return OptimizerRun(label, fit.loglik, np.asarray(fit.theta), fit.beta.to_numpy(),
                        bool(fit.converged), fit.optimizer_message)


def _lmm_refitters(fit: LmmFit):
    def refit_with(optimizer: str, start: np.ndarray | None) -> OptimizerRun:
        try:
            new = fit_model(fit.model, reml=fit.reml, start=start, optimizer=optimizer)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            return OptimizerRun(optimizer, float("-inf"), fit.theta * np.nan,
                                fit.beta.to_numpy() * np.nan, False, str(exc))
        return _run(optimizer, new)

    design = fit.model.design
    if design.frame is None:
        return refit_with, None

    def refit_rescaled(columns: list[str]) -> OptimizerRun:
        frame = design.frame.copy()
        for col in columns:
            x = frame[col].astype(float)
            frame[col] = (x - x.mean()) / x.std(ddof=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            new_design = build_design(design.formula.text, frame)
        new = fit_model(LinearMixedModel.from_design(new_design), reml=fit.reml)
        return _run("rescaled " + ", ".join(columns), new)

    return refit_with, refit_rescaled


def check(fit: LmmFit) -> ConvergenceReport:
    """Diagnose a fit: gradient measures, boundary status, optimisers, scaling, verdict.

    Parameters
    ----------
    fit : LmmFit
        From :func:`vctest.fit`.

    Returns
    -------
    ConvergenceReport
        ``verdict`` is one of ``"converged"``, ``"boundary"``,
        ``"unidentified"``, ``"disagreement"``, ``"failed"``, with an
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
    if not isinstance(fit, LmmFit):
        raise TypeError(f"`fit` must be a fit from vctest.fit; got {type(fit).__name__}.")
    refit_with, refit_rescaled = _lmm_refitters(fit)
    response = fit.model.design.formula.response.text
    return check_fit(fit, refit_with=refit_with, refit_rescaled=refit_rescaled,
                     response=response)


__all__ = ["check"]
