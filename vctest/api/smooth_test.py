"""``vc_test`` for formulas with smooth terms: is f linear (``term="s(x)"``)?

A penalised spline is a mixed model whose penalised part is one variance
component (:mod:`vctest.formula.smooth`), so "f is in the penalty's null
space" (a linear function of x for cr and tp smooths) is H0: sigma_b^2 = 0.
The restricted likelihood-ratio statistic compares the fit with the fit
without the smooth's random block (its linear part stays in the fixed
effects); its exact finite-sample null is Crainiceanu & Ruppert's (2004),
drawn from the eigenvalues of ``Z'P0Z`` of the smooth's ``Z``.  With other
variance components (another smooth, a random intercept) the same null is the
pseudo-model approximation of Greven et al. (2008), as RLRsim's
``exactRLRT(m, mA, m0)``.  An ordinary scalar term ``(1 | g)`` of an additive
mixed model is tested the same way.  A binomial or Poisson model has no exact
null: its ML LRT is referred to a parametric bootstrap (or the 50:50 mixture).
"""

from __future__ import annotations

import warnings

import numpy as np

from vctest._pvalue import clean_statistic, monte_carlo_pvalue, pvalue_from_counts
from vctest._rng import entropy_of, seed_sequence
from vctest.api._pipeline import KEEP_NULL_UP_TO, Draws
from vctest.formula.design import Design
from vctest.formula.parse import random_term_from_text
from vctest.formula.smooth_design import find_smooth
from vctest.model.smooth_fit import fit_smooth
from vctest.model.smooth_glmm import SmoothGlmmFit, fit_smooth_glmm
from vctest.nulls.asymptotic import chibar_pvalue, mixture_50_50
from vctest.nulls.exact import SpectralDesign, SpectralTask, simulate_null
from vctest.results import QUANTILE_LEVELS, TestResult

__all__ = ["dense_spectral_design", "smooth_component", "test_smooth_design"]


def dense_spectral_design(x: np.ndarray, z: np.ndarray) -> SpectralDesign:
    """The eigenvalues of ``Z'P0Z`` and ``Z'Z`` for a dense ``Z`` (n x K) and ``X`` (n x p).

    Examples
    --------
    >>> import numpy as np
    >>> sd = dense_spectral_design(np.ones((4, 1)), np.eye(4)[:, :2])
    >>> sd.n, sd.p, np.round(sd.mu, 3).tolist()
    (4, 1, [1.0, 0.5])
    """
    n = x.shape[0]
    q, r = np.linalg.qr(x)
    p = int(np.sum(np.abs(np.diag(r)) > 1e-10 * max(np.abs(np.diag(r)).max(), 1e-300)))
    qz = q.T @ z
    ztz = z.T @ z
    mu = np.linalg.eigvalsh(ztz - qz.T @ qz)
    xi = np.linalg.eigvalsh(ztz)
    return SpectralDesign(n=n, p=p, mu=np.sort(np.maximum(mu, 0.0))[::-1],
                          xi=np.sort(np.maximum(xi, 0.0))[::-1])


def smooth_component(design: Design, term: str) -> str:
    """The label of the variance component ``term`` names in a design with smooths.

    ``term`` is a smooth (``"s(x)"``, as written in the formula, or the
    column name) or a scalar random-effects term (``"(1 | g)"``).
    """
    key = term.strip()
    j = find_smooth(design.smooths, key)
    if j is not None:
        return design.smooths[j].label
    if "|" in key:
        wanted = [t.label for t in random_term_from_text(key)]
        for blk in design.blocks:
            if [blk.term.label] == wanted:
                return blk.term.label
    names = [sm.label for sm in design.smooths] + [b.term.label for b in design.blocks]
    raise ValueError(f"`term` {term!r} is not a term of the model; with smooth terms, test one "
                     f"of {names}.")


def check_smooth_glmm(family: str, link: str | None, offset: object) -> None:
    """Refuse what a binomial/Poisson model with smooth terms does not do yet."""
    canonical = {"binomial": "logit", "poisson": "log"}[family]
    if link is not None and link != canonical:
        raise ValueError(f"with smooth terms a {family} model uses its canonical link "
                         f"({canonical}); got link={link!r}. Omit `link`.")
    if offset is not None:
        raise ValueError("`offset` with smooth terms is not supported yet; remove it or the "
                         "smooth.")


def test_smooth_design(design: Design, term: str, method: str, draws: Draws, *,
                       reml: bool = True, family: str = "gaussian", link: str | None = None,
                       offset: object = None) -> TestResult:
    """RLRT (``reml``) or LRT of one variance component of a design with smooth terms.

    Parameters
    ----------
    design : Design
        With at least one smooth term.
    term : str
        See :func:`smooth_component`.
    method : {"exact", "asymptotic", "bootstrap"}
        ``"bootstrap"`` for binomial and Poisson models only (which have no
        exact null), ``"exact"`` for Gaussian ones only.
    draws : Draws
    reml : bool
        Gaussian only (a GLMM's test is the ML LRT).
    family : str

    Returns
    -------
    TestResult
    """
    if family != "gaussian":
        check_smooth_glmm(family, link, offset)
        return _test_glmm(design, term, method, draws, family)
    if method not in ("exact", "asymptotic"):
        raise ValueError(
            f"method={method!r} is not implemented for Gaussian models with smooth terms; use "
            "method='exact' (the exact null of Crainiceanu & Ruppert 2004) or 'asymptotic'.")
    label = smooth_component(design, term)
    full = fit_smooth(design, reml=reml)
    null = fit_smooth(design, reml=reml, drop=label)
    statistic = float(clean_statistic(null.objective - full.objective))
    test_name = "RLRT" if reml else "LRT"
    mixture = "50:50 mixture chi2(0):chi2(1)"
    asym = {mixture: mixture_50_50(statistic)}
    comp = full.model.components[full.model.labels.index(label)]
    others = [lab for lab in full.model.labels if lab != label]
    notes: list[str] = []
    if full.singular:
        notes.append("the full model is a boundary (singular) fit.")
    for fit, which in ((full, "full"), (null, "null")):
        if not fit.converged:
            notes.append(f"the {which} model's variance search did not settle within its "
                         "sweeps; check the fit.")
    settings = {"formula": design.formula.text, "term": label, "reml": reml,
                "null_formula": f"{design.formula.text} without the random part of {label}",
                "n": design.n, "n_dropped": design.n_dropped, "data_hash": design.data_hash}
    fits = {"full": full, "null": null}
    if method == "asymptotic":
        return TestResult(
            statistic=statistic, pvalue=asym[mixture], pvalue_mc_se=None, pvalue_ci=None,
            method="asymptotic", test=test_name, term=label,
            reference=f"asymptotic {mixture} (Self & Liang 1987; Stram & Lee 1994)",
            null_distribution=None, asymptotic=asym, settings={**settings, "method": method},
            seed=None, seed_entropy=None, fits=fits, notes=tuple(notes))
    nsim = int(draws.nsim)
    ss = seed_sequence(draws.seed)
    sd = dense_spectral_design(design.X, comp.Z)
    keep = nsim <= KEEP_NULL_UP_TO if draws.keep_null is None else draws.keep_null
    sample, sketch = simulate_null(
        SpectralTask(sd, reml, ss, draws.threads if draws.backend == "local" else None),
        nsim, statistic, keep=keep, backend=draws.backend, client=draws.client,
        n_workers=draws.n_workers)
    if sample is not None:
        mc, null_summary = monte_carlo_pvalue(statistic, sample), None
    else:
        mc = pvalue_from_counts(sketch.n_exceed, sketch.n)
        null_summary = sketch.summary(QUANTILE_LEVELS)
    n_run = mc.n_sim
    if n_run < nsim:
        notes.append(f"interrupted: the p-value uses the {n_run} of {nsim} exact null draws "
                     "that finished.")
        warnings.warn(f"exact test interrupted after {n_run} of {nsim} null draws; the result "
                      "uses those that finished.", RuntimeWarning, stacklevel=3)
    what = ("H0: the smooth is linear (in its penalty's null space)" if comp.smooth is not None
            else "H0: the variance is zero")
    if others:
        reference = (
            f"exact finite-sample null of the {test_name} for the tested term's "
            "single-component design (Crainiceanu & Ruppert 2004), used with the other "
            f"components ({', '.join(others)}) by the pseudo-model approach of Greven et al. "
            f"(2008); {what}")
        notes.append("with several variance components the exact null is an approximation "
                     "(Greven et al. 2008); it is good unless the other variance components "
                     "are near zero.")
    else:
        reference = (f"exact finite-sample null of the {test_name} (Crainiceanu & Ruppert "
                     f"2004), simulated from its spectral representation; {what}")
    if sd.K + sd.p >= sd.n:
        notes.append(f"p + K = {sd.p + sd.K} >= n = {sd.n}: the spectral null is not exact.")
    settings = {**settings, "method": "exact", "nsim": nsim, "K": sd.K, "p": sd.p,
                "n_run": n_run, "interrupted": n_run < nsim}
    return TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="exact", test=test_name, term=label, reference=reference,
        null_distribution=sample, asymptotic=asym, settings=settings,
        seed=draws.seed_value, seed_entropy=entropy_of(ss), fits=fits, notes=tuple(notes),
        null_summary=null_summary)


def _simulate(null: SmoothGlmmFit, rng: np.random.Generator) -> np.ndarray:
    mu, wt = null.fitted, null.model.wt
    if null.family == "binomial":
        return rng.binomial(np.round(wt).astype(np.int64), mu) / np.where(wt > 0, wt, 1.0)
    return rng.poisson(mu).astype(float)


def _test_glmm(design: Design, term: str, method: str, draws: Draws, family: str, *,
               null_design: Design | None = None, restricted: tuple[str, ...] = ()
               ) -> TestResult:
    """LRT of one component of a binomial/Poisson model with smooths: bootstrap or mixture.

    By default the null model drops the component's random part.  ``null_design``
    (a design without the tested smooth) replaces it: then H0 also sets the
    fixed effects ``restricted`` of the full design to zero (``test="constant"``).
    """
    if method not in ("bootstrap", "asymptotic"):
        raise ValueError(f"no exact null exists for a {family} model; use method='bootstrap' "
                         f"(or 'asymptotic'), not {method!r}.")
    label = smooth_component(design, term)
    drop = None if null_design is not None else label
    null_design = design if null_design is None else null_design
    full = fit_smooth_glmm(design, family)
    null = fit_smooth_glmm(null_design, family, drop=drop)
    statistic = float(clean_statistic(null.objective - full.objective))
    q = len(restricted)
    mixture = f"50:50 mixture chi2({q}):chi2({q + 1})"
    asym = {mixture: mixture_50_50(statistic) if q == 0 else
            chibar_pvalue(statistic, (0.5, 0.5), (q, q + 1))}
    null_text = (f"{design.formula.text} without the random part of {label}" if drop else
                 null_design.formula.text)
    settings = {"formula": design.formula.text, "term": label, "family": family,
                "link": full.model.link, "reml": False, "null_formula": null_text,
                "n": design.n, "n_dropped": design.n_dropped, "data_hash": design.data_hash}
    if q:
        settings["restricted"] = list(restricted)
    fits = {"full": full, "null": null}
    notes = ["the full model is a boundary (singular) fit."] if full.singular else []
    if q:
        notes.append(f"H0 also sets the fixed effect(s) {', '.join(restricted)} to zero.")
    if method == "asymptotic":
        return TestResult(
            statistic=statistic, pvalue=asym[mixture], pvalue_mc_se=None, pvalue_ci=None,
            method="asymptotic", test="LRT", term=label,
            reference=f"asymptotic {mixture} (Self & Liang 1987)", null_distribution=None,
            asymptotic=asym, settings={**settings, "method": method}, seed=None,
            seed_entropy=None, fits=fits, notes=tuple(notes))
    nsim = int(draws.nsim)
    ss = seed_sequence(draws.seed)
    rng = np.random.default_rng(ss)
    stats, failures = [], 0
    for _ in range(nsim):
        ystar = _simulate(null, rng)
        try:
            f1 = fit_smooth_glmm(design, family, y=ystar)
            f0 = fit_smooth_glmm(null_design, family, drop=drop, y=ystar)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            failures += 1
            continue
        value = f0.objective - f1.objective
        if not np.isfinite(value):
            failures += 1
            continue
        stats.append(float(clean_statistic(value)))
    sample = np.asarray(stats)
    if sample.size == 0:
        raise ValueError(f"the bootstrap cannot refit the models: all {nsim} refits failed; "
                         "simplify the model (a smaller k, fewer terms).")
    mc = monte_carlo_pvalue(statistic, sample)
    bound = (1 + mc.n_exceed + failures) / (1 + sample.size + failures)
    if failures > 0.01 * nsim:
        warnings.warn(f"{failures} of {nsim} bootstrap refits failed; the p-value "
                      f"{mc.pvalue:.4g} excludes them, and would be {bound:.4g} if all had "
                      "exceeded the observed statistic.", UserWarning, stacklevel=3)
    return TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="bootstrap", test="LRT", term=label,
        reference=("parametric bootstrap: responses simulated from the fitted null model, "
                   f"both models refitted to each (Laplace approximation, {family} family; "
                   "dense refits in NumPy, one after another)"),
        null_distribution=sample, asymptotic=asym,
        settings={**settings, "method": "bootstrap", "nsim": nsim, "n_run": nsim},
        seed=draws.seed_value, seed_entropy=entropy_of(ss), n_failed=failures,
        pvalue_bound=bound, failures={"refit failed": failures} if failures else {},
        fits=fits, notes=tuple(notes))
