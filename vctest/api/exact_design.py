"""Exact (R)LRT from design matrices: ``exact_rlrt(y, X, Z)`` and ``exact_lrt(y, X, Z, q=...)``.

The model is ``y = X beta + Z b + e``, ``b ~ N(0, sigma_b^2 Sigma)``,
``e ~ N(0, sigma^2 I)``, with one variance component sigma_b^2 and a known
correlation ``Sigma = R'R`` (``sqrt_sigma=R``; the identity by default), as
RLRsim's ``RLRTSim(X, Z, qrX, sqrt.Sigma)`` and ``LRTSim(X, Z, q, sqrt.Sigma)``
take it -- but here the data are fitted too: the statistic, its exact
finite-sample null (Crainiceanu & Ruppert 2004) and the p-value come back as
one :class:`~vctest.results.TestResult`.

:func:`design_test` is the one engine behind both, and what a formula front
end calls with its own matrices: e.g. a penalised spline ``s(x)`` is
``X = [1, x]`` and ``Z`` its penalised basis, and "f is constant" is the LRT
with the column ``x`` restricted (``restricted=[1]``): the spline's variance
and the linear coefficient are both zero under H0 (Crainiceanu, Ruppert,
Claeskens & Wand 2005).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2

from vctest._pvalue import clean_statistic
from vctest._rng import SeedLike, entropy_of
from vctest.api._checks import _positive_int, check_backend, check_threads
from vctest.api._design_checks import DesignArrays, check_design, check_spectrum
from vctest.api._pipeline import Draws, simulate_exact
from vctest.model.one_component import OneComponentFit, OneComponentModel
from vctest.nulls.asymptotic import chibar_pvalue
from vctest.nulls.exact import SpectralDesign, invert_rlrt, linear_model_objective
from vctest.results import TestResult, attach_confint

__all__ = ["design_test", "exact_lrt", "exact_rlrt"]

#: Default number of exact null draws (as ``vc_test``'s exact method).
DEFAULT_NSIM = 100_000


def exact_rlrt(y: Any, X: Any, Z: Any, *, sqrt_sigma: Any = None, nsim: int = DEFAULT_NSIM,
               seed: SeedLike = None, threads: int | None = None,
               keep_null: bool | None = None) -> TestResult:
    """Exact restricted likelihood-ratio test that one variance component is zero.

    Fits ``y = X beta + Z b + e``, ``b ~ N(0, sigma_b^2 Sigma)`` by REML (as
    lme4 would, to lme4's REML criterion), computes
    RLRT = 2 (max restricted log-likelihood - its value at sigma_b^2 = 0) and
    refers it to its exact finite-sample null distribution, simulated from the
    spectral representation of Crainiceanu & Ruppert (2004).  The matrix
    counterpart of RLRsim's ``RLRTSim(X, Z, qr(X), sqrt.Sigma)`` plus
    ``exactRLRT``, without a model-fitting package in between.

    Parameters
    ----------
    y : array_like, shape (n,)
        Response.
    X : array_like or pandas.DataFrame, shape (n, p)
        Fixed-effects design, full column rank (include the intercept column
        yourself).  A DataFrame's column names label the estimates.
    Z : array_like, shape (n, K)
        Design of the one random effect b (K coefficients sharing one variance).
    sqrt_sigma : array_like, shape (K, K), optional
        A square root R of the correlation of b, ``Sigma = R'R`` (e.g. the upper
        Cholesky factor ``numpy.linalg.cholesky(Sigma).T``; RLRsim's
        ``sqrt.Sigma``).  Default: the identity (independent coefficients).
    nsim : int, default 100000
        Exact null draws.
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Same seed, same draws, whatever the number of threads.
    threads : int, optional
        Numba threads for the simulation (default: all).
    keep_null : bool, optional
        Keep the whole null sample (default: up to 10^6 draws).

    Returns
    -------
    TestResult
        ``fits["full"]`` is the REML fit (variance ratio, sigma^2, beta);
        ``confint()`` inverts the test into an interval for sigma_b^2 / sigma^2
        (on the scale of ``Z R'``).

    Raises
    ------
    TypeError
        For non-numeric input.
    ValueError
        For mismatched shapes, infinite values, a rank-deficient ``X`` (the
        dependent column is named), ``Z`` inside the column space of ``X``, or
        n - p - K < 1 (K = rank of the part of Z not in X).  Rows with NaN are
        dropped with a warning.

    See Also
    --------
    exact_lrt : the ML likelihood-ratio test, also with restricted fixed effects.
    vctest.rlrt_null : the null sample from eigenvalues alone.

    References
    ----------
    Crainiceanu, C. M. and Ruppert, D. (2004). Likelihood ratio tests in linear
    mixed models with one variance component. *J. R. Statist. Soc. B* 66, 165-185.

    Examples
    --------
    Is a regression line enough, or does the mean bend?  A truncated-linear
    spline basis with 10 knots is the random effect (a penalised spline):

    >>> import numpy as np, vctest
    >>> x = (np.arange(100) + 0.5) / 100
    >>> y = np.sin(2 * np.pi * x) + np.random.default_rng(1).normal(0, 0.3, 100)
    >>> X = np.column_stack([np.ones(100), x])
    >>> Z = np.maximum(x[:, None] - np.linspace(0, 1, 12)[1:-1], 0)
    >>> res = vctest.exact_rlrt(y, X, Z, nsim=10_000, seed=1)
    >>> res.test, res.statistic > 20, res.pvalue < 0.001
    ('RLRT', True, True)
    """
    return design_test(y, X, Z, reml=True, sqrt_sigma=sqrt_sigma,
                       draws=_draws(nsim, seed, threads, keep_null))


def exact_lrt(y: Any, X: Any, Z: Any, *, q: int | Sequence[int | str] = 0,
              sqrt_sigma: Any = None, nsim: int = DEFAULT_NSIM, seed: SeedLike = None,
              threads: int | None = None, keep_null: bool | None = None) -> TestResult:
    """Exact likelihood-ratio test that a variance component (and ``q`` fixed effects) are zero.

    Fits ``y = X beta + Z b + e`` by ML and the null model without the random
    effect (and without the ``q`` restricted columns of X) by least squares,
    and refers LRT = 2 (max log-likelihood - max null log-likelihood) to its
    exact null distribution (Crainiceanu & Ruppert 2004):

        LRT = sup_lambda [n log(1 + N(lambda)/D(lambda)) - sum_s log(1 + lambda xi_s)]
              + n log(1 + sum_{s <= q} u_s^2 / sum_{s <= n-p} w_s^2),

    with u_s, w_s independent standard normals; the second term is the
    contribution of the restricted fixed effects (it does not depend on which
    columns they are, only on how many).  RLRsim's ``LRTSim(X, Z, q,
    sqrt.Sigma)`` plus ``exactLRT(m, m0)``.

    Parameters
    ----------
    y, X, Z, sqrt_sigma, nsim, seed, threads, keep_null
        As for :func:`vctest.exact_rlrt`.
    q : int or sequence of int or str, default 0
        The fixed effects that are also 0 under H0.  An integer is a count:
        the **last** ``q`` columns of X (RLRsim's convention).  A sequence lists
        the columns: positions in X, or names of the columns of a DataFrame
        ``X``.  E.g. ``X = [1, x]`` and ``q=1`` tests "the mean is constant"
        against "a penalised spline in x".

    Returns
    -------
    TestResult
        ``fits["full"]`` is the ML fit; ``settings["restricted"]`` names the
        restricted columns.

    Raises
    ------
    TypeError, ValueError
        As for :func:`vctest.exact_rlrt`; also for a ``q`` outside 0..p or naming a
        column X does not have.

    See Also
    --------
    exact_rlrt : the restricted test, preferable when no fixed effect is tested.

    References
    ----------
    Crainiceanu, C. M. and Ruppert, D. (2004). *J. R. Statist. Soc. B* 66, 165-185.
    Crainiceanu, C. M., Ruppert, D., Claeskens, G. and Wand, M. P. (2005).
    Exact likelihood ratio tests for penalised splines. *Biometrika* 92, 91-103.

    Examples
    --------
    Is the mean constant?  The slope and the spline's variance are both zero under H0:

    >>> import numpy as np, vctest
    >>> x = (np.arange(100) + 0.5) / 100
    >>> y = 0.5 * x + np.random.default_rng(2).normal(0, 0.3, 100)
    >>> X = np.column_stack([np.ones(100), x])
    >>> Z = np.maximum(x[:, None] - np.linspace(0, 1, 12)[1:-1], 0)
    >>> res = vctest.exact_lrt(y, X, Z, q=1, nsim=10_000, seed=1)
    >>> res.settings["restricted"], res.pvalue < 0.05
    (['x1'], True)
    """
    return design_test(y, X, Z, reml=False, restricted=q, sqrt_sigma=sqrt_sigma,
                       draws=_draws(nsim, seed, threads, keep_null))


def _draws(nsim: Any, seed: SeedLike, threads: Any, keep_null: Any) -> Draws:
    if not _positive_int(nsim):
        raise ValueError(f"`nsim` must be a positive integer; got {nsim!r}.")
    check_threads(threads)
    check_backend("local", keep_null)
    return Draws(nsim=int(nsim), seed=seed, threads=threads, keep_null=keep_null)


def design_test(y: Any, X: Any, Z: Any, *, reml: bool, restricted: Any = 0,
                sqrt_sigma: Any = None, draws: Draws, term: str | None = None,
                formula: str | None = None, null_formula: str | None = None) -> TestResult:
    """Fit, test and assemble the result for design matrices (the engine of both entries).

    A formula front end calls this with its own matrices; ``term``,
    ``formula`` and ``null_formula`` then replace the generic labels.

    Parameters
    ----------
    y, X, Z, sqrt_sigma
        As for :func:`vctest.exact_rlrt`.
    reml : bool
        RLRT (True) or LRT (False).
    restricted : int or sequence of int or str, default 0
        ``q`` of :func:`vctest.exact_lrt` (ML only): the count of last columns of X,
        or the columns, that are also 0 under H0.
    draws : Draws
        Number of draws, seed, threads, backend.
    term, formula, null_formula : str, optional
        Labels for the result.

    Returns
    -------
    TestResult

    Examples
    --------
    "f is constant" for a spline in x: the formula glue passes X = [1, x] and
    restricts the column of x.

    >>> import numpy as np
    >>> from vctest.api._pipeline import Draws
    >>> x = (np.arange(60) + 0.5) / 60
    >>> y = np.random.default_rng(3).normal(size=60)
    >>> res = design_test(y, np.column_stack([np.ones(60), x]),
    ...                   np.maximum(x[:, None] - [0.25, 0.5, 0.75], 0), reml=False,
    ...                   restricted=[1], draws=Draws(nsim=2000, seed=4), term="s(x)")
    >>> res.term, res.settings["q"], 0 < res.pvalue <= 1
    ('s(x)', 1, True)
    """
    d = check_design(y, X, Z, sqrt_sigma=sqrt_sigma, q=restricted, reml=reml)
    model = OneComponentModel.from_arrays(d.y, d.X, d.Zt)
    check_spectrum(model.n, model.p, model.k_eff,
                   model.rest <= 1e-13 * max(float(np.sum(d.y**2)), 1e-300))
    fit = model.fit(reml)
    object.__setattr__(fit, "names", d.x_names)
    kept = [j for j in range(model.p) if j not in d.restricted]
    null_objective = linear_model_objective(d.X[:, kept], d.y, reml)
    statistic = float(clean_statistic(null_objective - fit.objective))
    q = len(d.restricted)
    sd = SpectralDesign(n=model.n, p=model.p, mu=model.mu, xi=model.xi)
    run = simulate_exact(sd, reml, statistic, draws, q=q)
    labels = _labels(d, term, formula, null_formula)
    test_name = "RLRT" if reml else "LRT"
    notes = list(run.notes)
    if fit.singular:
        notes.append("the variance is estimated at zero (a boundary fit).")
    if q:
        notes.append("H0 also sets the fixed effect(s) "
                     f"{', '.join(d.x_names[j] for j in d.restricted)} to zero.")
    settings = {**labels, "method": "exact", "reml": reml, "nsim": int(draws.nsim),
                "n_run": run.n_run, "interrupted": run.n_run < int(draws.nsim),
                "n": model.n, "n_dropped": d.n_dropped, "p": model.p, "K": model.K,
                "k_eff": model.k_eff, "q": q,
                "restricted": [d.x_names[j] for j in d.restricted],
                "sqrt_sigma": d.correlated, "input": "design matrices"}
    what = "RLRT" if reml else ("LRT" + (f" with {q} restricted fixed effect(s)" if q else ""))
    result = TestResult(
        statistic=statistic, pvalue=run.mc.pvalue, pvalue_mc_se=run.mc.se,
        pvalue_ci=run.mc.ci, method="exact", test=test_name, term=labels["term"],
        reference=(f"exact finite-sample null of the {what} (Crainiceanu & Ruppert 2004), "
                   "simulated from its spectral representation"),
        null_distribution=run.sample, asymptotic=_asymptotic(statistic, q),
        settings=settings, seed=draws.seed_value, seed_entropy=entropy_of(run.seed),
        fits={"full": fit, "null": {"kind": "linear model", "reml": reml,
                                    "objective": null_objective,
                                    "columns": [d.x_names[j] for j in kept]}},
        notes=tuple(notes), null_summary=run.null_summary,
    )
    confint = DesignConfint(model, fit, sd, run.seed, draws.threads) if reml else None
    return attach_confint(result, confint)


def _labels(d: DesignArrays, term: str | None, formula: str | None,
            null_formula: str | None) -> dict[str, str]:
    k = d.Z.shape[1]
    cov = "sigma_b^2 Sigma" if d.correlated else "sigma_b^2 I"
    kept = [nm for j, nm in enumerate(d.x_names) if j not in d.restricted]
    null = "y = " + (" + ".join(f"{nm}*beta" for nm in kept) or "0") + " + e" if \
        d.restricted else "y = X beta + e"
    return {"term": term or f"Z b (K = {k} columns, b ~ N(0, {cov}))",
            "formula": formula or f"y = X beta + Z b + e, b ~ N(0, {cov})",
            "null_formula": null_formula or null}


def _asymptotic(statistic: float, q: int) -> dict[str, float]:
    """The naive chi2(1 + q) and the 50:50 chi2(q):chi2(q + 1) mixture, for comparison."""
    naive = float(chi2.sf(statistic, 1 + q)) if statistic > 0 else 1.0
    return {f"naive chi2({1 + q})": naive,
            f"50:50 mixture chi2({q}):chi2({q + 1})":
                chibar_pvalue(statistic, (0.5, 0.5), (q, q + 1))}


class DesignConfint:
    """``TestResult.confint`` of :func:`vctest.exact_rlrt`: invert the exact RLRT over lambda."""

    def __init__(self, model: OneComponentModel, fit: OneComponentFit, sd: SpectralDesign,
                 seed: np.random.SeedSequence, threads: int | None) -> None:
        self.model, self.fit, self.sd, self.seed, self.threads = model, fit, sd, seed, threads

    def profile(self, lam: float) -> float:
        """REML criterion at variance ratio ``lam``."""
        return float(self.model.objective(lam, True))

    def __call__(self, level: float = 0.95, nsim: int = 20_000, rtol: float = 1e-3) -> Any:
        return invert_rlrt(self.profile, self.fit.lam, self.sd, level=level, nsim=nsim,
                           seed=self.seed, threads=self.threads, rtol=rtol)
