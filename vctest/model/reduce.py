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

from vctest.formula.design import Design, RandomBlock, lhs_column_names
from vctest.formula.evaluate import formula_terms
from vctest.formula.parse import RandomTerm, random_term_from_text
from vctest.formula.rsemantics import lme4_term_order


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


def _same_group(block: RandomBlock, term: RandomTerm) -> bool:
    """The block's grouping factor is the term's (``a:b`` and ``b:a`` are one grouping)."""
    return (block.name == term.group
            or sorted(block.term.group_factors) == sorted(term.group_factors))


def _wanted_terms(term: RandomTerm) -> set[str]:
    """The left-hand-side terms of ``term``, written canonically (``"1"``: intercept)."""
    wanted = {"1"} if term.intercept else set()
    if term.covariates:
        wanted.update(formula_terms(" + ".join(("0", *term.covariates))))
    return wanted


def _columns_by_meaning(block: RandomBlock, term: RandomTerm) -> tuple[int, ...] | None:
    """Columns of ``block`` whose terms are the terms ``term`` names, if it names only its own.

    Matching is by meaning: ``(Sex + 1|Subject)`` names the columns
    ``(Intercept)`` and ``SexFemale`` of ``(1 + Sex | Subject)``.
    """
    if not block.column_terms:
        return None
    wanted = _wanted_terms(term)
    if not wanted <= set(block.column_terms):
        return None
    return tuple(i for i, t in enumerate(block.column_terms) if t in wanted)


def _columns_by_name(block: RandomBlock, term: RandomTerm) -> tuple[int, ...] | None:
    """Columns named by the term's covariates as column names (``(0 + SexFemale | g)``)."""
    wanted = (["(Intercept)"] if term.intercept else []) + list(term.covariates)
    names = list(block.column_names)
    if not all(w in names for w in wanted):
        return None
    return tuple(names.index(w) for w in wanted)


def _null_term(block: RandomBlock, keep: list[int]) -> RandomTerm:
    """The block's term with only the columns ``keep``: written covariates whose terms all
    stay, then any other term that stays (as :func:`formula_terms` writes it)."""
    names = [block.column_names[i] for i in keep]
    if not block.column_terms:
        covs = tuple(n for n in names if n != "(Intercept)")
        return dataclasses.replace(block.term, intercept="(Intercept)" in names, covariates=covs)
    kept = [block.column_terms[i] for i in keep]
    covs = [c for c in block.term.covariates if set(formula_terms(f"0 + {c}")) <= set(kept)]
    covered = {t for c in covs for t in formula_terms(f"0 + {c}")}
    covs += [t for t in dict.fromkeys(kept) if t != "1" and t not in covered]
    return dataclasses.replace(block.term, intercept="1" in kept, covariates=tuple(covs))


def _pieces(name: str) -> tuple[str, ...]:
    """A column name's factors in sorted order (``z:Days`` and ``Days:z`` are one column)."""
    return tuple(sorted(name.split(":")))


def _check_reduction(design: Design, block: RandomBlock, term: RandomTerm,
                     cols: tuple[int, ...]) -> None:
    """Refuse a partial removal whose null term R would code with other columns."""
    if len(cols) == block.k or design.frame is None or not block.column_terms:
        return
    keep = [i for i in range(block.k) if i not in cols]
    null = _null_term(block, keep)
    kept_names = tuple(block.column_names[i] for i in keep)
    coded = (lhs_column_names(null.lhs, design.frame) if null.covariates
             else ("(Intercept)",))
    if [_pieces(n) for n in coded] == [_pieces(n) for n in kept_names]:
        return
    label = block.term.label
    if len(coded) == block.k:
        raise ValueError(
            f"`term` {term.label} cannot be tested inside {label}: without it R codes the "
            f"rest, {null.label}, with the columns {', '.join(coded)}, as many as {label} "
            "has, so the null model has no fewer parameters and there is nothing to test. "
            f"Test the whole term {label} (method='bootstrap'), or compare two formulas "
            "with vctest.compare()."
        )
    raise ValueError(
        f"`term` {term.label} cannot be removed from {label} on its own: R codes what "
        f"stays, {null.label}, with the columns {', '.join(coded)}, not with the columns "
        f"{', '.join(kept_names)} kept from {label}, so the null model would be another "
        "model. Compare the two formulas you mean with vctest.compare()."
    )


def locate_term(design: Design, text: str) -> TermLocation:
    """Find the term named by ``text`` in ``design``.

    The term is matched by meaning, not spelling: spacing, the order of the
    terms inside the bar and a factor's name (``Sex`` for its column
    ``SexFemale``) do not matter.  It may also name columns of a block by
    their names (``(0 + SexFemale | Subject)``).

    Raises
    ------
    ValueError
        If the text is not one random-effects term, no block matches it
        (the message lists the model's terms and their columns), or removing
        it would leave a model that lme4 codes differently.
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
    for j, block in enumerate(design.blocks):
        if not _same_group(block, term):
            continue
        cols = _columns_by_meaning(block, term) or _columns_by_name(block, term)
        if not cols:
            continue
        _check_reduction(design, block, term, cols)
        k, r = block.k, len(cols)
        removed = k * (k + 1) // 2 - (k - r) * (k - r + 1) // 2
        return TermLocation(block=j, columns=cols, whole_block=r == k, label=term.label,
                            n_params_removed=removed)
    same = [b for b in design.blocks if _same_group(b, term)]
    named = f"{text!r}" if text.strip() == term.label else f"{text!r} ({term.label})"
    if same:
        listing = "; ".join(f"{b.term.label} with columns {', '.join(b.column_names)}"
                            for b in same)
        raise ValueError(
            f"`term` {named} names effects that the model's terms for "
            f"{term.group} do not have: {listing}. Name one of those terms, or part of one "
            "(e.g. its slope alone, as (0 + x | g))."
        )
    raise ValueError(
        f"`term` {named} is not a random-effects term of the model: no "
        f"term has the grouping factor {term.group}; the model's terms are: {available}."
    )


def _subset_block(block: RandomBlock, keep: list[int]) -> RandomBlock:
    """The block with only the columns ``keep``; its term keeps the covariates left."""
    return dataclasses.replace(
        block, term=_null_term(block, keep), columns=np.ascontiguousarray(block.columns[:, keep]),
        column_names=tuple(block.column_names[i] for i in keep),
        column_terms=tuple(block.column_terms[i] for i in keep) if block.column_terms else (),
    )


def drop_term(design: Design, loc: TermLocation) -> Design:
    """The design without the located term (same rows, X and y).

    The null's terms keep the written order of the full formula (its text is
    the formula a user would write for it), and its blocks are in the order
    lme4 gives that formula.
    """
    position = {id(t): i for i, t in enumerate(design.formula.random)}
    kept: list[tuple[int, RandomBlock]] = []
    for j, block in enumerate(design.blocks):
        pos = position.get(id(block.term), j)
        if j != loc.block:
            kept.append((pos, block))
        elif not loc.whole_block:
            keep = [i for i in range(block.k) if i not in loc.columns]
            kept.append((pos, _subset_block(block, keep)))
    written = [b for _, b in sorted(kept, key=lambda pb: pb[0])]
    blocks = [written[i] for i in lme4_term_order([b.n_levels for b in written])]
    f = design.formula
    text = f"{f.response.text} ~ {' + '.join([f.fixed] + [b.term.label for b in written])}"
    formula = dataclasses.replace(f, random=tuple(b.term for b in written), text=text)
    return dataclasses.replace(design, blocks=tuple(blocks), formula=formula)
