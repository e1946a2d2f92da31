"""``confint()`` of a result read by :func:`vctest.load_result`, from the data it was run on.

A saved result keeps the fits' numbers and a hash of the data, not the data:
the exact interval evaluates the REML criterion at many variance ratios, so
it needs them.  ``result.confint(data=frame)`` runs the same exact test again
on ``frame`` (same formula, term and seed), checks that the data and the
statistic are those of the saved result, and inverts it: the interval equals
the one the original result gives, to the last digit.
"""

from __future__ import annotations

import math
from typing import Any

from vctest.api.testing import vc_test
from vctest.results import TestResult, set_confint_rebuilder

__all__ = ["rebuild_confint"]


def rebuild_confint(result: TestResult, data: Any) -> Any:
    """The ``confint`` callable of ``result`` (loaded from a file), rebuilt from ``data``.

    Parameters
    ----------
    result : TestResult
        An exact RLRT of a formula read by :func:`vctest.load_result`.
    data : DataFrame, path or data set name
        What the test was run on, as :func:`vctest.vc_test` takes it.

    Raises
    ------
    ValueError
        If ``data`` is not the data the result was computed on (another hash,
        or another statistic: e.g. the test used ``weights``).
    """
    settings = result.settings
    seed = result.seed if result.seed is not None else result.seed_entropy
    again = vc_test(settings["formula"], data, term=settings.get("term", result.term),
                    method="exact", reml=True, nsim=int(settings.get("nsim", 1000)), seed=seed,
                    progress=False)
    saved_hash = settings.get("data_hash")
    if saved_hash is not None and again.settings.get("data_hash") != saved_hash:
        raise ValueError(
            "`data` is not the data this result was computed on: its hash differs from "
            "settings['data_hash']; pass the same data frame (same rows, columns and values).")
    if not math.isclose(again.statistic, result.statistic, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(
            f"the test on `data` gives RLRT {again.statistic:.6g}, not the saved "
            f"{result.statistic:.6g}: the result was computed with other arguments (weights, "
            "offset, ...); run vctest.vc_test again with them and call confint() on that "
            "result.")
    return again._confint


set_confint_rebuilder(rebuild_confint)
