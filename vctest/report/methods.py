"""A paragraph for a paper's methods section, written from a result's own record."""

from __future__ import annotations

from typing import Any

CITATIONS = {
    "cr2004": "Crainiceanu, C. M. & Ruppert, D. (2004). Likelihood ratio tests in linear "
              "mixed models with one variance component. JRSS B 66, 165-185.",
    "greven2008": "Greven, S., Crainiceanu, C. M., Küchenhoff, H. & Peters, A. (2008). "
                  "Restricted likelihood ratio testing for zero variance components in "
                  "linear mixed models. JCGS 17, 870-891.",
    "hh2014": "Halekoh, U. & Højsgaard, S. (2014). A Kenward-Roger approximation and "
              "parametric bootstrap methods for tests in linear mixed models - the R "
              "package pbkrtest. J. Stat. Softw. 59(9).",
    "crcw2005": "Crainiceanu, C. M., Ruppert, D., Claeskens, G. & Wand, M. P. (2005). "
                "Exact likelihood ratio tests for penalised splines. Biometrika 92, 91-103.",
    "sl1987": "Self, S. G. & Liang, K.-Y. (1987). Asymptotic properties of maximum "
              "likelihood estimators and likelihood ratio tests under nonstandard "
              "conditions. JASA 82, 605-610.",
    "sl1994": "Stram, D. O. & Lee, J. W. (1994). Variance components testing in the "
              "longitudinal mixed effects model. Biometrics 50, 1171-1177.",
    "bates2015": "Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear "
                 "mixed-effects models using lme4. J. Stat. Softw. 67(1).",
}


#: How each reference is cited in the text; a reference is listed when, and only when,
#: the paragraph cites it.
CITED_AS = {
    "bates2015": "Bates et al., 2015",
    "cr2004": "Crainiceanu & Ruppert, 2004",
    "crcw2005": "Crainiceanu et al., 2005",
    "greven2008": "Greven et al., 2008",
    "hh2014": "Halekoh & Højsgaard, 2014",
    "sl1987": "Self & Liang, 1987",
    "sl1994": "Stram & Lee, 1994",
}


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.4f}".rstrip("0").rstrip(".")


def methods_text(result: Any) -> str:
    """The methods paragraph of ``result`` (see :meth:`TestResult.methods_text`)."""
    s = result.settings
    v = result.versions
    fit_kind = "restricted maximum likelihood (REML)" if s.get("reml") else \
        "maximum likelihood (ML)"
    stat = "restricted likelihood-ratio statistic (RLRT)" if s.get("reml") else \
        "likelihood-ratio statistic (LRT)"
    model = s.get("formula")
    null = s.get("null_formula")
    family = s.get("family", "gaussian")
    if family in ("binomial", "poisson"):
        kind = (f"the generalized linear mixed model {model} ({family} family, "
                f"{s.get('link')} link)")
        fit_kind = ("maximum likelihood with the Laplace approximation to the marginal "
                    "likelihood")
        null = f"{null} (a generalized linear model)" if "|" not in str(null) else null
    else:
        kind = f"the linear mixed model {model}"
    restricted = s.get("restricted") or []
    question = ("We tested the model against a nested one by " if result.is_comparison
                else f"We tested whether the smooth {result.term} was constant (its "
                "penalised part's variance and its fixed effect(s) "
                f"{', '.join(restricted)} zero; Crainiceanu et al., 2005) by "
                if s.get("test") == "constant"
                else f"We tested whether the variance of the random effect {result.term} "
                "was zero by ")
    parts = [
        f"{question}comparing {kind} with {null}, both fitted by {fit_kind}, "
        f"as lme4 does (Bates et al., 2015), to the same {s.get('n')} observations, "
        f"using the {stat}, T = {result.statistic:.3f}."
    ]
    if result.method == "exact":
        several = "Greven" in result.reference
        parts.append(
            "The p-value was computed from the exact finite-sample null distribution of the "
            "statistic (the spectral representation of Crainiceanu & Ruppert, 2004"
            + ("; for a model with several variance components, the pseudo-model "
               "approach of Greven et al., 2008" if several else "")
            + f"), simulated with {result.nsim:,} draws"
        )
    elif result.method == "bootstrap":
        parts.append(
            "The p-value was computed by a parametric bootstrap (as in the R package "
            "pbkrtest; Halekoh & Højsgaard, 2014): responses were simulated from the fitted "
            f"null model and both models refitted, {result.nsim:,} replicates "
            f"({result.n_failed} failed refits, excluded)"
        )
    else:
        sources = ("Self & Liang, 1987" if family in ("binomial", "poisson")
                   else "Self & Liang, 1987; Stram & Lee, 1994")
        mixture = next((k for k in result.asymptotic if "mixture" in k), None)
        parts.append(f"The p-value was taken from the asymptotic {mixture or 'reference'} "
                     f"({sources})")
    parts[-1] += _seed_text(result) + "."
    stopping = _stopping_text(s)
    if stopping:
        parts.append(stopping)
    if s.get("interrupted"):
        unit = "replicates" if result.method == "bootstrap" else "draws"
        parts.append(f"The simulation was interrupted after {result.nsim:,} of the "
                     f"{s.get('nsim'):,} planned {unit}; the p-value uses those that "
                     "finished.")
    if result.nsim and result.pvalue * (1 + result.nsim) < 1.5:
        parts.append(f"p = {_fmt_p(result.pvalue)}, the smallest attainable with "
                     f"B = {result.nsim:,} (no simulated statistic reached T; "
                     "p = (1 + #{T* >= T})/(1 + B)).")
    elif result.pvalue_mc_se is not None:
        parts.append(f"p = {_fmt_p(result.pvalue)} (Monte Carlo standard error "
                     f"{result.pvalue_mc_se:.2g}), computed as (1 + #{{T* >= T}})/(1 + B).")
    else:
        parts.append(f"p = {_fmt_p(result.pvalue)}.")
    mixtures = {k: p for k, p in result.asymptotic.items() if "mixture" in k}
    if mixtures and result.method != "asymptotic":
        name, p = next(iter(mixtures.items()))
        parts.append(f"For comparison, the asymptotic {name} gives p = {_fmt_p(p)} "
                     "(Self & Liang, 1987; Stram & Lee, 1994).")
    parts.append(
        f"Computations used vctest {v.get('vctest')} with NumPy {v.get('numpy')}, SciPy "
        f"{v.get('scipy')} and Numba {v.get('numba')} in Python {v.get('python')}."
    )
    text = " ".join(parts)
    refs = "\n".join(f"- {CITATIONS[k]}" for k, cite in CITED_AS.items() if cite in text)
    return text + "\n\nReferences\n" + refs


def _seed_text(result: Any) -> str:
    """", seed 1", or the recorded entropy when no integer seed was given."""
    if result.seed is not None:
        return f", seed {result.seed}"
    if result.seed_entropy is not None:
        return (f"; no integer seed was given, and the recorded entropy "
                f"{result.seed_entropy}, passed as the seed, repeats the run")
    return ""


def _stopping_text(settings: dict) -> str:
    """The sequential stopping rule, when it was on."""
    alpha = settings.get("stop_alpha")
    if not alpha:
        return ""
    nsim, n_run = settings.get("nsim"), settings.get("n_run")
    rule = (f"Replicates were drawn sequentially, with checks after 100, 200, 400, ... "
            f"replicates (at most {nsim:,}): the run stops once a Clopper-Pearson interval "
            f"for the p-value excludes alpha = {alpha:g} (total error "
            f"{settings.get('stop_error'):g}, split equally over the checks)")
    if settings.get("stopped_early"):
        return rule + f"; it stopped after {n_run:,} replicates."
    return rule + f"; it did not stop early (all {n_run:,} replicates were run)."
