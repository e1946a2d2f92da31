"""Plots fit for a paper, checked from the matplotlib objects (not pixels)."""

from __future__ import annotations

import numpy as np
import pytest

import vctest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

SLEEP_FULL = "Reaction ~ Days + (Days | Subject)"
SLEEP_NULL = "Reaction ~ Days + (1 | Subject)"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def exact():
    return vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                          nsim=100_000, seed=1)


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _vertical_lines(ax):
    return [ln for ln in ax.get_lines()
            if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]]


def test_exact_plot_elements(exact, tmp_path):
    ax = exact.plot()
    ax.figure.savefig(tmp_path / "exact.png")
    labels = _legend(ax)
    p0 = exact.null_mass_at_zero
    assert f"P(T = 0) = {p0:.3f}" in labels
    assert f"observed T = {exact.statistic:.4g}, p = 0.0046" in labels
    assert "chi2(1) (naive)" in labels and "0.5 chi2(0) + 0.5 chi2(1)" in labels
    # the mass at zero is a bar left of 0 (not covering the first bin), fully in view
    zero_bar = [p for p in ax.patches if p.get_x() + p.get_width() <= 0]
    assert len(zero_bar) == 1 and zero_bar[0].get_height() == pytest.approx(p0, abs=0)
    assert ax.get_xlim()[0] <= zero_bar[0].get_x()
    # the histogram is the positive part's density: it integrates to P(0 < T <= upper)
    bins = [p for p in ax.patches if p not in zero_bar]
    assert len(bins) == 50 and bins[0].get_x() == pytest.approx(0.0, abs=1e-12)
    area = sum(p.get_height() * p.get_width() for p in bins)
    sample = exact.null_distribution
    upper = bins[-1].get_x() + bins[-1].get_width()
    assert area == pytest.approx(np.mean((sample > 0) & (sample <= upper)), rel=1e-9)
    # nothing is clipped at the top
    top = ax.get_ylim()[1]
    assert max(p.get_height() for p in ax.patches) < top
    # the observed statistic is a vertical line at T
    assert any(ln.get_xdata()[0] == pytest.approx(exact.statistic) for ln in _vertical_lines(ax))
    # the mixture's point mass at zero is a marker at (0, 0.5)
    assert any(ln.get_marker() == "o" and list(ln.get_xydata()[0]) == [0.0, 0.5]
               for ln in ax.get_lines())
    assert ax.get_xlabel() == "RLRT statistic T"


def test_monte_carlo_floor_reads_p_below(tmp_path):
    res = vctest.vc_test("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
                         "sleepstudy", term="(0 + Days | Subject)", nsim=100_000, seed=1)
    assert res.pvalue == pytest.approx(1 / 100_001)
    ax = res.plot()
    assert any(t.endswith("p < 1e-05 (axis broken)") for t in _legend(ax))
    assert not any("p = 1e-05" in t for t in _legend(ax))


def test_far_statistic_gets_a_broken_axis_and_compare_gets_references():
    res = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=300, seed=1)
    ax = res.plot()
    axes = ax.figure.axes
    assert len(axes) == 2
    side = next(a for a in axes if a is not ax)
    t = res.statistic
    assert ax.get_xlim()[1] < t            # the null keeps the main axis ...
    lo, hi = side.get_xlim()               # ... and the statistic has its own window
    assert lo < t < hi
    assert any(ln.get_xdata()[0] == pytest.approx(t) for ln in _vertical_lines(side))
    labels = _legend(ax)
    assert "chi2(2) (naive)" in labels
    assert "gamma (moment-matched)" in labels and "Bartlett-scaled chi2(2)" in labels
    assert any("p < 0.0033" in s for s in labels)
    assert "against" in ax.get_title()
    # the observed line's red is its own: no reference curve shares it
    red = matplotlib.colors.to_rgba("C3")
    curves = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert curves and all(matplotlib.colors.to_rgba(ln.get_color()) != red for ln in curves)


def test_plot_without_a_null_sample_says_so():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=20_000, seed=1, keep_null=False)
    assert res.null_distribution is None
    ax = res.plot()
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "no null sample was kept (keep_null=False)" in notes
    assert any(s.startswith("observed T") for s in _legend(ax))
    asym = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                          method="asymptotic")
    ax = asym.plot()
    assert "asymptotic reference" in " ".join(t.get_text() for t in ax.texts)
    assert "0.5 chi2(0) + 0.5 chi2(1)" in _legend(ax)


def test_power_curves_have_intervals():
    pw = vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                      effect_sizes=[0.0, 1.0, 2.0], nsim=10, methods=("exact", "asymptotic"),
                      nsim_exact=500, seed=1)
    ax = pw.plot()
    bars = ax.containers
    assert len(bars) == 2                  # one errorbar container per method
    for container in bars:
        _, _, (segments,) = container.lines
        assert len(segments.get_segments()) == 3
    assert any("alpha = 0.05" in s for s in _legend(ax))
    assert ax.get_ylim() == (0.0, 1.0)
