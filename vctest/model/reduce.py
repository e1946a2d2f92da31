"""Name a random-effects term and build the model without it.

The user names a term in lme4 syntax; :func:`locate_term` finds it in a
design: either a whole term of the model (``(0 + Days | Subject)`` in
``(1 | Subject) + (0 + Days | Subject)``) or some columns of a correlated
block (``(0 + Days | Subject)`` in ``(Days | Subject)``, which removes the slope
variance and its covariance).  :func:`drop_term` returns the null design on the
same rows, so the two fits always use the same observations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from vctest.formula.design import Design, RandomBlock
from vctest.formula.parse import RandomTerm, random_term_from_text


@dataclass(frozen=True)
class TermLocation:
    """Where a named term sits in a design.

    Attributes
    ----------
    block : int
        Index of the design block holding it.
    columns : tuple of int
        Columns of that block that the term names.
    whole_block : bool
        The term is the whole block (the block disappears from the null).
    label : str
        Canonical label of the named term.
    n_params_removed : int
        Covariance parameters the null model loses.
    """

    block: int
    columns: tuple[int, ...]
    whole_block: bool
    label: str
    n_params_removed: int


def _term_columns(term: RandomTerm) -> list[str]:
    cols = ["(Intercept)"] if term.intercept else []
    return cols + list(term.covariates)


def locate_term(design: Design, text: str) -> TermLocation:
    """Find the term named by ``text`` in ``design``.

    Raises
    ------
    ValueError
        If the text is not one random-effects term, or no block matches it
        (the message lists the model's terms).
    """
    if not isinstance(text, str):
        raise TypeError(f"`term` must be a string such as '(1 | g)'; got {type(text).__name__}.")
    terms = random_term_from_text(text)
    available = ", ".join(b.term.label for b in design.blocks)
    if len(terms) != 1:
        raise ValueError(
            f"`term` {text!r} expands to {len(terms)} terms "
            f"({', '.join(t.label for t in terms)}); name one term at a time, "
            f"or compare the two models with a bootstrap. Model terms: {available}."
        )
    term = terms[0]
    wanted = _term_columns(term)
    for j, block in enumerate(design.blocks):
        if block.term.group_factors != term.group_factors and block.name != term.group:
            continue
        names = list(block.column_names)
        if not all(w in names for w in wanted):
            continue
        cols = tuple(names.index(w) for w in wanted)
        k, r = block.k, len(cols)
        whole = r == k
        removed = k * (k + 1) // 2 - (k - r) * (k - r + 1) // 2
        return TermLocation(block=j, columns=cols, whole_block=whole, label=term.label,
                            n_params_removed=removed)
    raise ValueError(
        f"`term` {text!r} ({term.label}) is not a random-effects term of the model; "
        f"the model's terms are: {available}."
    )


def _subset_block(block: RandomBlock, keep: list[int]) -> RandomBlock:
    names = [block.column_names[i] for i in keep]
    intercept = "(Intercept)" in names
    covs = tuple(n for n in names if n != "(Intercept)")
    term = dataclasses.replace(block.term, intercept=intercept, covariates=covs)
    return dataclasses.replace(
        block, term=term, columns=np.ascontiguousarray(block.columns[:, keep]),
        column_names=tuple(names),
    )


def drop_term(design: Design, loc: TermLocation) -> Design:
    """The design without the located term (same rows, X and y)."""
    blocks = list(design.blocks)
    if loc.whole_block:
        del blocks[loc.block]
    else:
        keep = [i for i in range(blocks[loc.block].k) if i not in loc.columns]
        blocks[loc.block] = _subset_block(blocks[loc.block], keep)
    blocks.sort(key=lambda b: -b.n_levels)
    f = design.formula
    text = f"{f.response.text} ~ {' + '.join([f.fixed] + [b.term.label for b in blocks])}"
    formula = dataclasses.replace(f, random=tuple(b.term for b in blocks), text=text)
    return dataclasses.replace(design, blocks=tuple(blocks), formula=formula)
