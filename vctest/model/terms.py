"""The theta -> Lambda map: parameter layout, names, bounds and VarCorr.

Each random-effects term j with k_j columns has a lower-triangular relative
covariance factor T_j (Cov(b_j) = sigma^2 T_j T_j' per level).  Its k_j(k_j+1)/2
parameters are the lower triangle in column-major order; diagonal entries have
lower bound 0, off-diagonal ones are unbounded.  Names follow lme4:
``"Subject.(Intercept)"`` for a diagonal entry and
``"Subject.Days.(Intercept)"`` for the (Days, (Intercept)) off-diagonal one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A variance parameter this close to its bound, in units of its column, makes a fit
#: singular (lme4's ``isSingular`` default for intercepts).
SINGULAR_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class ThetaLayout:
    """Where each term's parameters sit in theta.

    Attributes
    ----------
    k : ndarray of int64
        Columns per term.
    offsets : ndarray of int64
        ``offsets[j]:offsets[j+1]`` are term j's parameters.
    lower : ndarray of float
        Lower bounds (0 on diagonals, -inf elsewhere).
    names : tuple of str
        lme4-style parameter names.
    groups : tuple of str
        Grouping-factor name of each term.
    columns : tuple of tuple of str
        Column names of each term.
    """

    k: np.ndarray
    offsets: np.ndarray
    lower: np.ndarray
    names: tuple[str, ...]
    groups: tuple[str, ...]
    columns: tuple[tuple[str, ...], ...]

    @property
    def size(self) -> int:
        """Number of parameters."""
        return int(self.offsets[-1])

    @property
    def is_diagonal(self) -> np.ndarray:
        """Boolean mask of diagonal (variance) parameters."""
        return np.isfinite(self.lower)

    def singular(self, theta: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Whether a variance parameter is within :data:`SINGULAR_TOL` of its bound.

        Measured in units of each parameter's random-effect column (``theta *
        scale``); ``theta`` may hold one estimate per row (then one answer per
        row).
        """
        near = self.is_diagonal & ((np.asarray(theta) - self.lower) * scale < SINGULAR_TOL)
        return np.any(near, axis=-1)

    def initial(self) -> np.ndarray:
        """lme4's starting values: 1 on diagonals, 0 off the diagonal."""
        return np.where(self.is_diagonal, 1.0, 0.0)

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """The lower-triangular factors T_j as a list of k_j x k_j arrays."""
        out = []
        for j, kj in enumerate(self.k):
            t = np.zeros((kj, kj))
            pos = int(self.offsets[j])
            for c in range(kj):
                for r in range(c, kj):
                    t[r, c] = theta[pos]
                    pos += 1
            out.append(t)
        return out


def theta_layout(groups: Sequence[str], columns: Sequence[Sequence[str]]) -> ThetaLayout:
    """Build the layout for terms with the given group and column names.

    Examples
    --------
    >>> lay = theta_layout(["Subject"], [["(Intercept)", "Days"]])
    >>> lay.names
    ('Subject.(Intercept)', 'Subject.Days.(Intercept)', 'Subject.Days')
    >>> lay.lower.tolist()
    [0.0, -inf, 0.0]
    """
    ks, names, lower, offsets = [], [], [], [0]
    for grp, cols in zip(groups, columns, strict=True):
        kj = len(cols)
        ks.append(kj)
        for c in range(kj):
            for r in range(c, kj):
                if r == c:
                    names.append(f"{grp}.{cols[c]}")
                    lower.append(0.0)
                else:
                    names.append(f"{grp}.{cols[r]}.{cols[c]}")
                    lower.append(-np.inf)
        offsets.append(offsets[-1] + kj * (kj + 1) // 2)
    return ThetaLayout(
        k=np.asarray(ks, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        lower=np.asarray(lower, dtype=float),
        names=tuple(names),
        groups=tuple(groups),
        columns=tuple(tuple(c) for c in columns),
    )


def varcorr_rows(layout: ThetaLayout, theta: np.ndarray, sigma: float) -> list[dict]:
    """Variance components as lme4's ``as.data.frame(VarCorr(m))`` rows.

    For each term: one row per variance, then one per covariance (upper
    triangle, row-major), then a final ``Residual`` row.  ``sdcor`` holds the
    standard deviation or the correlation.  A repeated group name gets a
    ``.1``, ``.2`` suffix as in lme4.
    """
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for j, t in enumerate(layout.factors(theta)):
        grp = layout.groups[j]
        label = grp if grp not in seen else f"{grp}.{seen[grp]}"
        seen[grp] = seen.get(grp, 0) + 1
        cov = sigma**2 * (t @ t.T)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        cols = layout.columns[j]
        for a, name in enumerate(cols):
            rows.append({"grp": label, "var1": name, "var2": "", "vcov": float(cov[a, a]),
                         "sdcor": float(sd[a])})
        for a in range(len(cols)):
            for b in range(a + 1, len(cols)):
                denom = sd[a] * sd[b]
                corr = float(cov[a, b] / denom) if denom > 0 else float("nan")
                rows.append({"grp": label, "var1": cols[a], "var2": cols[b],
                             "vcov": float(cov[a, b]), "sdcor": corr})
    rows.append({"grp": "Residual", "var1": "", "var2": "", "vcov": float(sigma**2),
                 "sdcor": float(sigma)})
    return rows


def column_scales(layout: ThetaLayout, zcols: np.ndarray, zoff: np.ndarray) -> np.ndarray:
    """Per-parameter scale: the root-mean-square of the random-effect column each
    theta entry multiplies (its row of T), 1 for an all-zero column.

    Optimisers search ``theta * scale`` so that a covariate's units do not
    change their path; diagnostics and the singularity rule use the same units.
    """
    out = np.empty(layout.size)
    pos = 0
    for j, k in enumerate(layout.k):
        cols = zcols[:, zoff[j]:zoff[j] + k]
        rms = np.sqrt(np.mean(cols * cols, axis=0))
        rms[~(rms > 0)] = 1.0
        for c in range(k):
            for r in range(c, k):
                out[pos] = rms[r]
                pos += 1
    return out

