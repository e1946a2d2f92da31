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
    "sl1987": "Self, S. G. & Liang, K.-Y. (1987). Asymptotic properties of maximum "
              "likelihood estimators and likelihood ratio tests under nonstandard "
              "conditions. JASA 82, 605-610.",
    "sl1994": "Stram, D. O. & Lee, J. W. (1994). Variance components testing in the "
              "longitudinal mixed effects model. Biometrics 50, 1171-1177.",
    "bates2015": "Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear "
                 "mixed-effects models using lme4. J. Stat. Softw. 67(1).",
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
    keys = ["bates2015"]
    family = s.get("family", "gaussian")
    if family in ("binomial", "poisson"):
        kind = (f"the generalized linear mixed model {model} ({family} family, "
                f"{s.get('link')} link)")
        fit_kind = ("maximum likelihood with the Laplace approximation to the marginal "
                    "likelihood")
        null = f"{null} (a generalized linear model)" if "|" not in str(null) else null
    else:
        kind = f"the linear mixed model {model}"
    question = ("We tested the model against a nested one by " if "  vs  " in result.term
                else f"We tested whether the variance of the random effect {result.term} "
                "was zero by ")
    parts = [
        f"{question}comparing {kind} with {null}, both fitted by {fit_kind} "
        f"to the same {s.get('n')} observations, using the {stat}, "
        f"T = {result.statistic:.3f}."
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
        keys += ["cr2004"] + (["greven2008"] if several else [])
    elif result.method == "bootstrap":
        parts.append(
            "The p-value was computed by a parametric bootstrap: responses were simulated "
            f"from the fitted null model and both models refitted, {result.nsim:,} "
            f"replicates ({result.n_failed} failed refits, excluded)"
        )
        keys.append("hh2014")
    else:
        parts.append(f"The p-value was taken from the {result.reference}")
        keys += ["sl1987", "sl1994"]
    seed = "" if result.seed is None else f" (seed {result.seed})"
    parts[-1] += seed + "."
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
    if mixtures:
        name, p = next(iter(mixtures.items()))
        parts.append(f"For comparison, the asymptotic {name} gives p = {_fmt_p(p)} "
                     "(Self & Liang, 1987; Stram & Lee, 1994).")
        keys += [k for k in ("sl1987", "sl1994") if k not in keys]
    parts.append(
        f"Computations used vctest {v.get('vctest')} with NumPy {v.get('numpy')}, SciPy "
        f"{v.get('scipy')} and Numba {v.get('numba')} in Python {v.get('python')}."
    )
    refs = "\n".join(f"- {CITATIONS[k]}" for k in dict.fromkeys(keys))
    return " ".join(parts) + "\n\nReferences\n" + refs
