"""The projected BFGS's first step: at most half-way to a bound, coordinate by coordinate.

Its inverse Hessian is still the identity there, so the step's length means
nothing; landing on a variance's bound from it cost InstEval 14 evaluations
(33 against 19) before the curvature was learnt, and Dyestuff two.
"""

from __future__ import annotations

import numpy as np
import pytest

import vctest
from vctest.kernels import _jit, engine, tiers
from vctest.kernels.linalg import assign, assign_numpy
from vctest.kernels.objective import evaluate_profiled


def _evaluated_points(formula, data):
    points = []

    def record(xv, *args):
        points.append(xv.copy())
        return evaluate_profiled(xv, *args)

    runner = _jit.interpreted(engine.fit_model, compiled=(engine.cross_products, engine.scratch,
                                                          engine.profiled_gradient),
                              python={assign: assign_numpy, evaluate_profiled: record})
    with pytest.MonkeyPatch.context() as mp, tiers.forced("compile"):
        mp.setattr(engine, "fit_compiled", runner)
        fit = vctest.fit(formula, data)
    return points, fit


@pytest.mark.parametrize(("formula", "data", "evals"), [
    ("Yield ~ 1 + (1 | Batch)", "Dyestuff", 8),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", 12),
])
def test_the_first_step_stops_half_way_to_a_bound(formula, data, evals):
    points, fit = _evaluated_points(formula, data)
    start, first = points[0], points[1]
    assert np.all(first >= 0.5 * start - 1e-15), (start, first)
    assert fit.n_evals == evals == len(points)
