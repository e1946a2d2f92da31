"""Draw a fitted smooth with its pointwise band and the partial residuals (a leaf: plain data
in, matplotlib axes out; :meth:`vctest.model.smooth_fit.SmoothFit.plot_smooth` calls it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def draw_smooth(curve: pd.DataFrame, x: np.ndarray, partial: np.ndarray | None, *,
                label: str, level: float, ax: Any = None, response: str = "") -> Any:
    """Plot ``curve`` (columns x, fit, lower, upper), a rug of ``x`` and ``partial``.

    Returns the matplotlib axes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd
    >>> c = pd.DataFrame({"x": [0, 1], "fit": [0, 1], "lower": [-1, 0], "upper": [1, 2]})
    >>> draw_smooth(c, np.array([0.2, 0.8]), None, label="s(x)", level=0.95).get_ylabel()
    's(x)'
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'vctest[plot]'") from None
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    if partial is not None:
        ax.scatter(x, partial, s=8, color="0.55", alpha=0.7, label="partial residuals")
    ax.fill_between(curve["x"], curve["lower"], curve["upper"], color="C0", alpha=0.25,
                    label=f"{100 * level:g}% pointwise band")
    ax.plot(curve["x"], curve["fit"], color="C0", lw=2, label=label)
    lo, hi = ax.get_ylim()
    ax.plot(x, np.full(np.shape(x), lo), "|", color="k", ms=6, alpha=0.5)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(label[2:-1] if label.startswith("s(") else label)
    ax.set_ylabel(label)
    ax.set_title(f"{label}" + (f" in the model of {response}" if response else ""))
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax
