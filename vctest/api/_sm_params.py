"""statsmodels' covariance parameters <-> vctest's theta, and statsmodels' own likelihood.

Helpers of :mod:`vctest.api.statsmodels`.  statsmodels profiles the residual
variance out and parameterises the random effects by their covariance
relative to it: ``cov_re / scale`` for the ``exog_re`` block and
``vcomp / scale`` for the variance components (``result.params_object``).
vctest's theta holds, term by term, the lower-triangular Cholesky factor of
the same relative covariance (column-major, :mod:`vctest.model.terms`).  A
translated ``exog_re`` block relates to statsmodels' by ``b_vctest = A
b_statsmodels`` (``A`` a column permutation for every translation vctest
writes), so its relative covariance is ``A Psi A'``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vctest.model.fit import LmmFit

#: Floor on relative variances handed to statsmodels' ``loglike`` (it takes log(0)).
SM_FLOOR = 1e-10

#: statsmodels warns "The MLE may be on the boundary" below this variance (data units).
SM_BOUNDARY = 0.01

#: Log-likelihood gaps above this (log-likelihood units) are worth a note.
NOTE_GAP = 1e-4

Sources = Sequence[tuple[str, tuple[int, ...]]]


def psd_cholesky(s: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` with ``L L' = s`` for positive semi-definite ``s``.

    Zero pivots (a variance on its bound) give a zero column, as lme4's
    theta does on the boundary.

    Examples
    --------
    >>> import numpy as np
    >>> psd_cholesky(np.array([[4.0, 2.0], [2.0, 1.0]])).tolist()
    [[2.0, 0.0], [1.0, 0.0]]
    """
    k = s.shape[0]
    low = np.zeros((k, k))
    tol = 1e-12 * max(1.0, float(np.max(np.abs(np.diag(s)), initial=0.0)))
    for j in range(k):
        d = s[j, j] - low[j, :j] @ low[j, :j]
        if d < -1e3 * tol:
            raise ValueError("statsmodels' random-effects covariance is not positive "
                             "semi-definite; it has no lme4 parameterisation.")
        if d > tol:
            low[j, j] = math.sqrt(d)
            low[j + 1:, j] = (s[j + 1:, j] - low[j + 1:, :j] @ low[j, :j]) / low[j, j]
    return low


def theta_from_sm(re_map: np.ndarray, sources: Sources, psi: np.ndarray,
                  vcomp: np.ndarray) -> np.ndarray:
    """vctest's theta (blocks in ``sources`` order) from statsmodels' relative estimates."""
    k = re_map.shape[1]
    full = re_map @ np.asarray(psi, dtype=float).reshape(k, k) @ re_map.T
    out: list[float] = []
    for kind, cols in sources:
        if kind == "re":
            s = full[np.ix_(cols, cols)]
        else:
            s = np.array([[float(vcomp[cols[0]])]])
            if s[0, 0] < 0:
                raise ValueError("statsmodels' variance component estimate is negative; it "
                                 "has no lme4 parameterisation.")
        low = psd_cholesky(s)
        out.extend(low[r, c] for c in range(low.shape[0]) for r in range(c, low.shape[0]))
    return np.asarray(out, dtype=float)


def sm_from_theta(re_map: np.ndarray, sources: Sources, k_vc: int,
                  fit: LmmFit) -> tuple[np.ndarray, np.ndarray]:
    """statsmodels' relative ``cov_re`` and ``vcomp`` at vctest's theta.

    Variances on the bound are raised to ``SM_FLOOR`` (statsmodels' ``loglike``
    takes their logarithm); that moves its value by O(1e-10).
    """
    psi_v = np.zeros(re_map.shape)
    vcomp = np.zeros(k_vc)
    for (kind, cols), low in zip(sources, fit.model.layout.factors(fit.theta), strict=True):
        s = low @ low.T
        if kind == "re":
            psi_v[np.ix_(cols, cols)] = s
        else:
            vcomp[cols[0]] = s[0, 0]
    psi = psi_v
    if re_map.size:
        inv = np.linalg.inv(re_map)
        psi = inv @ psi_v @ inv.T
        if np.linalg.eigvalsh(psi).min() < SM_FLOOR:
            psi = psi + SM_FLOOR * np.eye(psi.shape[0])
    return psi, np.maximum(vcomp, SM_FLOOR)


def sm_loglike(model: Any, psi: np.ndarray, vcomp: np.ndarray, reml: bool) -> float:
    """statsmodels' ``MixedLM.loglike`` (fixed effects and scale profiled), on a copy.

    ``loglike`` reads the criterion and the penalties from the model, which
    ``fit`` overwrites; a shallow copy keeps the user's model untouched.
    """
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    params = MixedLMParams.from_components(fe_params=np.zeros(model.k_fe), cov_re=psi,
                                           vcomp=vcomp)
    work = copy.copy(model)
    work.reml, work.cov_pen, work.fe_pen, work._cov_sing = reml, None, None, 0
    return float(work.loglike(params, profile_fe=True))


def reported_llf(result: Any) -> float | None:
    """``result.llf`` if it is (or will be) computed with the fit's own criterion.

    statsmodels evaluates ``llf`` on first access with the model's *current*
    ``reml`` flag, which a later ``model.fit(reml=...)`` changes.
    """
    cache = getattr(result, "_cache", None)
    if isinstance(cache, dict) and "llf" in cache:
        return float(cache["llf"])
    if bool(result.model.reml) == bool(result.reml):
        return float(result.llf)
    return None


def result_notes(result: Any, fit: LmmFit, theta_sm: np.ndarray, sm_llf: float,
                 offset: float, same_criterion: bool) -> list[str]:
    """Plain-language notes on statsmodels' fit next to vctest's."""
    notes = []
    model = result.model
    names = [str(p) for p in model.data.param_names][int(model.k_fe):]
    k_re = int(model.k_re)
    cov_re = np.asarray(result.cov_re, dtype=float).reshape(k_re, k_re)
    # the variance of column i sits at position i (i + 3) / 2 of the packed lower triangle
    low = [names[i * (i + 3) // 2] for i in range(k_re) if cov_re[i, i] < SM_BOUNDARY]
    k_re2 = k_re * (k_re + 1) // 2
    low += [names[k_re2 + k] for k, v in enumerate(np.asarray(result.vcomp, dtype=float))
            if v < SM_BOUNDARY]
    lay = fit.model.layout
    at_zero = bool(lay.singular(theta_sm, fit.model.theta_scale))
    if low:
        verdict = ("vctest's fit is a boundary (singular) fit too" if fit.singular else
                   "by lme4's relative rule (theta < 1e-4) vctest's fit is not singular: "
                   "statsmodels' rule depends on the units of the response")
        notes.append("statsmodels warned 'The MLE may be on the boundary of the parameter "
                     f"space': {', '.join(low)} is below 0.01 in the response's units; "
                     f"{verdict}.")
    elif at_zero or fit.singular:
        notes.append("a variance is estimated at zero (a boundary fit); statsmodels' z-test "
                     "of a variance is not valid there -- test it with vctest.vc_test.")
    if not bool(getattr(result, "converged", True)):
        notes.append("statsmodels reports converged=False (it warned 'Gradient optimization "
                     "failed'); use vctest's estimates.")
    gap = fit.loglik + offset - sm_llf
    if same_criterion and gap > NOTE_GAP:
        notes.append(f"statsmodels' estimates are not the maximum: vctest's log-likelihood is "
                     f"higher by {gap:.3g}; use vctest's estimates.")
    elif same_criterion and gap < -NOTE_GAP:
        notes.append(f"vctest's optimum is below statsmodels' by {-gap:.3g}; run "
                     "vctest.check(result.fit) and compare optimisers.")
    return notes
