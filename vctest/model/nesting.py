"""Are two models nested?  And where do the null's parameters sit in the full model?

A null model is nested in a full model when, on the same rows and response,

* its fixed-effect columns lie in the column space of the full model's, and
* every random-effects column of the null belongs to a full-model term with the
  same grouping factor, with no two null terms asking for the same full
  covariance parameter.

Then each null theta parameter (an entry of a lower-triangular relative
covariance factor T) is an entry of the full model's T with the other entries
set to zero: setting the rows and columns of dropped columns to zero keeps a
lower-triangular factor lower triangular, and splitting a block into
independent blocks zeroes the entries between them.  :func:`nesting` returns
that map, used to restart a full-model fit from the null estimate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from vctest.formula.design import Design


@dataclass(frozen=True)
class Nesting:
    """How a null design sits inside a full design.

    Attributes
    ----------
    embed : ndarray of int64
        For each null theta, the index of the same parameter in the full
        theta (empty when the null has no random effects).
    same_fixed : bool
        Both models have the same fixed-effect column space (REML comparison
        allowed).
    df : int
        Number of parameters the null model lacks (fixed and covariance).
    """

    embed: np.ndarray
    same_fixed: bool
    df: int


def _theta_index(k: int, r: int, c: int) -> int:
    """Index of T[r, c] (r >= c) in a block's column-major lower triangle."""
    return c * k - c * (c - 1) // 2 + (r - c)


def _column_space_contains(big: np.ndarray, small: np.ndarray) -> bool:
    if small.shape[1] == 0:
        return True
    if big.shape[1] == 0:
        return False
    coef, *_ = np.linalg.lstsq(big, small, rcond=None)
    resid = small - big @ coef
    return bool(np.all(np.linalg.norm(resid, axis=0) <= 1e-8 * (1 + np.linalg.norm(small, axis=0))))


def nesting(full: Design, null: Design) -> Nesting:
    """Check that ``null`` is nested in ``full`` and map the null's parameters.

    Raises
    ------
    ValueError
        If the rows or responses differ, a fixed effect of the null is not in
        the full model, a random-effects term of the null has no counterpart
        in the full model, or the null has no fewer parameters.
    """
    if full.n != null.n or not np.array_equal(full.row_index, null.row_index):
        raise ValueError(
            f"the two models use different rows (full: {full.n}, null: {null.n}); "
            "fit both to the same observations (remove rows with missing values first)."
        )
    if not np.allclose(full.y, null.y, rtol=1e-12, atol=0.0):
        raise ValueError("the two models have different responses; nested models share one.")
    if not _column_space_contains(full.X, null.X):
        raise ValueError(
            f"not nested: the null's fixed effects ({', '.join(null.fixed_names)}) are not "
            f"all in the full model's ({', '.join(full.fixed_names)})."
        )
    same_fixed = full.p == null.p and _column_space_contains(null.X, full.X)

    offsets, pos = [], 0
    for blk in full.blocks:
        offsets.append(pos)
        pos += blk.k * (blk.k + 1) // 2
    d_full = pos
    used: set[int] = set()
    embed: list[int] = []
    for nb in null.blocks:
        match = None
        for j, fb in enumerate(full.blocks):
            if fb.name != nb.name or not set(nb.column_names) <= set(fb.column_names):
                continue
            if not np.array_equal(fb.codes, nb.codes):
                continue
            cols = [fb.column_names.index(c) for c in nb.column_names]
            if not np.allclose(fb.columns[:, cols], nb.columns):
                continue
            if any(c2 < c1 for c1, c2 in itertools.pairwise(cols)):
                continue  # a different column order would not keep T lower triangular
            idx = [offsets[j] + _theta_index(fb.k, cols[r], cols[c])
                   for c in range(nb.k) for r in range(c, nb.k)]
            if used.isdisjoint(idx):
                match = idx
                break
        if match is None:
            raise ValueError(
                f"not nested: the null model's term {nb.term.label} has no counterpart in "
                f"the full model ({', '.join(b.term.label for b in full.blocks)})."
            )
        used.update(match)
        embed.extend(match)
    df = (full.p + d_full) - (null.p + len(embed))
    if df <= 0:
        raise ValueError(
            f"not nested: the null model has {null.p + len(embed)} parameters and the full "
            f"model {full.p + d_full}; the full model must have more."
        )
    return Nesting(embed=np.array(embed, dtype=np.int64), same_fixed=same_fixed, df=df)
