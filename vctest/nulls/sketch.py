"""Flat-memory summaries of a large null sample, filled chunk by chunk.

A run of 10^7 exact draws need not keep its sample: the p-value needs only
the count of draws at or above the observed statistic, the mass at zero a
count of zeros, and quantiles are read from a fixed histogram on a log scale
(2,000 bins per decade from 1e-8 to 1e6, so a quantile is exact to a relative
0.12%).  Counts are sums, so the order in which chunks arrive (e.g. from a
Dask cluster) does not change the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vctest._pvalue import count_exceed

BINS_PER_DECADE = 2000
LOG_LO, LOG_HI = -8, 6


def _edges() -> np.ndarray:
    return np.logspace(LOG_LO, LOG_HI, (LOG_HI - LOG_LO) * BINS_PER_DECADE + 1)


@dataclass
class NullSketch:
    """Counts and a log-histogram of a null sample (mutable accumulator).

    Examples
    --------
    >>> import numpy as np
    >>> s = NullSketch(observed=2.0)
    >>> rng = np.random.default_rng(1)
    >>> chunks = [np.maximum(rng.normal(size=10_000), 0.0) for _ in range(10)]
    >>> for chunk in chunks:
    ...     s.add(chunk)
    >>> exact = np.quantile(np.concatenate(chunks), 0.99)
    >>> s.n, round(s.n_zero / s.n, 2), bool(abs(s.quantile(0.99) / exact - 1) < 2e-3)
    (100000, 0.5, True)
    """

    observed: float
    n: int = 0
    n_zero: int = 0
    n_exceed: int = 0
    n_above_range: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(
        (LOG_HI - LOG_LO) * BINS_PER_DECADE + 2, dtype=np.int64))

    def add(self, chunk: np.ndarray) -> None:
        """Accumulate a chunk of draws (>= 0)."""
        chunk = np.asarray(chunk, dtype=float)
        self.n += chunk.size
        self.n_zero += int(np.count_nonzero(chunk == 0.0))
        self.n_exceed += count_exceed(self.observed, chunk)
        positive = chunk[chunk > 0.0]
        idx = np.searchsorted(_edges(), positive, side="right")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        self.n_above_range += int(np.count_nonzero(positive >= 10.0 ** LOG_HI))

    def quantile(self, level: float) -> float:
        """Quantile of the accumulated draws (0 inside the mass at zero)."""
        target = level * self.n
        if target <= self.n_zero:
            return 0.0
        cum = self.n_zero + np.cumsum(self.counts)
        i = int(np.searchsorted(cum, target))
        edges = _edges()
        if i == 0:
            return float(edges[0])
        if i >= edges.size:
            return float("inf")
        lo, hi = np.log10(edges[i - 1]), np.log10(edges[i])
        prev = cum[i - 1]
        frac = (target - prev) / max(cum[i] - prev, 1)
        return float(10.0 ** (lo + frac * (hi - lo)))

    def summary(self, levels: tuple[float, ...]) -> dict:
        """What a result keeps instead of the sample."""
        return {"n": self.n, "n_zero": self.n_zero, "n_exceed": self.n_exceed,
                "quantiles": {f"{lv:g}": self.quantile(lv) for lv in levels},
                "quantile_method": f"log-histogram, {BINS_PER_DECADE} bins per decade"}
