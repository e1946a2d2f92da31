"""Plot a null distribution with its mass at zero, the observed statistic and a mixture."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import chi2


def plot_result(result: Any, ax: Any = None) -> Any:
    """Draw ``result`` on ``ax`` (a new figure when None); returns the Axes.

    The positive part of the null sample is a density histogram scaled by
    P(T > 0); the mass at zero is a bar labelled with its probability; the
    observed statistic is a vertical line; the asymptotic mixture (when the
    result has one) is drawn for comparison.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'vctest[plot]'") from None
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.0))
    t = float(result.statistic)
    sample = result.null_distribution
    upper = max(t * 1.1, 1.0)
    if sample is not None:
        sample = np.asarray(sample)
        positive = sample[sample > 0]
        p0 = float(np.mean(sample == 0))
        upper = max(upper, float(np.quantile(sample, 0.995)))
        if positive.size:
            bins = np.linspace(0.0, upper, 60)
            weights = np.full(positive.size, (1 - p0) / positive.size)
            ax.hist(positive, bins=bins, weights=weights / np.diff(bins)[0], color="0.7",
                    label=f"null ({result.method}), P(T > 0) = {1 - p0:.3f}")
        if p0 > 0:
            ax.bar([0.0], [p0], width=upper / 60, color="0.3",
                   label=f"P(T = 0) = {p0:.3f}")
    x = np.linspace(1e-3, upper, 400)
    names = list(result.asymptotic)
    if any("chi2(0):chi2(1)" in n for n in names):
        ax.plot(x, 0.5 * chi2.pdf(x, 1), "C0--", label="0.5 chi2(0) + 0.5 chi2(1)")
    elif any("chi2(1):chi2(2)" in n for n in names):
        ax.plot(x, 0.5 * chi2.pdf(x, 1) + 0.5 * chi2.pdf(x, 2), "C0--",
                label="0.5 chi2(1) + 0.5 chi2(2)")
    ax.axvline(t, color="C3", label=f"observed T = {t:.3g}, p = {result.pvalue:.3g}")
    ax.set_xlim(-upper / 60, upper)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"{result.test} statistic")
    ax.set_ylabel("density (bar: probability)")
    ax.set_title(f"{result.term}")
    ax.legend(fontsize="small")
    return ax
