"""Plot a null distribution for a paper: mass at zero, observed statistic, reference curves.

One figure per result (:meth:`vctest.results.TestResult.plot`):

* the positive part of the simulated null as a density histogram scaled by
  P(T > 0), and its point mass at zero as a bar (left of 0, so it never hides
  the first bin) labelled with its probability;
* the observed statistic as a vertical line labelled with its p-value --
  "p < 1e-05" when no null draw reached it (the Monte Carlo floor);
* the reference curves: the naive chi-square, the chi-bar-square 50:50 mixture
  (its point mass at zero as a marker) and, for a bootstrap, the
  moment-matched gamma and the Bartlett-scaled chi-square that the p-values in
  ``result.approximations`` come from;
* when the statistic lies far beyond the null, a broken axis: the null on the
  left, a narrow window around the statistic on the right;
* when no null sample was kept (``keep_null=False``, or an asymptotic result),
  the references and the statistic, and a note saying so in the plot.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import numpy as np
from scipy.stats import chi2, gamma

#: The statistic is "far out" beyond this multiple of the null's 99.5% quantile.
FAR = 1.6

#: Bins of the histogram over the null's range.
BINS = 50


def pvalue_label(result: Any) -> str:
    """``"p = 0.0046"``, or ``"p < 1e-05"`` at the Monte Carlo floor (no draw reached T).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> pvalue_label(SimpleNamespace(pvalue=1 / 100_001, nsim=100_000))
    'p < 1e-05'
    >>> pvalue_label(SimpleNamespace(pvalue=0.0046, nsim=100_000))
    'p = 0.0046'
    """
    nsim = result.nsim
    if nsim and result.pvalue * (1 + nsim) < 1.5:
        return f"p < {1 / nsim:.2g}"
    return f"p = {result.pvalue:.3g}"


def reference_curves(result: Any) -> list[tuple[str, Any, float]]:
    """(label, density of the continuous part, point mass at zero) of each reference."""
    curves: list[tuple[str, Any, float]] = []
    for name in result.asymptotic:
        mix = re.search(r"chi2\((\d+)\):chi2\((\d+)\)", name)
        naive = re.search(r"naive chi2\((\d+)\)", name)
        if mix:
            a, b = int(mix.group(1)), int(mix.group(2))
            parts = [d for d in (a, b) if d > 0]

            def pdf(x: np.ndarray, parts: list[int] = parts) -> np.ndarray:
                return sum(0.5 * chi2.pdf(x, d) for d in parts)

            curves.append((f"0.5 chi2({a}) + 0.5 chi2({b})", pdf, 0.5 if a == 0 else 0.0))
        elif naive:
            k = int(naive.group(1))
            curves.append((f"chi2({k}) (naive)", lambda x, k=k: chi2.pdf(x, k), 0.0))
    sample = result.null_distribution
    if result.method == "bootstrap" and sample is not None and sample.size > 1:
        m, v = float(np.mean(sample)), float(np.var(sample, ddof=1))
        df = int(result.settings.get("df") or 1)
        if m > 0 and v > 0:
            curves.append(("gamma (moment-matched)",
                           lambda x: gamma.pdf(x, a=m * m / v, scale=v / m), 0.0))
            curves.append((f"Bartlett-scaled chi2({df})",
                           lambda x: chi2.pdf(x * df / m, df) * df / m, 0.0))
    return curves


def _null_range(result: Any, curves: list) -> tuple[float, float]:
    """(upper end of the null's bulk, P(T = 0)) from the sample, its sketch or references."""
    sample = result.null_distribution
    if sample is not None and sample.size:
        return float(np.quantile(sample, 0.995)), float(np.mean(sample == 0.0))
    summary = result.null_summary
    if summary:
        q = summary.get("quantiles", {})
        hi = max([float(v) for v in q.values()] or [0.0])
        return hi, summary["n_zero"] / max(summary["n"], 1)
    dfs = [int(d) for name in result.asymptotic for d in re.findall(r"chi2\((\d+)\)", name)]
    return float(chi2.ppf(0.995, max([*dfs, 1]))), 0.0


def _title(result: Any) -> str:
    if result.is_comparison:
        full, null = result.term.split("  vs  ")
        return f"{full}\nagainst {null}"
    model = textwrap.shorten(str(result.settings.get("formula")), 80, placeholder=" ...")
    return f"{result.term}\nin {model}"


def _no_sample_note(result: Any) -> str | None:
    if result.null_distribution is not None:
        return None
    if result.null_summary:
        return (f"no null sample was kept (keep_null=False): only its summary, "
                f"P(T = 0) = {result.null_mass_at_zero:.3f} from {result.nsim:,} draws;\n"
                "re-run with keep_null=True to draw the null distribution")
    return ("asymptotic reference: there is no simulated null to draw;\n"
            "use method='exact' or 'bootstrap' to see one")


def plot_result(result: Any, ax: Any = None) -> Any:
    """Draw ``result`` on ``ax`` (a new figure when None); returns the main Axes.

    See the module docstring for what is drawn.  With a broken axis the window
    around the statistic is a second Axes of the same figure, to the right of
    ``ax`` (``ax.figure.axes``).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import vctest
    >>> res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
    ...                      nsim=10_000, seed=1)
    >>> ax = res.plot()
    >>> for text in ax.get_legend().get_texts():
    ...     print(text.get_text())
    null (exact), P(T > 0) = 0.441
    chi2(1) (naive)
    0.5 chi2(0) + 0.5 chi2(1)
    observed T = 6.369, p = 0.0044
    P(T = 0) = 0.559
    """
    try:
        import matplotlib.pyplot as plt
        from mpl_toolkits.axes_grid1 import make_axes_locatable
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'vctest[plot]'") from None
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    t = float(result.statistic)
    curves = reference_curves(result)
    hi, p0 = _null_range(result, curves)
    hi = max(hi, 1.0)
    far = t > FAR * hi
    upper = 1.05 * hi if far else max(1.1 * t, hi)
    width = upper / BINS
    top = 0.0
    sample = result.null_distribution
    if p0 > 0:
        ax.bar([-width / 2], [p0], width=0.9 * width, color="0.25",
               label=f"P(T = 0) = {p0:.3f}")
        ax.annotate(f"{p0:.3f}", (-width / 2, p0), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize="small")
        top = p0
    if sample is not None and np.any(sample > 0):
        positive = sample[sample > 0]
        bins = np.linspace(0.0, upper, BINS + 1)
        weights = np.full(positive.size, (1 - p0) / positive.size / width)
        heights, *_ = ax.hist(positive, bins=bins, weights=weights, color="0.72",
                              label=f"null ({result.method}), P(T > 0) = {1 - p0:.3f}")
        top = max(top, float(np.max(heights)))
    x = np.linspace(width / 2, upper, 400)
    styles = ["--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
    colors = ["C0", "C1", "C2", "C4"]  # C3 (red) is the observed statistic's
    for i, (label, pdf, mass) in enumerate(curves):
        color = colors[i % len(colors)]
        ax.plot(x, pdf(x), color=color, ls=styles[i % len(styles)], lw=1.5, label=label)
        if mass > 0:
            ax.plot([0.0], [mass], "o", color=color, mfc="none", ms=7)
            top = max(top, mass)
    top = 1.15 * (top if top > 0 else 1.0)
    label = f"observed T = {t:.4g}, {pvalue_label(result)}"
    ax.set_xlim(-1.5 * width, upper)
    ax.set_ylim(0.0, top)
    ax.set_xlabel(f"{result.test} statistic T")
    ax.set_ylabel("density (bar: probability of T = 0)")
    ax.set_title(_title(result), fontsize="medium")
    if far:
        side = make_axes_locatable(ax).append_axes("right", size="22%", pad=0.12, sharey=ax)
        half = max(0.08 * t, 0.5)
        side.axvline(t, color="C3", lw=2)
        xs = np.linspace(t - half, t + half, 50)
        for i, (_, pdf, _) in enumerate(curves):
            side.plot(xs, pdf(xs), color=colors[i % len(colors)], ls=styles[i % len(styles)],
                      lw=1.5)
        side.set_xlim(t - half, t + half)
        side.tick_params(left=False, labelleft=False)
        ax.spines["right"].set_visible(False)
        side.spines["left"].set_visible(False)
        for axis, xpos in ((ax, 1.0), (side, 0.0)):  # the break marks
            axis.plot([xpos - 0.015, xpos + 0.015], [-0.02, 0.02], transform=axis.transAxes,
                      color="k", lw=1, clip_on=False)
        ax.plot([], [], color="C3", lw=2, label=label + " (axis broken)")
    else:
        ax.axvline(t, color="C3", lw=2, label=label)
    note = _no_sample_note(result)
    if note:
        ax.text(0.5, 0.55, note, transform=ax.transAxes, ha="center", va="center",
                fontsize="small", color="0.2",
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"})
    ax.legend(fontsize="small", loc="upper right", frameon=False)
    return ax
