"""The result of :func:`vctest.power_curve`: rejection rates along a sample-size axis.

Data first (:meth:`PowerCurve.to_frame`, :meth:`PowerCurve.to_dict` and JSON),
then views: a text table, HTML, a methods paragraph and a plot of each
method's curve with its Wilson 95% intervals.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vctest.report.methods import CITATIONS, CITED_AS
from vctest.report.serialize import _default

#: Columns of :attr:`PowerCurve.table`.
COLUMNS = ("size", "method", "rejections", "datasets", "failed", "rate", "ci_low", "ci_high",
           "mean_draws")

METHOD_NAMES = {
    "exact": "the exact finite-sample null",
    "bootstrap": "a parametric bootstrap",
    "asymptotic": "the chi-bar-square mixture",
    "naive": "the naive chi-square",
}


@dataclass(frozen=True, eq=False)
class PowerCurve:
    """Rejection rates by sample size and method, with their Monte Carlo intervals.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per size and method: ``size``, ``method``, ``rejections``,
        ``datasets`` (tested), ``failed`` (data sets whose refit failed, or whose
        bootstrap had no successful replicate), ``rate``, ``ci_low``,
        ``ci_high`` (Wilson 95%) and ``mean_draws`` (null draws per data set).
    alpha : float
    settings : dict
        The call's settings (model, term, sizes, draws, seed entropy, ...).
    statistics : dict of int to ndarray
        The likelihood-ratio statistic of every data set, by size (NaN: failed).
    pvalues : dict of int to ndarray
        Every data set's p-values, by size (one column per method).
    interrupted : bool
        Stopped by Ctrl-C or SIGTERM: the table counts the data sets that finished.
    """

    table: pd.DataFrame
    alpha: float
    settings: dict[str, Any] = field(default_factory=dict)
    statistics: dict[int, np.ndarray] = field(default_factory=dict)
    pvalues: dict[int, np.ndarray] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods, in the table's order."""
        return tuple(dict.fromkeys(self.table["method"]))

    def to_frame(self) -> pd.DataFrame:
        """The table (a copy)."""
        return self.table.copy()

    def rate(self, method: str) -> pd.Series:
        """One method's rejection rate by size."""
        rows = self.table[self.table["method"] == method]
        if rows.empty:
            raise ValueError(f"`method` must be one of {self.methods}; got {method!r}.")
        return rows.set_index("size")["rate"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: alpha, settings and the table's rows (NaN as None)."""
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else
                     v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                for r in self.table.to_dict(orient="records")]
        return {"kind": "power_curve", "alpha": self.alpha, "interrupted": self.interrupted,
                "settings": dict(self.settings), "table": rows}

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, default=_default)

    def summary(self) -> str:
        """The rates as a text table, one row per size and method."""
        s = self.settings
        head = (f"Power curve of {s.get('term', '?')} at alpha = {self.alpha:g} along "
                f"{s.get('axis', 'size')} ({s.get('nsim', '?')} data sets per size; "
                "Wilson 95% intervals)")
        body = self.table[list(COLUMNS)].to_string(
            index=False, float_format=lambda v: f"{v:.3f}")
        lines = [head, body]
        if self.interrupted:
            lines.append("interrupted: the table counts the data sets that finished.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        from vctest._tables import clip_lines

        return clip_lines(self.summary(), what="result.table")

    def _repr_html_(self) -> str:
        from vctest._tables import frame_html

        return frame_html(f"Power curve at alpha = {self.alpha:g}", self.table,
                          "Rejection rates with Wilson 95% intervals.")

    def methods_text(self) -> str:
        """A paragraph for a paper's methods section, with the references it cites."""
        s = self.settings
        cited = ["bates2015"]
        names = []
        for m in self.methods:
            names.append(METHOD_NAMES[m])
            if m == "exact":
                cited += ["cr2004"] + (["greven2008"] if s.get("other_random_effects") else [])
            elif m == "bootstrap":
                cited.append("hh2014")
            elif m == "asymptotic":
                cited += ["sl1987", "sl1994"]
        sizes = ", ".join(str(v) for v in s.get("sizes", []))
        text = (
            f"Power was estimated by simulation. For each of {s.get('axis_text', 'the sizes')} "
            f"{sizes}, {s.get('nsim')} data sets were simulated from the {s.get('family')} "
            f"mixed model {s.get('formula')!r} with the stated parameters, and the "
            f"{s.get('test', 'likelihood-ratio test')} of {s.get('term')} was referred to "
            f"{_join(names)} at level {self.alpha:g}; both models were refitted to every data "
            f"set as lme4 does ({CITED_AS['bates2015']})")
        refs = [CITED_AS[c] for c in dict.fromkeys(cited) if c != "bates2015"]
        if refs:
            text += f" ({'; '.join(refs)})"
        text += ". Rejection rates are given with Wilson 95% intervals."
        if s.get("sequential"):
            text += (" Simulated null distributions stopped once the decision at the level "
                     f"was settled with error {s.get('stop_error'):g} (at most "
                     f"{s.get('nsim_exact')} exact draws and {s.get('nsim_bootstrap')} "
                     "bootstrap replicates per data set).")
        text += f" Simulations used vctest with seed entropy {s.get('seed_entropy')}."
        refs_text = "\n".join(CITATIONS[c] for c in dict.fromkeys(cited))
        return f"{text}\n\nReferences\n{refs_text}"

    def plot(self, ax: Any = None) -> Any:
        """Each method's rejection rate against the size, with its 95% intervals.

        Needs matplotlib (``pip install 'vctest[plot]'``).
        """
        ax = plot_rates(self.table, "size", self.alpha,
                        self.settings.get("axis_text", "size"), ax)
        ax.set_title(f"Power: {self.settings.get('term', '')}", fontsize="medium")
        return ax


def plot_rates(table: pd.DataFrame, x: str, alpha: float, xlabel: str, ax: Any = None) -> Any:
    """Rejection rate against column ``x`` of ``table``, one curve per method, with the
    Wilson intervals (``ci_low``, ``ci_high``) as error bars and ``alpha`` as a line."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        raise ImportError("plotting needs matplotlib: pip install 'vctest[plot]'") from None
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.0))
    for method, rows in table.groupby("method", sort=False):
        ax.errorbar(rows[x], rows["rate"],
                    yerr=[rows["rate"] - rows["ci_low"], rows["ci_high"] - rows["rate"]],
                    marker="o", capsize=3, label=method)
    ax.axhline(alpha, color="0.5", ls=":", label=f"alpha = {alpha:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rejection rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    return ax


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
