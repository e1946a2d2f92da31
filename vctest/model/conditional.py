"""What a fitted linear mixed model says about its random effects and its data.

With ``Lambda`` the relative covariance factor (block diagonal, ``T_j`` per level
of term j) and ``Z`` the random-effects model matrix, the spherical random
effects ``u`` (``b = Lambda u``, ``u ~ N(0, sigma^2 I)``) have, given the data
and the estimates (Bates et al. 2015, section 3),

* conditional mode ``u~ = (Lambda'Z'Z Lambda + I)^{-1} Lambda'Z'(y - X beta)``;
* conditional covariance ``sigma^2 (Lambda'Z'Z Lambda + I)^{-1}``,

so ``b~ = Lambda u~`` (lme4's ``ranef``) with per-level covariance
``sigma^2 T_j [(Lambda'Z'Z Lambda + I)^{-1}]_{ll} T_j'`` (``ranef(condVar =
TRUE)``), ``fitted = X beta + Z b~`` and the residuals ``y - fitted``.
Predictions on new data use ``X_new beta`` plus the conditional modes of the
levels seen in the fit (a new level contributes 0: lme4's
``allow.new.levels``).  Everything here is sparse linear algebra on the
fit's design (SciPy), not the engine: it runs once per call, not per replicate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from vctest.formula.design import Design, RandomBlock, build_design
from vctest.model.reduce import locate_term
from vctest.model.terms import ThetaLayout

#: Up to this many random effects the inverse is formed densely.
DENSE_INVERSE_UP_TO = 3000


def block_offsets(blocks: Sequence[RandomBlock]) -> np.ndarray:
    """Where each term's random effects start in ``b`` (level-major within a term)."""
    return np.concatenate([[0], np.cumsum([b.n_levels * b.k for b in blocks])]).astype(int)


def z_matrix(blocks: Sequence[RandomBlock], n: int) -> sp.csc_matrix:
    """``Z`` (n x q): row i has term j's columns at ``offset_j + level_i * k_j + c``."""
    offsets = block_offsets(blocks)
    rows, cols, vals = [], [], []
    for j, blk in enumerate(blocks):
        for c in range(blk.k):
            rows.append(np.arange(n))
            cols.append(offsets[j] + blk.codes * blk.k + c)
            vals.append(blk.columns[:, c])
    if not rows:
        return sp.csc_matrix((n, 0))
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, int(offsets[-1])))


def lambda_matrix(blocks: Sequence[RandomBlock], layout: ThetaLayout,
                  theta: np.ndarray) -> sp.csc_matrix:
    """``Lambda`` (q x q): ``I_{levels} kron T_j`` for each term."""
    parts = [sp.kron(sp.identity(blk.n_levels), sp.csc_matrix(t))
             for blk, t in zip(blocks, layout.factors(np.asarray(theta, float)), strict=True)]
    return sp.block_diag(parts, format="csc") if parts else sp.csc_matrix((0, 0))


def _inverse_diagonal_blocks(a: sp.csc_matrix, sizes: list[tuple[int, int, int]]
                             ) -> list[np.ndarray]:
    """Diagonal blocks of ``a^{-1}``: for each (offset, levels, k) an array (levels, k, k)."""
    q = a.shape[0]
    if q <= DENSE_INVERSE_UP_TO:
        inv = np.linalg.inv(a.toarray())

        def get(s: slice) -> np.ndarray:
            return inv[s, s]
    else:
        lu = spla.splu(a.tocsc())

        def get(s: slice) -> np.ndarray:
            e = np.zeros((q, s.stop - s.start))
            e[np.arange(s.start, s.stop), np.arange(s.stop - s.start)] = 1.0
            return lu.solve(e)[s]
    out = []
    for off, levels, k in sizes:
        arr = np.empty((levels, k, k))
        for lev in range(levels):
            s = slice(off + lev * k, off + (lev + 1) * k)
            arr[lev] = get(s)
        out.append(arr)
    return out


@dataclass(frozen=True, eq=False)
class Conditional:
    """Conditional modes and covariances of the random effects of an LMM fit.

    Attributes
    ----------
    b : list of ndarray
        Per term, the modes as an array (levels, k).
    condvar : list of ndarray
        Per term, the conditional covariances (levels, k, k).
    zb : ndarray
        ``Z b~`` on the fit's rows.
    """

    b: list[np.ndarray]
    condvar: list[np.ndarray]
    zb: np.ndarray


def lmm_conditional(fit: Any, *, condvar: bool = True) -> Conditional:
    """Conditional modes (and covariances) of ``fit``'s random effects."""
    design: Design = fit.model.design
    blocks = design.blocks
    z = z_matrix(blocks, design.n)
    lam = lambda_matrix(blocks, fit.model.layout, fit.theta)
    zl = (z @ lam).tocsc()
    sw = sp.diags(np.sqrt(fit.model.weights))  # prior weights: the whitened model
    zlw = (sw @ zl).tocsc()
    a = (zlw.T @ zlw + sp.identity(zl.shape[1])).tocsc()
    r = design.y - design.X @ fit.beta.to_numpy()
    u = spla.spsolve(a, zlw.T @ (sw @ r)) if a.shape[0] else np.zeros(0)
    b = lam @ np.atleast_1d(u)
    offsets = block_offsets(blocks)
    modes = [b[offsets[j]:offsets[j + 1]].reshape(blk.n_levels, blk.k)
             for j, blk in enumerate(blocks)]
    cvs: list[np.ndarray] = []
    if condvar and blocks:
        sizes = [(int(offsets[j]), blk.n_levels, blk.k) for j, blk in enumerate(blocks)]
        inv_blocks = _inverse_diagonal_blocks(a, sizes)
        s2 = fit.sigma ** 2
        for t, inv in zip(fit.model.layout.factors(fit.theta), inv_blocks, strict=True):
            cvs.append(s2 * np.einsum("ij,ljk,mk->lim", t, inv, t))
    return Conditional(b=modes, condvar=cvs, zb=np.asarray(z @ b).ravel())


def ranef_frames(design: Design, cond: Conditional) -> dict[str, pd.DataFrame]:
    """lme4's ``ranef``: one frame per grouping factor (terms on one factor side by side).

    With conditional covariances, ``frame.attrs["condvar"]`` is a list with one
    array (levels, k, k) per term on that factor, as lme4's ``postVar``.
    """
    out: dict[str, pd.DataFrame] = {}
    for j, blk in enumerate(design.blocks):
        frame = pd.DataFrame(cond.b[j], index=pd.Index(blk.levels, name=blk.name),
                             columns=list(blk.column_names))
        if blk.name in out:
            prev = out[blk.name]
            attrs = dict(prev.attrs)
            frame = pd.concat([prev, frame], axis=1)
            frame.attrs = attrs
        if cond.condvar:
            frame.attrs.setdefault("condvar", []).append(cond.condvar[j])
        out[blk.name] = frame
    return out


def repca(fit: Any) -> dict[str, pd.DataFrame]:
    """lme4's ``rePCA``: principal components of each grouping factor's relative covariance.

    Terms on one grouping factor are joined block-diagonally (as lme4 does);
    the standard deviations are the singular values of the relative factor
    (in units of the residual standard deviation for an LMM).
    """
    groups: dict[str, list[np.ndarray]] = {}
    for blk, t in zip(fit.model.design.blocks, fit.model.layout.factors(fit.theta),
                      strict=True):
        groups.setdefault(blk.name, []).append(t)
    out = {}
    for name, factors in groups.items():
        from scipy.linalg import block_diag

        sdev = np.linalg.svd(block_diag(*factors), compute_uv=False)
        var = sdev ** 2
        total = var.sum()
        prop = var / total if total > 0 else np.full(var.size, np.nan)
        out[name] = pd.DataFrame({"sdev": sdev, "proportion": prop,
                                  "cumulative": np.cumsum(prop)},
                                 index=[f"PC{i + 1}" for i in range(sdev.size)])
    return out


# --- new data -------------------------------------------------------------------------------


def _response_columns(design: Design) -> set[str]:
    parts = design.formula.response.parts
    return {c for c in design.frame.columns if any(c in part for part in parts)}


def _aligned(new: pd.Series, old: pd.Series) -> pd.Series:
    """``new`` with ``old``'s categories first (new labels appended), so codes agree."""
    if isinstance(old.dtype, pd.CategoricalDtype):
        cats = list(old.cat.categories)
        extra = [v for v in pd.unique(new.dropna()) if v not in set(cats)]
        return pd.Series(pd.Categorical(new, categories=cats + extra), index=new.index)
    return new


def new_design(design: Design, newdata: pd.DataFrame) -> tuple[Design, np.ndarray]:
    """The fit's formula evaluated on ``newdata`` (with the fit's factor codings).

    Returns the design of the fit's rows followed by ``newdata``'s and, for
    each row of ``newdata``, its row in that design (-1 where a value is
    missing).
    """
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"`newdata` must be a pandas DataFrame; got {type(newdata).__name__}.")
    stateful = [f for f in ("scale(", "center(", "poly(") if f in design.formula.text]
    if stateful:
        raise ValueError(
            f"predict(newdata=...) for a formula with {', '.join(f + ')' for f in stateful)} "
            "is not supported: the transform would be learnt again from the new rows, and "
            "the predictions would be wrong. Add the transformed columns to the data "
            "yourself (e.g. data['sx'] = (x - x.mean()) / x.std()), refit, and predict "
            "with the same transform of newdata.")
    old = design.frame
    responses = _response_columns(design)
    new = pd.DataFrame(index=range(len(newdata)))
    for col in old.columns:
        if col in newdata.columns:
            new[col] = _aligned(newdata[col].reset_index(drop=True), old[col])
        elif col in responses:
            new[col] = old[col].iloc[0]
        else:
            raise ValueError(f"`newdata` has no column {col!r}, which the model uses; add it.")
    for col in old.columns:
        if isinstance(new[col].dtype, pd.CategoricalDtype):
            cats = new[col].cat.categories
            old = old.assign(**{col: pd.Categorical(old[col], categories=cats)})
    combined = pd.concat([old, new], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows of newdata with missing values predict NaN
        full = build_design(design.formula.text, combined)
    if full.fixed_names != design.fixed_names:
        raise ValueError(
            f"`newdata` gives the fixed-effect columns {list(full.fixed_names)}, the fit has "
            f"{list(design.fixed_names)}: a factor of the fixed effects has a level the fit "
            "did not see; predict only for the levels it was fitted to.")
    where = np.full(len(newdata), -1, dtype=np.int64)
    pos = np.searchsorted(full.row_index, np.arange(len(old), len(combined)))
    hit = (pos < full.row_index.size) & (
        full.row_index[np.minimum(pos, full.row_index.size - 1)]
        == np.arange(len(old), len(combined)))
    where[hit] = pos[hit]
    return full, where


def _re_form_blocks(design: Design, re_form: Any) -> dict[int, tuple[int, ...]]:
    """Which terms (and columns) of ``design`` a ``re_form`` keeps: {block: columns}."""
    every = {j: tuple(range(b.k)) for j, b in enumerate(design.blocks)}
    if re_form is None:
        return every
    if re_form is False or (isinstance(re_form, float) and math.isnan(re_form)):
        return {}
    if not isinstance(re_form, str):
        raise TypeError("`re_form` must be None (all random effects), a formula such as "
                        "'~ (1 | g)', or '~0' / False (none); got "
                        f"{type(re_form).__name__}.")
    text = re_form.strip()
    text = text[1:].strip() if text.startswith("~") else text
    if text in ("0", "NA", ""):
        return {}
    from vctest.formula.parse import random_term_from_text

    keep: dict[int, set[int]] = {}
    for term in random_term_from_text(text):
        loc = locate_term(design, term.label)
        keep.setdefault(loc.block, set()).update(loc.columns)
    return {j: tuple(sorted(c)) for j, c in keep.items()}


def predict_linear(design: Design, beta: np.ndarray, modes: list[np.ndarray],
                   newdata: pd.DataFrame | None, re_form: Any,
                   allow_new_levels: bool) -> np.ndarray:
    """``X beta`` plus the kept terms' ``Z b~`` (no offset), on the fit's rows or ``newdata``."""
    keep = _re_form_blocks(design, re_form)
    if newdata is None:
        out = design.X @ beta
        for j, cols in keep.items():
            blk = design.blocks[j]
            out = out + np.sum(blk.columns[:, cols] * modes[j][blk.codes][:, cols], axis=1)
        return out
    full, where = new_design(design, newdata)
    ok = where >= 0
    rows = where[ok]
    pred = full.X[rows] @ beta
    for j, cols in keep.items():
        blk = design.blocks[j]
        nb = next(b for b in full.blocks if b.term.label == blk.term.label
                  and b.column_names == blk.column_names)
        index = {lev: i for i, lev in enumerate(blk.levels)}
        labels = np.asarray(nb.levels, dtype=object)[nb.codes[rows]]
        codes = np.array([index.get(lev, -1) for lev in labels], dtype=np.int64)
        unseen = sorted({str(lev) for lev, c in zip(labels, codes, strict=True) if c < 0})
        if unseen and not allow_new_levels:
            raise ValueError(
                f"`newdata` has level(s) {unseen[:5]} of {blk.name!r} that the fit did not "
                "see; pass allow_new_levels=True to predict them at the population level "
                "(their random effects set to 0), as lme4's allow.new.levels.")
        table = np.vstack([modes[j], np.zeros((1, blk.k))])  # code -1: the zero row
        pred = pred + np.sum(nb.columns[rows][:, cols] * table[codes][:, cols], axis=1)
    out = np.full(len(newdata), np.nan)
    out[ok] = pred
    return out


def predict_lmm(fit: Any, newdata: pd.DataFrame | None, re_form: Any,
                allow_new_levels: bool) -> np.ndarray:
    """lme4's ``predict.merMod`` for an LMM (link scale = response scale)."""
    modes = lmm_conditional(fit, condvar=False).b
    return predict_linear(fit.model.design, fit.beta.to_numpy(), modes, newdata, re_form,
                          allow_new_levels)


# --- GLMMs ----------------------------------------------------------------------------------


def inverse_link(model: Any, eta: np.ndarray) -> np.ndarray:
    """``mu = g^{-1}(eta)`` through the kernels' one copy of the links."""
    from vctest.kernels.engine import tiered_inverse_link as kernel_inverse_link
    from vctest.model.structure import f64

    mu = np.empty(eta.size)
    kernel_inverse_link(model.fam_code, model.link_code, f64(eta), mu)
    return mu


def pirls_weights(model: Any, eta: np.ndarray) -> np.ndarray:
    """``w = wt (dmu/deta)^2 / V(mu)``, with dmu/deta by a central difference of the link.

    (Relative error about 1e-10; V is the family's variance: mu (1 - mu) or mu.)
    """
    h = 1e-5 * np.maximum(1.0, np.abs(eta))
    dmu = (inverse_link(model, eta + h) - inverse_link(model, eta - h)) / (2.0 * h)
    mu = inverse_link(model, eta)
    var = mu * (1.0 - mu) if model.family == "binomial" else mu
    return model.weights * dmu * dmu / var


def glmm_conditional(model: Any, theta: np.ndarray, beta: np.ndarray,
                     u: np.ndarray, *, condvar: bool = True) -> Conditional:
    """Modes ``b = Lambda u`` and covariances ``Lambda (Lambda'Z'WZ Lambda + I)^{-1} Lambda'``
    of a GLMM at its conditional modes ``u`` (lme4's ``ranef(condVar = TRUE)``)."""
    design: Design = model.design
    blocks = design.blocks
    z = z_matrix(blocks, design.n)
    lam = lambda_matrix(blocks, model.layout, theta)
    b = lam @ np.asarray(u, float)
    offsets = block_offsets(blocks)
    modes = [b[offsets[j]:offsets[j + 1]].reshape(blk.n_levels, blk.k)
             for j, blk in enumerate(blocks)]
    zb = np.asarray(z @ b).ravel()
    cvs: list[np.ndarray] = []
    if condvar:
        eta = model.offset + design.X @ beta + zb
        zl = (z @ lam).tocsc()
        w = pirls_weights(model, eta)
        a = (zl.T @ sp.diags(w) @ zl + sp.identity(zl.shape[1])).tocsc()
        sizes = [(int(offsets[j]), blk.n_levels, blk.k) for j, blk in enumerate(blocks)]
        for t, inv in zip(model.layout.factors(theta), _inverse_diagonal_blocks(a, sizes),
                          strict=True):
            cvs.append(np.einsum("ij,ljk,mk->lim", t, inv, t))
    return Conditional(b=modes, condvar=cvs, zb=zb)


def glmm_residuals(model: Any, mu: np.ndarray, kind: str) -> np.ndarray:
    """Response, Pearson or deviance residuals (R's ``residuals.glm`` types)."""
    y, wt = model.y, model.weights
    if kind == "response":
        return y - mu
    var = mu * (1.0 - mu) if model.family == "binomial" else mu
    if kind == "pearson":
        return (y - mu) * np.sqrt(wt / var)
    with np.errstate(divide="ignore", invalid="ignore"):
        if model.family == "binomial":
            a = np.where(y > 0, y * np.log(y / mu), 0.0)
            b = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0.0)
            dev = 2.0 * wt * (a + b)
        else:
            dev = 2.0 * wt * (np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
    return np.sign(y - mu) * np.sqrt(np.maximum(dev, 0.0))


def simulate_lmm(fit: Any, nsim: int, rng: np.random.Generator) -> np.ndarray:
    """``nsim`` responses from the fitted model (new random effects and noise), (n, nsim)."""
    design: Design = fit.model.design
    zl = (z_matrix(design.blocks, design.n)
          @ lambda_matrix(design.blocks, fit.model.layout, fit.theta)).tocsr()
    mean = design.X @ fit.beta.to_numpy()
    u = rng.standard_normal((zl.shape[1], nsim))
    e = rng.standard_normal((design.n, nsim)) / np.sqrt(fit.model.weights)[:, None]
    return mean[:, None] + fit.sigma * (np.asarray(zl @ u) + e)
