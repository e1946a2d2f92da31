"""Read a statsmodels ``MixedLM`` into arrays and write it as lme4 terms.

Helpers of :mod:`vctest.api.statsmodels`.  statsmodels keeps neither the
``re_formula`` nor the ``vc_formula`` text on the model, so the random part is
rebuilt from what it does keep -- the matrices ``exog_re`` and
``exog_vc.mats`` and their column names -- and every piece is checked against
those matrices once the vctest design is built (:func:`check_pieces`).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vctest.formula.design import Design, RandomBlock, build_design
from vctest.formula.parse import parse_formula

#: Absolute tolerance (relative to the largest entry) for equal model matrices.
MATRIX_RTOL = 1e-9

_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FACTOR_COL = re.compile(r"^(?:C\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))\[(?:T\.)?(.*)\]$")
_FACTOR_SLOPE_COL = re.compile(
    r"^(?:C\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))\[(?:T\.)?(.*)\]:([A-Za-z_]\w*)$")


@dataclass(frozen=True, eq=False)
class VcPart:
    """One statsmodels variance component, row by row.

    ``level[i]`` numbers the (group, column) pair of the one non-zero entry of
    row ``i`` of the component's matrix (-1 if the row has none) and
    ``value[i]`` is that entry; ``labels[level]`` reads ``"group:column"``.
    """

    name: str
    level: np.ndarray
    value: np.ndarray
    labels: tuple[str, ...]
    colnames: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class SmModel:
    """What vctest needs from a statsmodels ``MixedLM`` (and its fit)."""

    model: object
    result: object | None
    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    y_name: str
    groups: np.ndarray
    gcode: np.ndarray
    group_name: str
    Z: np.ndarray | None
    z_names: tuple[str, ...]
    vcs: tuple[VcPart, ...]
    param_names: tuple[str, ...]
    independent: bool
    reml: bool
    frame: pd.DataFrame | None
    formula: str | None


@dataclass
class Piece:
    """One random-effects term to write: its text and where its parameters come from.

    ``kind`` is ``"re"`` (columns ``cols`` of the ``exog_re`` covariance after
    the column map) or ``"vc"`` (component ``cols[0]``).  ``natural`` pieces use
    the user's own columns and are replaced by synthesized ones if the check fails.
    """

    text: str
    kind: str
    cols: tuple[int, ...]
    natural: bool = False
    column_names: tuple[str, ...] = field(default_factory=tuple)


def as_dense(mat: object) -> np.ndarray:
    """A statsmodels per-group matrix (dense or scipy sparse) as a 2-d float array."""
    from scipy import sparse

    arr = mat.toarray() if sparse.issparse(mat) else np.asarray(mat, dtype=float)
    return arr[:, None] if arr.ndim == 1 else arr


def safe_name(name: object, taken: set[str]) -> str:
    """A column name vctest's parser and formulaic read as a plain name, not in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "v"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "v_" + base
    if keyword.iskeyword(base) or base in {"C", "I", "Q"}:
        base += "_"
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def _vc_part(model, k: int, gcode_rows: list[np.ndarray]) -> VcPart:
    name = str(model.exog_vc.names[k])
    n = int(model.nobs)
    level = np.full(n, -1, dtype=np.int64)
    value = np.zeros(n)
    labels: list[str] = []
    colnames: list[str] = []
    for gi, g in enumerate(model.group_labels):
        rows = gcode_rows[gi]
        mat = as_dense(model.exog_vc.mats[k][gi])
        if mat.shape[0] != rows.size:
            raise ValueError(f"statsmodels' variance component {name!r} has {mat.shape[0]} rows "
                             f"for group {g!r}, which has {rows.size} observations.")
        try:
            names = [str(c) for c in model.exog_vc.colnames[k][gi]]
        except (AttributeError, IndexError, TypeError):
            names = []
        if len(names) != mat.shape[1]:
            names = [str(j) for j in range(mat.shape[1])]
        nonzero = mat != 0
        counts = nonzero.sum(axis=1)
        if (counts > 1).any():
            raise ValueError(
                f"statsmodels' variance component {name!r} has rows with several non-zero "
                "entries in one group; its coefficients share one variance, which no lme4 "
                "formula can express (lme4 gives every term its own variance). Split it into "
                "one component per column."
            )
        has = counts == 1
        col = nonzero.argmax(axis=1)
        level[rows[has]] = len(labels) + col[has]
        value[rows[has]] = mat[has, col[has]]
        labels.extend(f"{g}:{c}" for c in names)
        colnames.extend(names)
    if not (level >= 0).any():
        raise ValueError(f"statsmodels' variance component {name!r} is zero on every row; "
                         "drop it from `vc_formula` / `exog_vc`.")
    return VcPart(name=name, level=level, value=value, labels=tuple(labels),
                  colnames=tuple(colnames))


def _independent(result) -> bool:
    """True for ``fit(free=...)`` with a diagonal pattern (lme4's ``||``)."""
    free = getattr(result, "freepat", None) if result is not None else None
    if free is None:
        return False
    fe = np.asarray(free.fe_params)
    cov = np.asarray(free.cov_re)
    vc = np.asarray(free.vcomp)
    if np.all(fe == 1) and np.all(vc == 1) and np.array_equal(cov, np.diag(np.diag(cov))) \
            and np.all(np.diag(cov) == 1):
        return True
    raise ValueError(
        "the result was fitted with a `free` pattern that fixes parameters other than the "
        "covariances of the random coefficients; lme4 formulas can only drop all of them "
        "(`(1 + x || g)`). Refit without `free`, or with a diagonal `cov_re` pattern."
    )


def extract(model, result) -> SmModel:
    """Arrays, names and settings of a statsmodels ``MixedLM`` (and its fit)."""
    if getattr(result, "cov_pen", None) is not None or getattr(model, "fe_pen", None) is not None:
        raise ValueError("the statsmodels fit is penalised (`cov_pen`/`fe_pen`); a penalised "
                         "likelihood has no lme4 formula. Refit without the penalty.")
    n = int(model.nobs)
    groups = np.asarray(model.groups)
    gcode = np.empty(n, dtype=np.int64)
    gcode_rows = []
    for gi, g in enumerate(model.group_labels):
        rows = np.asarray(model.row_indices[g], dtype=np.int64)
        gcode[rows] = gi
        gcode_rows.append(rows)
    k_fe, k_re = int(model.k_fe), int(model.k_re)
    k_re2 = k_re * (k_re + 1) // 2
    param_names = tuple(str(p) for p in model.data.param_names)
    z_names = tuple(str(s) for s in (model.data.exog_re_names or ()))[:k_re]
    if len(z_names) != k_re:
        z_names = tuple(p.removesuffix(" Var") for p in param_names[k_fe:k_fe + k_re2]
                        if p.endswith(" Var"))[:k_re]
    frame = getattr(model.data, "frame", None)
    formula = getattr(model, "formula", None)
    if frame is not None and isinstance(formula, str):
        source_frame, source_formula = frame, formula
        # from_formula names the intercept column of exog_re after the groups
        ones = [j for j in range(k_re) if np.all(np.asarray(model.exog_re)[:, j] == 1.0)]
        group_name = z_names[ones[0]] if ones and ones[0] < len(z_names) else "Group"
    else:
        source_frame, source_formula = None, None
        group_name = getattr(model.groups, "name", None) if isinstance(
            model.groups, pd.Series) else None
    reml = bool(result.reml) if result is not None else bool(getattr(model, "reml", True))
    return SmModel(
        model=model, result=result, y=np.asarray(model.endog, dtype=float),
        X=np.asarray(model.exog, dtype=float).reshape(n, k_fe),
        x_names=tuple(str(s) for s in model.exog_names), y_name=str(model.endog_names),
        groups=groups, gcode=gcode, group_name=str(group_name or "group"),
        Z=np.asarray(model.exog_re, dtype=float).reshape(n, k_re) if k_re else None,
        z_names=z_names, vcs=tuple(_vc_part(model, k, gcode_rows) for k in range(model.k_vc)),
        param_names=param_names, independent=_independent(result), reml=reml,
        frame=source_frame, formula=source_formula,
    )


# -- writing the pieces ------------------------------------------------------------


def _equal_values(a: pd.Series, b: np.ndarray) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a).astype(object), np.asarray(b).astype(object)))
    except (TypeError, ValueError):
        return False


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=MATRIX_RTOL * scale))


def numeric_column(frame: pd.DataFrame, name: str, values: np.ndarray) -> bool:
    """``frame[name]`` is a numeric column, usable by name, equal to ``values``."""
    if name not in frame.columns or not _SAFE.match(name):
        return False
    col = frame[name]
    if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
        return False
    return _close(np.asarray(col, dtype=float), values)


def group_column(sm: SmModel, frame: pd.DataFrame, new: dict[str, np.ndarray],
                 taken: set[str]) -> str:
    """The data column holding statsmodels' groups, or a synthesized one."""
    first = [sm.group_name] if sm.group_name in frame.columns else []
    for name in dict.fromkeys([*first, *map(str, frame.columns)]):
        if _SAFE.match(name) and _equal_values(frame[name], sm.groups):
            return name
    name = safe_name(sm.group_name, taken)
    new[name] = sm.groups
    return name


def covariate_text(sm: SmModel, j: int, values: np.ndarray, frame: pd.DataFrame,
                   new: dict[str, np.ndarray], taken: set[str], prefix: str) -> str:
    """Name of a data column equal to ``values`` (the user's, or a new one)."""
    name = sm.z_names[j] if prefix == "re" and j < len(sm.z_names) else \
        sm.x_names[j] if prefix == "x" else ""
    if name and numeric_column(frame, name, values):
        return name
    for col, vals in new.items():
        arr = np.asarray(vals)
        if arr.dtype.kind in "fiub" and _close(arr.astype(float), values):
            return col
    col = safe_name(name or f"{prefix}{j + 1}", taken)
    new[col] = values
    return col


def re_pieces(sm: SmModel, group: str, frame: pd.DataFrame, new: dict[str, np.ndarray],
              taken: set[str]) -> list[Piece]:
    """The ``exog_re`` block as one correlated term (or ``||`` terms for ``free``)."""
    if sm.Z is None:
        return []
    ones = [j for j in range(sm.Z.shape[1]) if np.all(sm.Z[:, j] == 1.0)]
    intercept = ones[0] if ones else None
    order = ([intercept] if intercept is not None else []) + [
        j for j in range(sm.Z.shape[1]) if j != intercept]
    texts = {j: "1" if j == intercept else
             covariate_text(sm, j, sm.Z[:, j], frame, new, taken, "re") for j in order}
    if sm.independent:
        return [Piece(f"({'1' if j == intercept else '0 + ' + texts[j]} | {group})", "re", (i,))
                for i, j in enumerate(order)]
    lhs = " + ".join(texts[j] for j in order)
    if intercept is None:
        lhs = "0 + " + lhs
    return [Piece(f"({lhs} | {group})", "re", tuple(range(len(order))))]


def _natural_vc(part: VcPart, group: str, frame: pd.DataFrame) -> str | None:
    """``(1 | f:g)``, ``(0 + x | g)`` or ``(0 + x | f:g)`` read from patsy's column names."""
    names = set(part.colnames)
    if names == {"Intercept"}:
        return f"(1 | {group})"
    factors = {m.group(1) or m.group(2) for m in map(_FACTOR_COL.match, names) if m}
    if len(factors) == 1 and all(map(_FACTOR_COL.match, names)):
        f = factors.pop()
        return f"(1 | {f}:{group})" if f in frame.columns and f != group else None
    slopes = {(m.group(1) or m.group(2), m.group(4)) for m in map(_FACTOR_SLOPE_COL.match, names)
              if m}
    if len(slopes) == 1 and all(map(_FACTOR_SLOPE_COL.match, names)):
        f, x = slopes.pop()
        ok = f in frame.columns and x in frame.columns and f != group
        return f"(0 + {x} | {f}:{group})" if ok else None
    if len(names) == 1:
        x = next(iter(names))
        if x in frame.columns and _SAFE.match(x):
            return f"(0 + {x} | {group})"
    return None


def vc_piece(sm: SmModel, k: int, group: str, frame: pd.DataFrame, new: dict[str, np.ndarray],
             taken: set[str], natural: bool) -> Piece:
    """Variance component ``k`` as an lme4 term over (group, column) levels."""
    part = sm.vcs[k]
    if natural:
        text = _natural_vc(part, group, frame)
        if text is not None:
            return Piece(text, "vc", (k,), natural=True)
    labels = np.asarray(part.labels, dtype=object)
    level = part.level.copy()
    level[level < 0] = level[level >= 0][0]  # rows without an entry: any level, value 0
    fac = safe_name(part.name, taken)
    new[fac] = labels[level]
    if np.all(part.level >= 0) and np.all(part.value == 1.0):
        return Piece(f"(1 | {fac})", "vc", (k,))
    val = safe_name(f"{part.name}_value", taken)
    new[val] = part.value
    return Piece(f"(0 + {val} | {fac})", "vc", (k,))


# -- checking the pieces against statsmodels' matrices --------------------------------


def _bijective(a: np.ndarray, b: np.ndarray) -> bool:
    if a.size == 0:
        return True
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == np.unique(a).size == np.unique(b).size


def _blocks_by_piece(design: Design) -> list[RandomBlock]:
    """Design blocks in written order (the design sorts them by number of levels)."""
    by_term = {id(b.term): b for b in design.blocks}
    return [by_term[id(t)] for t in design.formula.random]


def re_map(sm: SmModel, design: Design, pieces: list[Piece]) -> np.ndarray | None:
    """``A`` with Z_statsmodels = Z_vctest A (so b_vctest = A b_statsmodels), or None."""
    blocks = _blocks_by_piece(design)
    re_blocks = [b for b, p in zip(blocks, pieces, strict=True) if p.kind == "re"]
    if sm.Z is None:
        return np.zeros((0, 0))
    if not all(_bijective(b.codes, sm.gcode) for b in re_blocks):
        return None
    zv = np.hstack([b.columns for b in re_blocks])
    if zv.shape[1] != sm.Z.shape[1]:
        return None
    a = np.linalg.lstsq(zv, sm.Z, rcond=None)[0]
    if not _close(zv @ a, sm.Z) or abs(np.linalg.det(a)) < 1e-12:
        return None
    return np.where(np.abs(a) < 1e-12, 0.0, a)


def has_group_intercept(sm: SmModel, design: Design) -> bool:
    """Some term is a random intercept over statsmodels' groups."""
    return any(b.term.intercept and not b.term.covariates and _bijective(b.codes, sm.gcode)
               for b in design.blocks)


def vc_ok(sm: SmModel, k: int, block: RandomBlock) -> bool:
    """The block has statsmodels' levels (one-to-one) and values for component ``k``."""
    part = sm.vcs[k]
    if block.k != 1:
        return False
    has = part.level >= 0
    col = block.columns[:, 0]
    return (_bijective(part.level[has], block.codes[has])
            and _close(col[has], part.value[has]) and bool(np.all(col[~has] == 0.0)))


def fixed_map(sm: SmModel, design: Design) -> np.ndarray | None:
    """``B`` with X_statsmodels = X_vctest B, or None if the column spaces differ."""
    if design.p != sm.X.shape[1]:
        return None
    b = np.linalg.lstsq(design.X, sm.X, rcond=None)[0]
    if not _close(design.X @ b, sm.X) or abs(np.linalg.det(b)) < 1e-12:
        return None
    return b


def blocks_in_written_order(design: Design) -> list[RandomBlock]:
    """Design blocks in the order the formula writes them."""
    return _blocks_by_piece(design)


# -- one attempt: write, build, check ------------------------------------------------------


def _fixed_text(sm: SmModel, frame: pd.DataFrame, new: dict[str, np.ndarray],
                taken: set[str]) -> tuple[str, str]:
    """Response and fixed part from statsmodels' arrays (columns reused or added)."""
    y_col = sm.y_name
    if not numeric_column(frame, y_col, sm.y):
        y_col = safe_name(sm.y_name, taken)
        new[y_col] = sm.y
    ones = [j for j in range(sm.X.shape[1]) if np.all(sm.X[:, j] == 1.0)]
    parts = ["1" if ones else "0"]
    parts += [covariate_text(sm, j, sm.X[:, j], frame, new, taken, "x")
              for j in range(sm.X.shape[1]) if not ones or j != ones[0]]
    return y_col, " + ".join(parts)


@dataclass
class Attempt:
    """A candidate translation: formula, data, its pieces and the columns it added."""

    formula: str
    data: pd.DataFrame
    pieces: list[Piece]
    added: list[str]


def compose(sm: SmModel, natural_fixed: bool, natural_vc: list[bool]) -> Attempt:
    """Write the model; ``natural_*`` say which parts may use the user's own text/columns."""
    frame = sm.frame if sm.frame is not None else pd.DataFrame(index=pd.RangeIndex(len(sm.y)))
    taken = {str(c) for c in frame.columns}
    new: dict[str, np.ndarray] = {}
    response = fixed = None
    if natural_fixed and sm.formula is not None:
        try:
            parsed = parse_formula(sm.formula)
        except ValueError:
            parsed = None
        if parsed is not None and not parsed.random:
            response, fixed = parsed.response.text, parsed.fixed
    if response is None or fixed is None:
        response, fixed = _fixed_text(sm, frame, new, taken)
    group = group_column(sm, frame, new, taken)
    pieces = re_pieces(sm, group, frame, new, taken)
    pieces += [vc_piece(sm, k, group, frame, new, taken, natural_vc[k])
               for k in range(len(sm.vcs))]
    formula = f"{response} ~ {fixed} + {' + '.join(p.text for p in pieces)}"
    data = frame.assign(**{k: np.asarray(v) for k, v in new.items()}) if new else frame
    return Attempt(formula, data, pieces, list(new))


def check_attempt(sm: SmModel, attempt: Attempt) -> tuple[Design | None, dict[str, Any]]:
    """Build the design and compare each part with statsmodels' matrices.

    Returns the design and ``{"response": bool, "fixed": B or None, "re": A or
    None, "vc": [bool, ...]}`` (or ``{"error": message}``).
    """
    try:
        design = build_design(attempt.formula, attempt.data)
    except ValueError as exc:
        return None, {"error": str(exc)}
    if design.n != sm.y.size:
        return design, {"error": f"vctest uses {design.n} rows, statsmodels {sm.y.size}"}
    found: dict[str, Any] = {
        "response": bool(np.allclose(design.y, sm.y, rtol=1e-12, atol=0)),
        "fixed": fixed_map(sm, design),
        "re": re_map(sm, design, attempt.pieces),
    }
    written = blocks_in_written_order(design)
    found["vc"] = [vc_ok(sm, p.cols[0], b) for b, p in zip(written, attempt.pieces, strict=True)
                   if p.kind == "vc"]
    return design, found


def passed(found: dict[str, Any]) -> bool:
    """Every part of the attempt reproduces statsmodels' model."""
    return ("error" not in found and found["response"] and found["fixed"] is not None
            and found["re"] is not None and all(found["vc"]))
