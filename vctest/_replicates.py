"""The per-replicate record of a parametric bootstrap, as plain arrays.

A leaf module (NumPy only): the bootstrap drivers fill a
:class:`ReplicateRecord`, and a saved result loads one back without importing
the engine or Numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Failure codes of a replicate (index = code).
FAILURE_KINDS = (
    "ok",
    "null refit not converged",
    "full refit not converged",
    "objective not finite",
    "full fit worse than null fit",
)

#: Status of a refit the optimiser flagged but the diagnostics found converged.
RECHECKED = 10


@dataclass(frozen=True, eq=False)
class ReplicateRecord:
    """Per-replicate outcome of a bootstrap run (arrays of length ``n_run``).

    Attributes
    ----------
    statistic : ndarray
        2 (l1 - l0) of each replicate; NaN where the replicate failed.
    objective : ndarray, shape (n, 2)
        Objective of the null and full refits.
    theta_null, theta_full : ndarray
        Estimates of the refits.
    n_evals, status : ndarray, shape (n, 2)
        Objective evaluations and optimiser status codes
        (the optimiser's status text; :data:`RECHECKED` for a
        refit the optimiser flagged but the diagnostics found converged).
    failure : ndarray of int8
        Code into :data:`FAILURE_KINDS` (0 = ok).
    full_singular, null_singular : ndarray of bool
        The refit has a variance parameter at its bound.
    """

    statistic: np.ndarray
    objective: np.ndarray
    theta_null: np.ndarray
    theta_full: np.ndarray
    n_evals: np.ndarray
    status: np.ndarray
    failure: np.ndarray
    full_singular: np.ndarray
    null_singular: np.ndarray

    @property
    def n_failed(self) -> int:
        """Replicates that failed."""
        return int(np.count_nonzero(self.failure))

    def summary(self, observed: float) -> dict[str, float | int]:
        """How many refits hit the boundary or needed a second look, and whether
        leaving out the second-look replicates moves the p-value."""
        ok = self.failure == 0
        rechecked = np.any(self.status == RECHECKED, axis=1) & ok
        kept = ok & ~rechecked
        tie = 1e-9 * max(1.0, abs(observed))
        k = int(np.count_nonzero(self.statistic[kept] >= observed - tie))
        return {
            "full_refits_at_boundary": int(np.count_nonzero(self.full_singular & ok)),
            "null_refits_at_boundary": int(np.count_nonzero(self.null_singular & ok)),
            "refits_rechecked": int(np.count_nonzero(rechecked)),
            "pvalue_without_rechecked": (1 + k) / (1 + int(kept.sum())),
        }

    def failure_counts(self) -> dict[str, int]:
        """Failed replicates by kind."""
        counts = np.bincount(self.failure, minlength=len(FAILURE_KINDS))
        return {kind: int(c) for kind, c in zip(FAILURE_KINDS[1:], counts[1:], strict=True)
                if c}
