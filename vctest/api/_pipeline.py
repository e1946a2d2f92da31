"""The one test pipeline behind ``vc_test``, ``compare`` and ``power``, for every family.

prepare (:func:`term_pair`, :func:`model_pair`: the two designs on the same
rows) -> fit the pair (:func:`fit_pair`: LMM, or GLMM with a GLMM or GLM
null, by family) -> reference distribution (:func:`reference`: exact,
bootstrap or asymptotic) -> :class:`~vctest.results.TestResult`.

The public functions validate their arguments (:mod:`vctest.api._checks`)
and build the designs; everything after that runs here, once.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from vctest._pvalue import clean_statistic, monte_carlo_pvalue, pvalue_from_counts
from vctest._rng import SeedLike, entropy_of, seed_sequence
from vctest.formula.design import Design, build_design
from vctest.formula.smooth_design import refuse_smooths
from vctest.model.fit import LmmFit, fit_model
from vctest.model.glm import GeneralizedLinearModel, GlmFit, fit_glm
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, fit_glmm
from vctest.model.lmm import LinearMixedModel
from vctest.model.nesting import Nesting, nesting
from vctest.model.reduce import TermLocation, drop_term, locate_term
from vctest.nulls.approximations import bartlett_pvalue, gamma_pvalue
from vctest.nulls.asymptotic import mixture_50_50, mixture_slope
from vctest.nulls.bootstrap import Generator, run_bootstrap
from vctest.nulls.exact import SpectralTask, invert_rlrt, simulate_null, spectral_design
from vctest.nulls.executor import resolve_client
from vctest.results import QUANTILE_LEVELS, TestResult, attach_confint

#: Exact null samples up to this size are kept in the result by default.
KEEP_NULL_UP_TO = 1_000_000

_SINGULAR_NOTE = "the full model is a boundary (singular) fit."


class BootstrapFailureWarning(UserWarning):
    """More than 1% of the bootstrap replicates failed to refit."""


def _stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside vctest (for a warning raised here)."""
    package = str(Path(__file__).parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


@dataclass(frozen=True)
class Draws:
    """How to draw the reference distribution (ignored by the asymptotic one).

    Attributes
    ----------
    nsim : int
        Exact null draws or bootstrap replicates.
    seed, threads, progress, stop_alpha, stop_error, backend, client, keep_null
        As for :func:`vctest.vc_test`.
    """

    nsim: int
    seed: SeedLike = None
    threads: int | None = None
    progress: bool | None = None
    stop_alpha: float | None = None
    stop_error: float = 1e-3
    backend: str = "local"
    client: Any = None
    keep_null: bool | None = None

    @property
    def n_workers(self) -> int:
        """Workers of the backend (1 locally)."""
        if self.backend != "dask":
            return 1
        return max(len(resolve_client(self.client).scheduler_info().get("workers", {})), 1)

    @property
    def seed_value(self) -> int | None:
        """The seed as recorded in a result (None for a SeedSequence or a Generator: the
        result's ``seed_entropy`` repeats the call)."""
        seed = self.seed
        if seed is None or isinstance(seed, np.random.SeedSequence | np.random.Generator):
            return None
        return int(seed)


# --- stage 1: prepare the pair -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Pair:
    """The full and null designs (same rows) and how to fit them.

    Attributes
    ----------
    full, null : Design
    family : str
        ``"gaussian"`` (LMM) or a GLMM family.
    link : str or None
    offset : ndarray or None
        GLMM offset on the rows of the designs.
    reml : bool
        REML criteria (LMM only; always False for a GLMM).
    label : str
        What is tested: the term, or "full  vs  null".
    df : int
        Covariance parameters removed (the naive chi-square's degrees of freedom).
    settings : dict
        The settings the result records (completed by the later stages).
    location : TermLocation or None
        Where the tested term sits in ``full`` (None for two formulas).
    nest : Nesting or None
        Computed on first use when not given.
    """

    full: Design
    null: Design
    family: str
    link: str | None
    offset: np.ndarray | None
    reml: bool
    label: str
    df: int
    settings: dict[str, Any] = field(default_factory=dict)
    location: TermLocation | None = None
    nest: Nesting | None = None

    @property
    def glmm(self) -> bool:
        """A generalized linear mixed model (Laplace fits)?"""
        return self.family != "gaussian"

    @property
    def nested(self) -> Nesting:
        """How the null sits in the full model."""
        return self.nest if self.nest is not None else nesting(self.full, self.null)

    @property
    def single_scalar(self) -> bool:
        """The tested term is a whole block with one column (one variance)."""
        loc = self.location
        return loc is not None and loc.whole_block and self.full.blocks[loc.block].k == 1

    @property
    def mixture(self) -> str | None:
        """The chi-bar-square mixture that applies to the tested term, if any."""
        loc = self.location
        if loc is None:
            return None
        if self.single_scalar:
            return "50:50 mixture chi2(0):chi2(1)"
        if not loc.whole_block and len(loc.columns) == 1 and self.full.blocks[loc.block].k == 2:
            return "50:50 mixture chi2(1):chi2(2)"
        return None


def data_shape(design: Design) -> list[int]:
    """Rows used and columns used of the data."""
    cols = design.frame.shape[1] if design.frame is not None else None
    return [design.n, cols]


def _data_settings(design: Design) -> dict[str, Any]:
    return {"n": design.n, "n_dropped": design.n_dropped, "data_hash": design.data_hash,
            "data_shape": data_shape(design)}


def term_pair(design: Design, term: str, *, family: str = "gaussian", link: str | None = None,
              offset: np.ndarray | None = None, reml: bool = True) -> Pair:
    """The model and the model without ``term`` (same rows, same fixed effects)."""
    refuse_smooths(design, "power(), ranova() or a bootstrap of one term")
    return located_pair(design, locate_term(design, term), family=family, link=link,
                        offset=offset, reml=reml)


def located_pair(design: Design, loc: TermLocation, *, family: str = "gaussian",
                 link: str | None = None, offset: np.ndarray | None = None,
                 reml: bool = True) -> Pair:
    """As :func:`term_pair`, for a term already located (``ranova``'s rows)."""
    null = drop_term(design, loc)
    glmm = family != "gaussian"
    model = ({"family": family, "link": link, "offset": offset is not None} if glmm
             else {"reml": reml})
    settings = {"formula": design.formula.text, "null_formula": null.formula.text,
                "term": loc.label, **model, **_data_settings(design)}
    return Pair(full=design, null=null, family=family, link=link, offset=offset,
                reml=reml and not glmm, label=loc.label, df=loc.n_params_removed,
                settings=settings, location=loc)


def aligned_designs(full: str, null: str, frame: pd.DataFrame, *,
                    weights: str | Any = None) -> tuple[Design, Design, np.ndarray]:
    """Both designs on the rows complete for both formulas.

    Also returns the positions in ``frame`` of the rows the designs were built
    from, so ``rows[design.row_index]`` locates each design row in ``frame``.
    """
    d_full = build_design(full, frame, weights=weights)
    d_null = build_design(null, frame, weights=weights)
    if d_full.n == d_null.n and np.array_equal(d_full.row_index, d_null.row_index):
        return d_full, d_null, np.arange(len(frame))
    rows = np.intersect1d(d_full.row_index, d_null.row_index)
    sub = frame.iloc[rows].reset_index(drop=True)
    if weights is not None and not isinstance(weights, str):
        weights = np.asarray(weights, dtype=float).reshape(-1)[rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (build_design(full, sub, weights=weights), build_design(null, sub, weights=weights),
                rows)


def model_pair(full: Design, null: Design, *, family: str = "gaussian",
               link: str | None = None, offset: np.ndarray | None = None,
               reml: bool = False) -> Pair:
    """Two nested designs given by the user, checked to be nested."""
    for design in (full, null):
        refuse_smooths(design, "compare() or anova() of two formulas")
    if not full.blocks:
        raise ValueError("the full model has no random-effects term; compare a mixed model "
                         "with a simpler one.")
    wf, wn = full.prior_weights, null.prior_weights
    if (wf is None) != (wn is None) or (wf is not None and not np.array_equal(wf, wn)):
        raise ValueError("the two models use different prior weights; fit both with the same "
                         "`weights`.")
    nest = nesting(full, null)
    if reml and not nest.same_fixed:
        raise ValueError(
            "REML criteria of models with different fixed effects are not comparable; "
            "use reml=False (ML), the default."
        )
    settings = {"formula": full.formula.text, "null_formula": null.formula.text,
                "family": family, "link": link, **_data_settings(full)}
    return Pair(full=full, null=null, family=family, link=link, offset=offset, reml=reml,
                label=f"{full.formula.text}  vs  {null.formula.text}", df=nest.df,
                settings=settings, nest=nest)


# --- stage 2: fit the pair -----------------------------------------------------------------


def fit_glmm_design(design: Design, family: str, link: str | None = None,
                    offset: np.ndarray | None = None) -> GlmmFit:
    """Fit a GLMM design (a clear error when it has no random effects)."""
    if not design.blocks:
        raise ValueError("the formula has no random-effects term such as `(1 | group)`; "
                         "a mixed model needs at least one.")
    return fit_glmm(GeneralizedLinearMixedModel.from_design(design, family, link, offset))


def fit_null(design: Design, *, family: str = "gaussian", link: str | None = None,
             offset: np.ndarray | None = None, reml: bool = False,
             like: LinearMixedModel | None = None,
             ) -> tuple[Generator, LmmFit | GlmmFit | GlmFit | None]:
    """Fit a null design and wrap it for simulation.

    A mixed model (LMM or GLMM, by ``family``), or without random effects a
    linear model (no fit is returned) or a GLM.  ``like``: the full model of a
    Gaussian pair, whose units and engine response the null shares
    (:meth:`LinearMixedModel.from_design`).
    """
    if family != "gaussian":
        if design.blocks:
            fit: GlmmFit | GlmFit = fit_glmm_design(design, family, link, offset)
        else:
            try:
                fit = fit_glm(GeneralizedLinearModel.from_design(design, family, link, offset))
            except FloatingPointError:
                raise ValueError(_separation_message(design, family)) from None
        return Generator.from_fit(fit), fit
    if design.blocks:
        lmm = fit_model(LinearMixedModel.from_design(design, like=like), reml=reml)
        return Generator.from_fit(lmm), lmm
    return Generator.linear_model(design, reml, like=like), None


def _separation_message(design: Design, family: str) -> str:
    """Why a GLM null cannot be fitted (its IRLS broke down), and what to do."""
    where = "probabilities of 0 or 1" if family == "binomial" else "means of 0"
    return (
        f"the null model {design.formula.text!r} (a GLM: no random effects left) cannot be "
        f"fitted: its fixed effects ({', '.join(design.fixed_names)}) separate the {family} "
        f"response completely (fitted {where}), so its likelihood has no maximum and the "
        "likelihood-ratio test is not defined. Remove or merge the fixed-effect term that "
        "predicts the response exactly (a level or a range of a covariate where every "
        "response is 0, or every one is 1)."
    )


@dataclass(frozen=True, eq=False)
class FittedPair:
    """Both models fitted, the statistic and the closed-form references."""

    pair: Pair
    full: LmmFit | GlmmFit
    generator: Generator
    null: LmmFit | GlmmFit | GlmFit | None
    statistic: float
    asymptotic: dict[str, float]
    settings: dict[str, Any]
    notes: tuple[str, ...]

    @property
    def fits(self) -> dict[str, Any]:
        """The two fits as a result records them."""
        return {"full": self.full, "null": self.null}


def fit_pair(pair: Pair) -> FittedPair:
    """Fit both models (by family), then the statistic and the asymptotic p-values."""
    like = None
    if pair.glmm:
        full: LmmFit | GlmmFit = fit_glmm_design(pair.full, pair.family, pair.link,
                                                 pair.offset)
        link = full.model.link
    else:
        like = LinearMixedModel.from_design(pair.full)
        full = fit_model(like, reml=pair.reml)
        link = None
    generator, null = fit_null(pair.null, family=pair.family, link=link, offset=pair.offset,
                               reml=pair.reml, like=like)
    statistic = float(clean_statistic(generator.objective - full.objective))
    asym = {f"naive chi2({pair.df})": float(chi2.sf(statistic, pair.df)) if statistic > 0
            else 1.0}
    if pair.mixture is not None:
        asym[pair.mixture] = (mixture_50_50 if pair.single_scalar else mixture_slope)(statistic)
    settings = dict(pair.settings)
    if "link" in settings:
        settings["link"] = link
    return FittedPair(pair=pair, full=full, generator=generator, null=null,
                      statistic=statistic, asymptotic=asym, settings=settings,
                      notes=(_SINGULAR_NOTE,) if full.singular else ())


# --- stage 3: the reference distribution ---------------------------------------------------


def check_method(pair: Pair, method: str) -> None:
    """Raise if ``method`` has no reference distribution for ``pair``."""
    if method == "asymptotic" and pair.mixture is None:
        alternative = ("use method='bootstrap'" if pair.glmm else
                       "use method='exact' for a single variance component, or "
                       "method='bootstrap'")
        raise ValueError(f"no asymptotic mixture is implemented for removing {pair.label} "
                         f"({pair.df} covariance parameters); {alternative}.")
    if method == "exact" and not pair.single_scalar:
        block = pair.full.blocks[pair.location.block].term.label
        raise ValueError(
            f"`term` {pair.label} is not a single variance component: removing it removes "
            f"{pair.df} covariance parameters of {block}. The exact null applies to one "
            "variance component; use method='bootstrap' or method='asymptotic' for the "
            "chi-bar-square reference."
        )


def reference(fitted: FittedPair, method: str, draws: Draws) -> TestResult:
    """Refer the statistic to the ``method``'s null distribution."""
    if method == "asymptotic":
        return _asymptotic(fitted, method)
    if method == "exact":
        return _exact(fitted, draws)
    return bootstrap_result(fitted, draws)


def test_term(design: Design, term: str, method: str, draws: Draws, *,
              family: str = "gaussian", link: str | None = None,
              offset: np.ndarray | None = None, reml: bool = True) -> TestResult:
    """The whole pipeline for one term of a design: prepare, fit, reference."""
    if family != "gaussian" and method not in ("bootstrap", "asymptotic"):
        raise ValueError(f"no exact null exists for a GLMM variance component; use "
                         f"method='bootstrap' (or 'asymptotic'), not {method!r}.")
    pair = term_pair(design, term, family=family, link=link, offset=offset, reml=reml)
    check_method(pair, method)
    return reference(fit_pair(pair), method, draws)


def _test_name(pair: Pair) -> str:
    """``TestResult.test``: the statistic's name, "RLRT" (REML) or "LRT" (ML, Laplace)."""
    return "RLRT" if pair.reml and not pair.glmm else "LRT"


def _asymptotic(fitted: FittedPair, method: str) -> TestResult:
    pair = fitted.pair
    mixture = pair.mixture
    sources = "Self & Liang 1987" if pair.glmm else "Self & Liang 1987; Stram & Lee 1994"
    return TestResult(
        statistic=fitted.statistic, pvalue=fitted.asymptotic[mixture], pvalue_mc_se=None,
        pvalue_ci=None, method="asymptotic", test=_test_name(pair), term=pair.label,
        reference=f"asymptotic {mixture} ({sources})", null_distribution=None,
        asymptotic=fitted.asymptotic, settings={**fitted.settings, "method": method},
        seed=None, seed_entropy=None, fits=fitted.fits, notes=fitted.notes,
    )


@dataclass(frozen=True, eq=False)
class ExactDraws:
    """The exact null sample (or its sketch) and the p-value of one statistic.

    Attributes
    ----------
    sample : ndarray or None
        The null draws (None when not kept: see ``null_summary``).
    null_summary : dict or None
        The sketch's summary when the sample was not kept.
    mc : MonteCarloPValue
    seed : SeedSequence
        The sequence the draws came from.
    notes : list of str
        An interruption note, if the simulation was stopped early.
    """

    sample: np.ndarray | None
    null_summary: dict[str, Any] | None
    mc: Any
    seed: np.random.SeedSequence
    notes: list[str]

    @property
    def n_run(self) -> int:
        """Draws that finished."""
        return int(self.mc.n_sim)


def simulate_exact(sd: Any, reml: bool, statistic: float, draws: Draws, *,
                   q: int = 0) -> ExactDraws:
    """Draw the exact null of ``sd`` (a :class:`~vctest.nulls.exact.SpectralDesign`) and refer
    ``statistic`` to it; ``q`` fixed effects are also 0 under H0 (ML LRT only)."""
    nsim = int(draws.nsim)
    ss = seed_sequence(draws.seed)
    keep = nsim <= KEEP_NULL_UP_TO if draws.keep_null is None else draws.keep_null
    sample, sketch = simulate_null(
        SpectralTask(sd, reml, ss, draws.threads if draws.backend == "local" else None, q=q),
        nsim, statistic, keep=keep, backend=draws.backend, client=draws.client,
        n_workers=draws.n_workers,
    )
    if sample is not None:
        mc = monte_carlo_pvalue(statistic, sample)
        null_summary = None
    else:
        mc = pvalue_from_counts(sketch.n_exceed, sketch.n)
        null_summary = sketch.summary(QUANTILE_LEVELS)
    notes = []
    if mc.n_sim < nsim:
        notes.append(f"interrupted: the p-value uses the {mc.n_sim} of {nsim} exact null draws "
                     "that finished.")
        warnings.warn(f"exact test interrupted after {mc.n_sim} of {nsim} null draws; the "
                      "result uses those that finished.", RuntimeWarning,
                      stacklevel=_stacklevel())
    return ExactDraws(sample=sample, null_summary=null_summary, mc=mc, seed=ss, notes=notes)


def _exact(fitted: FittedPair, draws: Draws) -> TestResult:
    """The exact finite-sample null (Crainiceanu & Ruppert 2004), simulated spectrally."""
    pair, statistic, nsim = fitted.pair, fitted.statistic, int(draws.nsim)
    test_name = _test_name(pair)
    sd = spectral_design(pair.full, pair.location.block)
    run = simulate_exact(sd, pair.reml, statistic, draws)
    sample, null_summary, mc, ss, n_run = run.sample, run.null_summary, run.mc, run.seed, run.n_run
    notes = list(fitted.notes) + run.notes
    if len(pair.full.blocks) > 1:
        reference = (
            f"exact finite-sample null of the {test_name} for the tested term's "
            "single-component design (Crainiceanu & Ruppert 2004), used for the model with "
            "other random effects by the pseudo-model approach of Greven et al. (2008)"
        )
        notes.append("with several variance components the exact null is an approximation "
                     "(Greven et al. 2008); it is good unless the other variance components "
                     "are near zero.")
        if fitted.null is not None and fitted.null.singular:
            notes.append("the null model is a boundary fit: a nuisance variance is estimated "
                         "at zero, where the pseudo-model approximation is least reliable.")
        confint = None
    else:
        reference = (f"exact finite-sample null of the {test_name} (Crainiceanu & Ruppert "
                     "2004), simulated from its spectral representation")
        confint = ExactConfint(fitted.full, sd, ss, draws.threads) if pair.reml else None
    if sd.K + sd.p >= sd.n:
        notes.append(f"p + K = {sd.p + sd.K} >= n = {sd.n}: the spectral null is not exact.")
    settings = {**fitted.settings, "method": "exact", "nsim": nsim, "K": sd.K, "p": sd.p,
                "n_run": n_run, "interrupted": n_run < nsim}
    result = TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="exact", test=test_name, term=pair.label, reference=reference,
        null_distribution=sample, asymptotic=fitted.asymptotic, settings=settings,
        seed=draws.seed_value, seed_entropy=entropy_of(ss), fits=fitted.fits,
        notes=tuple(notes), null_summary=null_summary,
    )
    return attach_confint(result, confint)


@dataclass(frozen=True, eq=False)
class ExactConfint:
    """``TestResult.confint``: invert the exact RLRT over the variance ratio.

    A plain object rather than a closure, so a result that carries it pickles.
    """

    full: LmmFit
    sd: Any
    ss: np.random.SeedSequence
    threads: int | None

    def profile(self, lam: float) -> float:
        """REML criterion at variance ratio ``lam``."""
        return self.full.model.objective(np.array([np.sqrt(lam)]), True)

    def __call__(self, level: float = 0.95, nsim: int = 20_000, rtol: float = 1e-3) -> Any:
        intercept = self.full.model.design.blocks[0].column_names == ("(Intercept)",)
        return invert_rlrt(self.profile, float(self.full.theta[0] ** 2), self.sd,
                           level=level, nsim=nsim, seed=self.ss, threads=self.threads,
                           rtol=rtol, intercept=intercept)


def bootstrap_result(fitted: FittedPair, draws: Draws,
                     lmm_bootstrap: Callable[..., Any] = run_bootstrap) -> TestResult:
    """Run the parametric bootstrap of the fitted pair and assemble the result.

    ``lmm_bootstrap`` runs the replicates (a caller may pass its own, to
    instrument it).
    """
    pair, statistic, nsim = fitted.pair, fitted.statistic, int(draws.nsim)
    nest = pair.nested
    ss = seed_sequence(draws.seed)
    common: dict[str, Any] = {
        "nsim": nsim, "seed_seq": ss, "observed": statistic, "threads": draws.threads,
        "progress": draws.progress, "stop_alpha": draws.stop_alpha,
        "stop_error": draws.stop_error, "backend": draws.backend, "client": draws.client,
        "n_workers": draws.n_workers}
    run = lmm_bootstrap(fitted.generator, fitted.full, nest.embed,
                        reml=bool(pair.reml) and not pair.glmm, **common)
    rec = run.replicates
    ok = rec.failure == 0
    sample = rec.statistic[ok]
    n_failed = rec.n_failed
    n_run = rec.failure.size
    if sample.size == 0:
        ran = (f"stopped after the first {n_run} of {nsim}, all failed" if run.gave_up
               else f"all {n_run} failed")
        raise ValueError(
            f"the bootstrap cannot refit the models: {ran} ({rec.failure_counts()}), so "
            "there is no null sample. Check the full model with `vctest check` (or "
            "vctest.check), simplify its random effects or rescale its covariates."
        )
    mc = monte_carlo_pvalue(statistic, sample)
    bound = (1 + mc.n_exceed + n_failed) / (1 + sample.size + n_failed)
    if n_failed > 0.01 * n_run:
        warnings.warn(
            f"{n_failed} of {n_run} bootstrap refits failed ({rec.failure_counts()}); the "
            f"p-value {mc.pvalue:.4g} excludes them, and would be {bound:.4g} if all had "
            "exceeded the observed statistic.",
            BootstrapFailureWarning,
            stacklevel=_stacklevel(),
        )
    df = nest.df
    approx = {
        f"gamma approximation (moment-matched, df={df})": gamma_pvalue(statistic, sample),
        f"Bartlett-scaled chi2({df})": bartlett_pvalue(statistic, sample, df),
    }
    stop_alpha = draws.stop_alpha
    settings = {**fitted.settings, "method": "bootstrap", "nsim": nsim, "n_run": n_run,
                "reml": pair.reml, "df": df, "threads": run.threads,
                "seconds": round(run.seconds, 3), "stop_alpha": stop_alpha,
                "stop_error": draws.stop_error if stop_alpha else None,
                "stopped_early": run.stopped_early, "interrupted": run.interrupted,
                "backend": draws.backend}
    notes = list(fitted.notes)
    if run.interrupted:
        notes.append(f"interrupted: the result uses the {n_run} of {nsim} replicates that "
                     "finished.")
        warnings.warn(f"bootstrap interrupted after {n_run} of {nsim} replicates; the result "
                      "uses those that finished.", RuntimeWarning, stacklevel=_stacklevel())
    if run.stopped_early:
        notes.append(f"sequential stopping: the decision at alpha = {stop_alpha} was settled "
                     f"after {n_run} of {nsim} replicates (error <= {draws.stop_error}).")
    test_name = _test_name(pair)
    return TestResult(
        statistic=statistic, pvalue=mc.pvalue, pvalue_mc_se=mc.se, pvalue_ci=mc.ci,
        method="bootstrap", test=test_name, term=pair.label,
        reference=("parametric bootstrap: responses simulated from the fitted null model, "
                   "both models refitted to each"
                   + (f" (Laplace approximation, {pair.family} family)" if pair.glmm
                      else "")),
        null_distribution=sample, asymptotic=fitted.asymptotic, settings=settings,
        seed=draws.seed_value, seed_entropy=entropy_of(ss), n_failed=n_failed,
        pvalue_bound=bound, failures=rec.failure_counts(), approximations=approx,
        replicates=rec, replicate_summary=rec.summary(statistic), fits=fitted.fits,
        notes=tuple(notes),
    )
