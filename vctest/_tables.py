"""pandas tables, short reprs and notebook HTML for fits, test results and reports (a leaf:
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


#: Most lines a repr prints (the rest is in ``summary()``).
MAX_REPR_LINES = 40

#: Most rows of a table in a repr.
MAX_REPR_ROWS = 12


def clip_lines(text: str, max_lines: int = MAX_REPR_LINES, what: str = "summary()") -> str:
    """``text`` cut to ``max_lines`` lines, the last saying how many were left out.

    Examples
    --------
    >>> print(clip_lines("\\n".join(map(str, range(5))), 3))
    0
    1
    ... 3 more lines: see summary()
    """
    lines = text.splitlines()
    if len(lines) <= max_lines:
        return text
    keep = max_lines - 1
    return "\n".join([*lines[:keep], f"... {len(lines) - keep} more lines: see {what}"])


def clip_rows(rows: list[str], max_rows: int | None, what: str) -> list[str]:
    """At most ``max_rows`` of ``rows`` (all when None), then a line naming the rest."""
    if max_rows is None or len(rows) <= max_rows:
        return rows
    return [*rows[:max_rows], f" ... {len(rows) - max_rows} more rows: see {what}"]


def groups_line(design: Any) -> str:
    """lme4's "Number of obs: n, groups: g, k" line."""
    seen: dict[str, int] = {}
    for block in design.blocks:
        seen.setdefault(block.term.group, block.n_levels)
    groups = "; ".join(f"{g}, {k}" for g, k in seen.items())
    return f"Number of obs: {design.n}" + (f", groups: {groups}" if groups else "")


def _section(title: str, body: str) -> str:
    return f"<h4 style='margin:0.6em 0 0.2em 0'>{html.escape(title)}</h4>{body}"


def _frame_html(frame: pd.DataFrame, max_rows: int = 60, **kwargs: Any) -> str:
    return frame.to_html(max_rows=max_rows, **kwargs)


def fit_html(fit: Any) -> str:
    """Notebook view of a linear or generalized linear mixed model fit (or a GLM)."""
    model = fit.model
    if hasattr(model, "family"):
        kind = (f"{'Generalized linear mixed model' if hasattr(fit, 'theta') else 'GLM'}"
                f"</b> ({html.escape(model.family)}, {html.escape(model.link)} link; "
                "ML" + (", Laplace" if hasattr(fit, "theta") else "") + ")")
        crit = f"-2 logLik = {fit.objective:.4f}"
    else:
        kind = f"Linear mixed model</b> ({'REML' if fit.reml else 'ML'})"
        crit = f"{'REML criterion' if fit.reml else 'deviance'} = {fit.objective:.4f}"
    status = ("converged" if fit.converged else "NOT converged") + (
        ", boundary (singular)" if getattr(fit, "singular", False) else "")
    formula = html.escape(model.design.formula.text)
    head = (f"<p><b>{kind}: <code>{formula}</code><br>"
            f"{html.escape(groups_line(model.design))}; {crit}, "
            f"logLik = {fit.loglik:.4f}; {status}</p>")
    body = ""
    if hasattr(fit, "varcorr"):
        body += _section("Random effects", _frame_html(fit.varcorr, index=False,
                                                       float_format="%.5g"))
    table = fit.coef_table() if hasattr(fit, "coef_table") else coef_table(fit)
    body += _section("Fixed effects", _frame_html(table, float_format="%.5g"))
    return "<div>" + head + body + "</div>"


def text_html(title: str, text: str) -> str:
    """Notebook view of a plain-text summary: a bold title over preformatted text."""
    return (f"<div><p><b>{html.escape(title)}</b></p><pre style='margin:0'>"
            f"{html.escape(text)}</pre></div>")


def frame_html(title: str, frame: pd.DataFrame, note: str = "") -> str:
    """Notebook view of a table with a title and an optional note under it."""
    tail = f"<p>{html.escape(note)}</p>" if note else ""
    return (f"<div><p><b>{html.escape(title)}</b></p>"
            + _frame_html(frame, index=False, float_format="%.4g") + tail + "</div>")


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


class FitViews:
    """The repr and HTML view of a fit, both from its ``summary(max_rows=...)``.

    A mixin of the fit classes; a dataclass using it needs ``repr=False`` (else
    the dataclass's generated ``__repr__`` would hide this one).
    """

    def _repr_html_(self) -> str:
        return fit_html(self)

    def __repr__(self) -> str:
        return clip_lines(self.summary(max_rows=MAX_REPR_ROWS),  # type: ignore[attr-defined]
                          what="fit.summary()")
