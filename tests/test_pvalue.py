"""The Monte Carlo p-value's counting rules (vctest/_pvalue.py), with exact ties.

p = (1 + #{T* >= t - tol})/(1 + B) with tol = 1e-9 |t|, and a statistic below
1e-8 counts as 0.  Every expected count here is worked out by hand from the
draws, so a reversed tie rule (``>= t + tol``) or a lost zero rule changes it.
"""

import numpy as np
import pytest

from vctest._pvalue import (
    TIE_RTOL,
    ZERO_TOL,
    clean_statistic,
    count_exceed,
    monte_carlo_pvalue,
    pvalue_from_counts,
)
from vctest.nulls.bootstrap import run_replicates
from vctest.nulls.sketch import NullSketch


def test_the_documented_constants():
    assert ZERO_TOL == 1e-8 and TIE_RTOL == 1e-9


@pytest.mark.parametrize("t", [2.0, 0.3, 1e-7, 123456.789])
def test_exact_ties_count_as_exceedances(t):
    # two draws equal to t, one above, three below: #{T* >= t} = 3
    sample = np.array([0.0, t / 2, t * (1 - 1e-6), t, t, 2 * t])
    res = monte_carlo_pvalue(t, sample)
    assert res.n_exceed == 3
    assert res.pvalue == pytest.approx(4 / 7, rel=1e-15)


def test_every_draw_tied():
    res = monte_carlo_pvalue(4.25, np.full(99, 4.25))
    assert res.n_exceed == 99 and res.pvalue == 1.0


@pytest.mark.parametrize("t", [2.0, 1e-6, 5e4])
def test_near_ties_within_the_relative_tolerance(t):
    inside = t * (1 - 0.5 * TIE_RTOL)   # rounding noise below t: a tie
    outside = t * (1 - 4 * TIE_RTOL)    # a genuinely smaller draw
    above = t * (1 + 0.5 * TIE_RTOL)
    assert inside < t and outside < inside < t < above
    assert count_exceed(t, np.array([inside])) == 1
    assert count_exceed(t, np.array([outside])) == 0
    assert count_exceed(t, np.array([above])) == 1
    res = monte_carlo_pvalue(t, np.array([outside, inside, above, 0.0]))
    assert res.n_exceed == 2 and res.pvalue == pytest.approx(3 / 5, rel=1e-15)


def test_the_tolerance_is_relative_to_the_statistic():
    # at t = 1000 a draw 1e-7 below is within 1e-9 * 1000 = 1e-6: a tie;
    # at t = 1e-3 a draw 1e-11 below is beyond 1e-9 * 1e-3 = 1e-12: not a tie
    assert count_exceed(1000.0, np.array([1000.0 - 1e-7])) == 1
    assert count_exceed(1e-3, np.array([1e-3 - 1e-11])) == 0


@pytest.mark.parametrize("t", [0.0, 5e-9, 9.99e-9, -3e-12, 5.6843418860808e-14])
def test_a_statistic_below_1e_8_counts_as_zero(t):
    sample = np.array([0.0, 0.0, 2e-9, 0.4, 3.0])
    res = monte_carlo_pvalue(t, sample)
    assert res.n_exceed == 5 and res.pvalue == 1.0
    assert clean_statistic(t) == 0.0


def test_a_statistic_at_1e_8_is_positive():
    # 1e-8 itself is not below the threshold: draws of 0 and 5e-9 do not reach it
    assert clean_statistic(1e-8) == 1e-8
    sample = np.array([0.0, 5e-9, 1e-8, 2e-8])
    assert monte_carlo_pvalue(1e-8, sample).n_exceed == 2
    assert monte_carlo_pvalue(2e-8, sample).n_exceed == 1


def test_clean_statistic_on_arrays():
    values = np.array([-1e-10, 0.0, 3e-9, 1e-8, 0.5])
    np.testing.assert_array_equal(clean_statistic(values), [0.0, 0.0, 0.0, 1e-8, 0.5])
    assert values[0] == -1e-10  # the input is not modified


def test_pvalue_from_counts_formula():
    res = pvalue_from_counts(3, 19)
    assert res.pvalue == pytest.approx(0.2, rel=1e-15)
    assert res.se == pytest.approx(np.sqrt(0.2 * 0.8 / 19), rel=1e-15)
    assert res.ci[0] <= res.pvalue <= res.ci[1]


def test_the_sketch_counts_ties_as_the_sample_does():
    t = 2.5
    chunks = [np.array([0.0, t, 1.0]), np.array([t * (1 - 0.5 * TIE_RTOL), 4.0]),
              np.array([t * (1 - 4 * TIE_RTOL), 0.0])]
    sketch = NullSketch(observed=t)
    for chunk in chunks:
        sketch.add(chunk)
    assert sketch.n_exceed == 3 == monte_carlo_pvalue(t, np.concatenate(chunks)).n_exceed


def _stream_task(statistics: np.ndarray):
    """A bootstrap task whose replicate ``i`` has statistic ``statistics[i]``."""

    def task(start, stop):
        m = stop - start
        obj = np.column_stack([100.0 + statistics[start:stop], np.full(m, 100.0)])
        zeros = np.zeros((m, 1))
        return (obj, zeros, zeros, np.ones((m, 2), dtype=np.int64),
                np.zeros((m, 2), dtype=np.int64))

    return task


def test_sequential_stopping_counts_ties_as_exceedances():
    # 100 draws, all exactly tied with t = 3 (as a discrete statistic can be): p = 1 is
    # settled at the first look; counted as "not reaching t" they would read p < 0.05
    t = 3.0
    stats = np.full(400, t)
    raw = run_replicates(_stream_task(stats), nsim=400, dims=(1, 1), observed=t,
                         null_fixed=False, threads=1, progress=False, stop_alpha=0.05,
                         stop_error=1e-3, backend="local", client=None, n_workers=1)
    assert raw.stopped_early and raw.arrays[0].shape[0] == 100
    # the stop was for "not significant": the p-value of the prefix is 1
    sample = raw.arrays[0][:, 0] - raw.arrays[0][:, 1]
    assert monte_carlo_pvalue(t, sample).pvalue == 1.0
