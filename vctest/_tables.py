"""pandas tables and notebook HTML for fits, test results and convergence reports (a leaf:
models, results and reports all render through it)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd


def coef_table(fit: Any) -> pd.DataFrame:
    """Fixed effects with standard errors and t (z) values."""
    est, se = fit.beta, fit.beta_se
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": est / se})


def result_frame(result: Any) -> pd.DataFrame:
    """One row per reference distribution: the test's own, then the comparisons."""
    rows = [{"reference": f"{result.method}: {result.reference}",
             "statistic": result.statistic, "pvalue": result.pvalue,
             "mc_se": np.nan if result.pvalue_mc_se is None else result.pvalue_mc_se,
             "nsim": result.nsim}]
    for name, p in {**result.approximations, **result.asymptotic}.items():
        rows.append({"reference": name, "statistic": result.statistic, "pvalue": p,
                     "mc_se": np.nan, "nsim": None})
    frame = pd.DataFrame(rows)
    frame["nsim"] = frame["nsim"].astype("Int64")
    return frame


def _section(title: str, body: str) -> str:
    return f"<h4 style='margin:0.6em 0 0.2em 0'>{html.escape(title)}</h4>{body}"


def fit_html(fit: Any) -> str:
    """Notebook view of a fit."""
    kind = "REML" if fit.reml else "ML"
    status = ("converged" if fit.converged else "NOT converged") + (
        ", boundary (singular)" if fit.singular else "")
    formula = html.escape(fit.model.design.formula.text)
    head = (f"<p><b>Linear mixed model</b> ({kind}): <code>{formula}</code><br>"
            f"n = {fit.nobs}, logLik = {fit.loglik:.4f}, {status}</p>")
    return ("<div>" + head + _section("Random effects", fit.varcorr.to_html(index=False))
            + _section("Fixed effects", coef_table(fit).to_html(float_format="%.5g"))
            + "</div>")


def result_html(result: Any) -> str:
    """Notebook view of a test result."""
    head = (f"<p><b>{html.escape(result.test)}</b> of <code>{html.escape(result.term)}</code>: "
            f"statistic {result.statistic:.4f}, p = {result.pvalue:.4g}</p>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return ("<div>" + head + result_frame(result).to_html(index=False, float_format="%.4g")
            + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def report_html(report: Any) -> str:
    """Notebook view of a convergence report."""
    grads = pd.DataFrame([{"measure": g.name, "value": g.value, "tolerance": g.tolerance,
                           "ok": g.ok} for g in report.gradient])
    runs = pd.DataFrame([{"run": r.label, "logLik": r.loglik, "converged": r.converged}
                         for r in report.runs])
    return ("<div>" + f"<p><b>Convergence check: {html.escape(report.verdict)}</b></p>"
            + f"<p>{html.escape(report.explanation)}</p>"
            + _section("Gradient", grads.to_html(index=False, float_format="%.3g"))
            + _section("Parameters", report.parameters.to_html(index=False,
                                                                float_format="%.4g"))
            + _section("Optimisers", runs.to_html(index=False, float_format="%.6f"))
            + "</div>")
