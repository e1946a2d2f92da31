"""Timing helper shared by the benchmark scripts (run as ``python validation/bench/<x>.py``,
which puts this directory on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The shortest of ``repeats`` wall-clock timings of ``fn()``, and its last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result
