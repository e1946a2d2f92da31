"""Evaluate R formula text with formulaic so that it means what it means in R.

:func:`_to_formulaic` rewrites R's formula text for formulaic (``^`` inside
calls, ordered factors with polynomial contrasts, ``%in%`` as R's
interaction, data columns with names formulaic reserves); :func:`evaluate`
builds the columns (with R's ``scale()``, see :mod:`.rsemantics`) and names
them as R does; :func:`formula_terms` writes terms canonically, so that two
texts meaning the same terms compare equal; :func:`required_columns` lists the data
columns a text uses.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vctest._text import plain as plain_text
from vctest.formula.parse import _tokenize
from vctest.formula.rsemantics import R_CONTEXT

__all__ = ["evaluate", "formula_terms", "model_matrix", "python_expr", "required_columns"]

# -- formula text for formulaic --------------------------------------------------------


#: Data-column names formulaic reserves (its intercept column is "Intercept"); such a
#: column is renamed for formulaic and its R name restored in the column names.
_RESERVED = {"Intercept": "_vctest_col_Intercept"}
_ALIASES = {alias: column for column, alias in _RESERVED.items()}


def _in_operand_is_sum(tokens: list, i: int) -> bool:
    """The operand right of ``%in%`` at ``tokens[i]`` is a parenthesised sum ``(a + b)``."""
    if i + 1 >= len(tokens) or tokens[i + 1].text != "(":
        return False
    depth = tokens[i + 1].depth
    for tok in tokens[i + 2:]:
        if tok.kind == "close" and tok.depth == depth:
            return False
        if tok.kind == "op" and tok.text in ("+", "-") and tok.depth == depth + 1:
            return True
    return False


def _to_formulaic(text: str, ordered: frozenset[str]) -> tuple[str, dict[str, str]]:
    """Rewrite R formula text for formulaic.

    Inside function calls (Python code for formulaic) R's power ``^`` becomes
    ``**``; at formula level a bare ordered factor ``o`` becomes
    ``C(o, contr.poly)`` (R's default contrasts for ordered factors) and R's
    ``x %in% f`` becomes ``x:f`` (R's meaning: the interaction; formulaic's
    ``%in%`` would add the main effects of ``f``).  A column named as
    formulaic's intercept (``Intercept``) is renamed (see :data:`_RESERVED`).
    Returns the text and a map from formulaic factor names back to columns.
    """
    tokens = _tokenize(text, f"term {text!r}")
    out: list[str] = []
    renames: dict[str, str] = {}
    calls: list[bool] = []
    pos = 0
    for i, tok in enumerate(tokens):
        out.append(text[pos : tok.start])
        pos = tok.end
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        piece = tok.text
        if tok.kind == "open":  # a call's (...), [...] and {...} hold Python code
            calls.append(tok.text != "(" or (
                prev is not None and (prev.kind == "name" or prev.text in ")]")))
        elif tok.kind == "close":
            calls.pop()
        elif tok.text == "^" and any(calls):
            piece = "**"
        elif tok.kind == "name" and tok.value == "as.factor" and nxt is not None \
                and nxt.text == "(":
            piece = "as_factor"  # R's as.factor (a Python name has no dot)
        elif tok.kind == "name" and tok.value == "offset" and nxt is not None \
                and nxt.text == "(" and not any(calls):
            raise ValueError(
                f"offset() inside the formula ({text!r}) is not supported yet; give the "
                "offset with the `offset=` argument (a column or one value per row) for a "
                "GLMM, or, for a linear mixed model, subtract it from the response "
                "(e.g. I(y - log(n)) ~ ...), which is the same model.")
        elif tok.text == "%in%" and not any(calls):
            if _in_operand_is_sum(tokens, i):
                raise ValueError(
                    f"`%in%` with a parenthesised sum on its right in {text!r} is not "
                    "supported; write the interactions it means explicitly, e.g. "
                    "`x:a:b` for `x %in% (a + b)`."
                )
            piece = ":"
        elif tok.kind == "name" and tok.value in _RESERVED and (nxt is None or nxt.text != "("):
            piece = _RESERVED[tok.value]
            if tok.value in ordered and not any(calls):
                piece = f"C({piece}, contr.poly)"
                renames[piece] = tok.value
        elif (tok.kind == "name" and tok.value in ordered and not any(calls)
              and (nxt is None or nxt.text != "(")):
            piece = f"C({tok.text}, contr.poly)"
            renames[piece] = tok.value
        out.append(piece)
    out.append(text[pos:])
    return "".join(out), renames


def _split_colon(name: str) -> list[str]:
    """Split a formulaic column name at ``:`` outside brackets and parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


def _level_bracket(piece: str) -> int:
    """Index of the ``[`` matching a trailing ``]`` (formulaic's level suffix), or -1."""
    if not piece.endswith("]"):
        return -1
    depth = 0
    for i in range(len(piece) - 1, -1, -1):
        depth += {"]": 1, "[": -1}.get(piece[i], 0)
        if depth == 0:
            return i
    return -1


_KEYWORD_EQUALS = re.compile(r"(?<=[\w)\]])=(?=[^=])")


def _r_code(code: str) -> str:
    """formulaic's spelling of Python code -> R's deparse (``x ** 2`` -> ``x^2``,
    ``scale=FALSE`` -> ``scale = FALSE``)."""
    code = code.replace(" ** ", "^").replace("as_factor(", "as.factor(")
    return _KEYWORD_EQUALS.sub(" = ", code)


def _r_name(name: str, renames: dict[str, str]) -> str:
    """formulaic column name -> R's (``Sex[T.Female]`` -> ``SexFemale``)."""
    if name == "Intercept":
        return "(Intercept)"
    pieces = []
    for piece in _split_colon(name):
        cut = _level_bracket(piece)
        if cut > 0:
            base, level = piece[:cut], piece[cut + 1 : -1]
            level = level[2:] if level.startswith("T.") else level
            if base.startswith("poly(") and "raw" in base and level.isdigit():
                level = str(int(level) + 1)  # formulaic counts raw powers from 0, R from 1
            piece = _r_code(renames.get(base, base)) + level
        else:
            piece = _r_code(piece)
        pieces.append(piece)
    out = ":".join(pieces)
    for column, alias in _RESERVED.items():
        out = out.replace(alias, column)
    return out


@functools.lru_cache(maxsize=256)
def formula_terms(rhs: str) -> tuple[str, ...]:
    """The terms of an R right-hand side, written canonically (formulaic's spelling).

    Two texts that mean the same terms give the same strings, whatever their
    spacing and order: ``"log(x+1)"`` and ``"log(x + 1)"``, ``"z:x"`` and
    ``"x:z"``, ``"a*b"`` and ``"a + b + a:b"``.  The intercept is ``"1"``.

    Examples
    --------
    >>> formula_terms("0 + b:a + log(x+1)")
    ('log(x + 1)', 'a:b')
    """
    from formulaic import Formula

    text, _ = _to_formulaic(rhs, frozenset())
    try:
        terms = [":".join(sorted(str(f) for f in t.factors)) for t in Formula(text)]
    except Exception as exc:
        raise ValueError(f"cannot parse the terms {rhs!r}: {plain_text(exc)}") from exc
    for column, alias in _RESERVED.items():
        terms = [t.replace(alias, column) for t in terms]
    return tuple(terms)


def _plain_name(term: str, frame: Mapping[str, Any], ordered: frozenset[str]) -> bool:
    """``term`` is a bare data column that formulaic reads as it is (no call, no
    reserved or ordered name, nothing a name could mean besides the column)."""
    return (term.isidentifier() and not keyword.iskeyword(term) and term in frame
            and term not in R_CONTEXT and term not in _RESERVED and term not in ordered
            and not hasattr(builtins, term))


def _plain_columns(rhs: str, frame: Mapping[str, Any], ordered: frozenset[str],
                   rows: np.ndarray | None
                   ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]] | None:
    """formulaic's model matrix of a right-hand side of plain terms, built with NumPy.

    Plain terms: the intercept, numeric columns as they are and, with the
    intercept, unordered factors with treatment contrasts (a 0/1 column per
    level but the first).  Returns None for anything else (calls,
    interactions, ordered factors, a factor without the intercept...), which
    formulaic evaluates.  Same values and names as formulaic's (tested).
    """
    try:
        terms = formula_terms(rhs)
    except ValueError:
        return None
    intercept = "1" in terms
    pieces: list[tuple[str, np.ndarray | None, str]] = []  # (formulaic's name, values, term)
    for term in terms:
        if term == "1":
            pieces.append(("Intercept", None, term))
            continue
        if not _plain_name(term, frame, ordered):
            return None
        values = frame[term]
        if isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1:
            pieces.append((term, values if rows is None else values[rows], term))
        elif isinstance(values, pd.Categorical) and intercept and not values.ordered \
                and all(isinstance(c, str) for c in values.categories):
            codes = values.codes if rows is None else values.codes[rows]
            for j, level in enumerate(values.categories[1:], start=1):
                pieces.append((f"{term}[T.{level}]", (codes == j).astype(np.float64), term))
        else:
            return None
    n = len(rows) if rows is not None else (
        len(next(iter(frame.values()))) if frame else 0)
    out = np.empty((n, len(pieces)))
    for j, (_, values, _) in enumerate(pieces):
        out[:, j] = 1.0 if values is None else values
    names = tuple(_r_name(name, {}) for name, _, _ in pieces)
    return out, names, tuple(term for _, _, term in pieces)


def evaluate(rhs: str, frame: Mapping[str, Any] | pd.DataFrame, ordered: frozenset[str],
             where: str, rows: np.ndarray | None = None
             ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Evaluate a right-hand side with formulaic; R-style names; finite check.

    ``frame`` maps column names to values (float64 arrays and pandas
    Categoricals, as :func:`vctest.formula.design.build_design` prepares them)
    and may hold more rows than the model uses (R's model frame evaluates
    ``scale(x)`` or ``poly(x, 2)`` on all rows of the data, then drops the
    incomplete ones); ``rows`` selects the rows used (increasing positions;
    default all).  Plain terms (the intercept, numeric columns and factors
    with treatment contrasts) are built directly with NumPy, the same numbers
    as formulaic's without its parsing and materialising.  Returns the values,
    the column names and the term (:func:`formula_terms`) each column belongs to.
    """
    columns = dict(frame.items()) if isinstance(frame, pd.DataFrame) else frame
    plain = _plain_columns(rhs, columns, ordered, rows)
    values, names, column_terms = plain if plain is not None else _formulaic_columns(
        rhs, columns, ordered, where, rows)
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad)]
        raise ValueError(f"{where} {rhs!r} gives non-finite values in column(s) {cols}; "
                         "transform or filter the data so that every value is finite.")
    return values, names, column_terms


def _formulaic_columns(rhs: str, frame: Mapping[str, Any], ordered: frozenset[str],
                       where: str, rows: np.ndarray | None
                       ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """:func:`evaluate`'s values, names and terms, by formulaic."""
    import formulaic
    from formulaic.errors import DataMismatchWarning

    text, renames = _to_formulaic(rhs, ordered)
    data = pd.DataFrame({_RESERVED.get(c, c): v for c, v in frame.items()})
    try:
        # Non-finite results are reported below with the column's name; missing
        # factor values sit on rows that are dropped afterwards.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", DataMismatchWarning)
            mm = formulaic.model_matrix(text, data, na_action="ignore", context=R_CONTEXT)
    except Exception as exc:  # formulaic raises many types; re-raise as ours
        raise ValueError(f"cannot evaluate {where} {rhs!r}: {plain_text(exc)}; check the term "
                         "and the column types.") from exc
    names = tuple(_r_name(str(c), renames) for c in mm.columns)
    spec_terms = list(mm.model_spec.term_indices.items())
    plain = formula_terms(rhs)
    if len(plain) != len(spec_terms):  # pragma: no cover - the same text, parsed twice
        plain = tuple(str(t) for t, _ in spec_terms)
    column_terms = [""] * len(names)
    for label, (_, indices) in zip(plain, spec_terms, strict=True):
        for i in indices:
            column_terms[i] = label
    values = np.empty(mm.shape)  # C order, filled once (to_numpy() gives Fortran order)
    for j in range(mm.shape[1]):
        values[:, j] = mm.iloc[:, j].to_numpy(dtype=np.float64)
    if rows is not None and rows.size != values.shape[0]:  # rows: increasing, distinct
        values = values[rows]
    return values, names, tuple(column_terms)


def model_matrix(rhs: str, frame: Mapping[str, Any] | pd.DataFrame, ordered: frozenset[str],
                 where: str, rows: np.ndarray | None = None
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    """:func:`evaluate` without the terms: values and R-style column names."""
    values, names, _ = evaluate(rhs, frame, ordered, where, rows)
    return values, names


@functools.lru_cache(maxsize=256)
def _formula_variables(rhs: str) -> frozenset[str]:
    """The variables formulaic finds in an R right-hand side (cached: a function of the text)."""
    from formulaic import Formula

    text, _ = _to_formulaic(rhs, frozenset())
    return frozenset(_ALIASES.get(str(v), str(v)) for v in Formula(text).required_variables)


def required_columns(rhs: str, where: str, columns: pd.Index | None = None) -> list[str]:
    """Names of the data columns an R right-hand side refers to.

    formulaic's ``required_variables`` leaves out the arguments of stateful
    transforms (``scale(x)``, ``poly(x, 2)``); names written in the text that
    are columns of the data (``columns``) are added.
    """
    try:
        variables = set(_formula_variables(rhs))
    except Exception as exc:
        raise ValueError(f"cannot parse {where} {rhs!r}: {plain_text(exc)}") from exc
    # R's functions vctest defines (factor, sqrt, ...) are not columns unless the data
    # has a column of that name
    variables -= {v for v in variables & R_CONTEXT.keys() if columns is None or v not in columns}
    if columns is not None:
        variables |= {name for name in _written_names(rhs) if name in columns}
    return sorted(variables)


@functools.lru_cache(maxsize=256)
def _written_names(rhs: str) -> tuple[str, ...]:
    """The names written in ``rhs`` that are not called or keywords (a function of the text)."""
    tokens = _tokenize(rhs, f"term {rhs!r}")
    return tuple(t.value for t, nxt in zip(tokens, [*tokens[1:], None], strict=True)
                 if t.kind == "name" and (nxt is None or nxt.text not in ("(", "=")))


def python_expr(part: str) -> str:
    """Wrap an R expression so formulaic evaluates it as one numeric column."""
    return f"0 + I({part})"
