"""Coming from statsmodels: translate a ``MixedLM`` model or result into vctest.

:func:`~vctest.api.statsmodels.translate` writes a statsmodels mixed model as an lme4 formula and a
DataFrame that :func:`vctest.fit` and :func:`vctest.vc_test` accept, and maps
the parameter names statsmodels prints (``"Subject Var"``, ``"Days Var"``,
``"Subject x Days Cov"``, ``"cask Var"``) to lme4 terms.
:func:`from_statsmodels` also fits the translation and checks that it is the
same model: the two log-likelihoods must agree to 1e-6 (relative) at
statsmodels' estimates and at vctest's.

How statsmodels' random effects read in lme4 syntax (``groups="g"``):

* ``re_formula=None`` (no ``vc_formula``) or ``"1"``: ``(1 | g)``;
* ``re_formula="~x"`` (or ``"1 + x"``): ``(1 + x | g)`` -- correlated;
* ``re_formula="0 + x"``: ``(0 + x | g)``;
* ``fit(free=...)`` with a diagonal ``cov_re`` pattern: ``(1 + x || g)``;
* ``vc_formula={"c": "0 + C(c)"}``: ``(1 | c:g)``, independent of the above;
  ``{"x": "0 + x"}``: ``(0 + x | g)``.  Without ``re_formula`` statsmodels
  then fits **no** random intercept for ``g``: lme4's ``(1 | g/c)`` is
  ``re_formula="1"`` together with the ``vc_formula``.

Log-likelihood conventions: statsmodels' ``llf`` (``MixedLM.loglike``) and
lme4's ``logLik`` are the same function -- the ML log-likelihood, or for REML
the restricted one ``-1/2 [log|V| + log|X'V^-1 X| + (n-p)(1 + log(2 pi r/(n-p)))]``
with the residual variance profiled out.  Neither adds ``1/2 log|X'X|``, so a
REML log-likelihood depends on how the fixed effects are coded: if the two
codings differ (``X_statsmodels = X_vctest B``), statsmodels' value is lower
by ``log|det B|`` (:attr:`Translation.reml_offset`); with the same coding the
offset is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from vctest.api._sm_params import (
    reported_llf,
    result_notes,
    sm_from_theta,
    sm_loglike,
    theta_from_sm,
)
from vctest.api._sm_structure import (
    SmModel,
    blocks_in_written_order,
    check_attempt,
    compose,
    extract,
    has_group_intercept,
    passed,
)
from vctest.api.fitting import fit as vctest_fit
from vctest.formula.design import Design
from vctest.model.fit import LmmFit
from vctest.model.reduce import locate_term
from vctest.model.terms import theta_layout

__all__ = ["StatsmodelsFit", "Translation", "from_statsmodels", "term_from_statsmodels",
           "translate"]

#: Relative tolerance for the two programs' log-likelihoods to count as equal.
LOGLIK_RTOL = 1e-6


@dataclass(frozen=True, eq=False)
class Translation:
    """A statsmodels mixed model written for vctest.

    Attributes
    ----------
    formula : str
        lme4 formula of the same model.
    data : pandas.DataFrame
        Data for ``formula``: the model's own data frame (formula-built
        models) plus any synthesized columns, or columns built from the
        arrays (``endog``, ``exog``, ``groups``, ``exog_re``, ``exog_vc``).
    reml : bool
        The criterion of the statsmodels fit (``result.reml``; for a model,
        ``model.reml``: True unless it was last fitted by ML).
    terms : dict of str to str
        statsmodels' printed parameter names -> lme4 term text.  ``"X Var"``
        maps to the term that removes that variance (and its covariances),
        usable as ``vc_test(term=...)``; ``"A x B Cov"`` maps to the
        correlated term holding that covariance.
    source : {"formula", "arrays"}
        How the statsmodels model was built.
    reml_offset : float
        statsmodels' REML log-likelihood minus vctest's at the same
        parameters (0 unless the fixed effects are coded differently).
    notes : tuple of str
        What the translation had to do (synthesized columns, a statsmodels
        quirk to know about).
    design : Design
        The vctest design built from ``formula`` and ``data``.
    """

    formula: str
    data: pd.DataFrame = field(repr=False)
    reml: bool
    terms: dict[str, str]
    source: str
    reml_offset: float
    notes: tuple[str, ...]
    design: Design = field(repr=False)
    _re_map: np.ndarray = field(repr=False)
    _sources: tuple[tuple[str, tuple[int, ...]], ...] = field(repr=False)
    _k_vc: int = field(repr=False)


@dataclass(frozen=True, eq=False)
class StatsmodelsFit:
    """A vctest fit of a translated statsmodels model, with the agreement check.

    Attribute access falls through to ``fit``, so ``res.loglik`` is
    ``res.fit.loglik``.

    Attributes
    ----------
    fit : LmmFit
        vctest's fit of ``translation.formula``.
    translation : Translation
        The lme4 formula, data and term names the statsmodels model became.
    sm_loglik : float or None
        statsmodels' log-likelihood at its estimates (``result.llf``, for the
        criterion of ``fit``); None for an unfitted model.
    vctest_loglik_at_sm_estimates : float or None
        vctest's log-likelihood at statsmodels' estimates (plus
        ``translation.reml_offset`` for REML it equals ``sm_loglik``).
    sm_loglik_at_vctest_estimates : float
        statsmodels' ``loglike`` at vctest's estimates (it equals
        ``fit.loglik``, plus the offset for REML).
    notes : tuple of str
        Plain-language notes: boundary estimates, statsmodels' convergence
        flag, a statsmodels optimum below vctest's, quirks met on the way.
    """

    fit: LmmFit
    translation: Translation
    sm_loglik: float | None
    vctest_loglik_at_sm_estimates: float | None
    sm_loglik_at_vctest_estimates: float
    notes: tuple[str, ...]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.fit, name)

    def summary(self, max_rows: int | None = None) -> str:
        """The fit's summary, then the agreement with statsmodels and the notes."""
        sm = "none (an unfitted model)" if self.sm_loglik is None else f"{self.sm_loglik:.6f}"
        lines = [self.fit.summary(max_rows=max_rows), "",
                 f"From statsmodels (translated to {self.translation.formula}):",
                 f"  statsmodels logLik at its estimates: {sm}",
                 f"  statsmodels logLik at vctest's estimates: "
                 f"{self.sm_loglik_at_vctest_estimates:.6f}"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        from vctest._tables import MAX_REPR_ROWS, clip_lines

        return clip_lines(self.summary(max_rows=MAX_REPR_ROWS), what="res.summary()")

    def _repr_html_(self) -> str:
        from vctest._tables import fit_html, text_html

        tail = text_html("From statsmodels", self.summary().split("\n\n")[-1])
        return fit_html(self.fit) + tail


# -- input -------------------------------------------------------------------------------


def _unwrap(obj: object) -> tuple[Any, Any]:
    """(model, result or None) of a MixedLM, MixedLMResults or its wrapper."""
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMResults

    inner = getattr(obj, "_results", obj)
    if isinstance(inner, MixedLMResults):
        return inner.model, inner
    if isinstance(obj, MixedLM):
        return obj, None
    raise TypeError(
        "`model_or_result` must be a statsmodels MixedLM model (smf.mixedlm(...) or "
        f"sm.MixedLM(...)) or the result of its .fit(); got {type(obj).__name__}."
    )


# -- names --------------------------------------------------------------------------


def _single_column_term(design: Design, block_index: int, col: int) -> str | None:
    block = design.blocks[block_index]
    if block.k == 1:
        return block.term.label
    name = block.column_names[col]
    text = (f"(1 | {block.term.group})" if name == "(Intercept)"
            else f"(0 + {name} | {block.term.group})")
    try:
        loc = locate_term(design, text)
    except ValueError:
        return None
    return loc.label if loc.block == block_index and loc.columns == (col,) else None


def _term_names(sm: SmModel, design: Design, sources, a: np.ndarray) -> dict[str, str]:
    """statsmodels' printed variance parameter names -> lme4 term text."""
    k_fe = sm.X.shape[1]
    k_re = 0 if sm.Z is None else sm.Z.shape[1]
    names = sm.param_names[k_fe:]
    # vctest column c of the exog_re covariance -> (block index, column in block)
    where: dict[int, tuple[int, int]] = {}
    for j, (kind, cols) in enumerate(sources):
        if kind == "re":
            where.update({c: (j, i) for i, c in enumerate(cols)})
    perm = {}
    for i in range(k_re):
        rows = np.flatnonzero(a[:, i])
        if rows.size == 1 and np.count_nonzero(a[rows[0]]) == 1:
            perm[i] = int(rows[0])
    out: dict[str, str] = {}
    pos = 0
    for i in range(k_re):
        for j in range(i + 1):
            name = names[pos]
            pos += 1
            if i == j and i in perm:
                text = _single_column_term(design, *where[perm[i]])
                if text is not None:
                    out[name] = text
            elif i != j and not sm.independent:  # one correlated block holds every column
                out[name] = design.blocks[where[0][0]].term.label
    for k in range(len(sm.vcs)):
        j = next(j for j, (kind, cols) in enumerate(sources) if kind == "vc" and cols == (k,))
        out[names[pos + k]] = design.blocks[j].term.label
    return out


def translate(model_or_result: object) -> Translation:
    """Write a statsmodels ``MixedLM`` model or result as an lme4 formula and data.

    Parameters
    ----------
    model_or_result : statsmodels MixedLM or MixedLMResults
        Built with ``smf.mixedlm(formula, data, groups=..., re_formula=...,
        vc_formula=...)`` or ``sm.MixedLM(endog, exog, groups, exog_re=...,
        exog_vc=...)``, fitted or not.

    Returns
    -------
    Translation
        ``formula``, ``data``, ``reml``, ``terms`` (statsmodels' printed names
        -> lme4 terms), ``reml_offset`` and ``notes``.

    Raises
    ------
    TypeError
        If ``model_or_result`` is not a statsmodels mixed model or result.
    ValueError
        If the model has no lme4 equivalent: a penalised fit, a ``free``
        pattern other than independent random coefficients, or a variance
        component whose rows hold several coefficients of one variance.

    Notes
    -----
    statsmodels stores neither ``re_formula`` nor ``vc_formula``, so the random
    part is rebuilt from ``exog_re`` and ``exog_vc`` and checked against them:
    the translated design must reproduce statsmodels' response, the column
    space of its fixed effects, its random-effects columns (up to an
    invertible map) and its variance-component levels row by row.  Parts
    that cannot be written with the model's own columns are written with
    synthesized columns (listed in ``notes``).

    Examples
    --------
    >>> import statsmodels.formula.api as smf
    >>> import vctest
    >>> from vctest.api.statsmodels import translate
    >>> sleep = vctest.datasets.load("sleepstudy")
    >>> res = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    >>> t = translate(res)
    >>> t.formula
    'Reaction ~ Days + (1 + Days | Subject)'
    >>> t.terms["Days Var"], t.terms["Subject x Days Cov"]
    ('(0 + Days | Subject)', '(1 + Days | Subject)')
    >>> pastes = vctest.datasets.load("Pastes")
    >>> md = smf.mixedlm("strength ~ 1", pastes, groups="batch", re_formula="1",
    ...                  vc_formula={"cask": "0 + C(cask)"})
    >>> translate(md).formula
    'strength ~ 1 + (1 | batch) + (1 | cask:batch)'
    """
    model, result = _unwrap(model_or_result)
    sm = extract(model, result)
    notes: list[str] = []
    if sm.frame is not None and len(sm.frame) != sm.y.size:
        notes.append(f"statsmodels' data frame has {len(sm.frame)} rows but the model uses "
                     f"{sm.y.size}; the translation is built from the model's arrays.")
        sm = replace(sm, frame=None, formula=None)
    natural = sm.frame is not None
    attempt = compose(sm, natural, [natural] * len(sm.vcs))
    design, found = check_attempt(sm, attempt)
    if not passed(found) and natural:
        # keep what matched; write the rest with columns copied from statsmodels' arrays
        keep_fixed = "error" not in found and found["response"] and found["fixed"] is not None
        attempt = compose(sm, keep_fixed, [bool(v) for v in found.get("vc", [])]
                          or [False] * len(sm.vcs))
        design, found = check_attempt(sm, attempt)
        if not keep_fixed:
            notes.append(f"vctest does not read statsmodels' formula {sm.formula!r} the same "
                         "way; the response and fixed effects are columns copied from the "
                         "model's arrays.")
    if design is None or not passed(found):
        raise ValueError(
            f"could not write the statsmodels model as an lme4 formula (tried "
            f"{attempt.formula!r}: {found.get('error', 'its design differs from statsmodels')})."
            " Please report this with the statsmodels call that built the model."
        )
    if attempt.added:
        notes.append("columns added to `data` from statsmodels' arrays: "
                     + ", ".join(attempt.added) + ".")
    if sm.vcs and sm.Z is None and not has_group_intercept(sm, design):
        notes.append("statsmodels fits no random intercept for the groups here (vc_formula "
                     "without re_formula); lme4's (1 | g/c) is re_formula='1' plus the "
                     "vc_formula.")
    written = blocks_in_written_order(design)
    piece_of = {id(b): p for b, p in zip(written, attempt.pieces, strict=True)}
    sources = tuple((piece_of[id(b)].kind, piece_of[id(b)].cols) for b in design.blocks)
    offset = -float(np.linalg.slogdet(found["fixed"])[1]) if found["fixed"].size else 0.0
    return Translation(
        formula=attempt.formula, data=attempt.data, reml=sm.reml,
        terms=_term_names(sm, design, sources, found["re"]),
        source="formula" if natural else "arrays",
        reml_offset=0.0 if abs(offset) < 1e-12 else offset, notes=tuple(notes),
        design=design, _re_map=found["re"], _sources=sources, _k_vc=len(sm.vcs),
    )


def term_from_statsmodels(translation: Translation, name: str) -> str:
    """The lme4 term for a statsmodels parameter name (or lme4 term text).

    Parameters
    ----------
    translation : Translation
        From :func:`~vctest.api.statsmodels.translate`.
    name : str
        A name as statsmodels' summary prints it (``"Subject Var"``,
        ``"Days Var"``, ``"cask Var"``; ``"Group Var"`` for the random
        intercept) or an lme4 term of the translated model
        (``"(0 + Days | Subject)"``).

    Returns
    -------
    str
        lme4 term text for ``vctest.vc_test(..., term=...)``.  A covariance
        name (``"Subject x Days Cov"``) gives the correlated term holding it;
        to test the covariance alone compare ``(1 + x | g)`` with
        ``(1 + x || g)`` by :func:`vctest.compare`.

    Raises
    ------
    TypeError
        If ``translation`` is not a Translation or ``name`` not a string.
    ValueError
        If ``name`` is neither; the message lists the available names.

    Examples
    --------
    >>> import statsmodels.formula.api as smf
    >>> import vctest
    >>> from vctest.api.statsmodels import term_from_statsmodels, translate
    >>> dye = vctest.datasets.load("Dyestuff")
    >>> t = translate(smf.mixedlm("Yield ~ 1", dye, groups="Batch").fit())
    >>> term_from_statsmodels(t, "Batch Var")
    '(1 | Batch)'
    >>> term_from_statsmodels(t, "Group Var")
    '(1 | Batch)'
    """
    if not isinstance(translation, Translation):
        raise TypeError("`translation` must be the Translation returned by translate(); got "
                        f"{type(translation).__name__}.")
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string such as 'Group Var'; got "
                        f"{type(name).__name__}.")
    key = name.strip()
    if key in translation.terms:
        return translation.terms[key]
    if key == "Group Var":
        intercepts = {v for k, v in translation.terms.items() if k.endswith(" Var")
                      and v.startswith("(1 |") and " + " not in v}
        if len(intercepts) == 1:
            return intercepts.pop()
    if "|" in key:
        try:
            return locate_term(translation.design, key).label
        except ValueError:
            pass
    names = ", ".join(repr(k) for k in translation.terms) or "none"
    lme4 = ", ".join(b.term.label for b in translation.design.blocks)
    raise ValueError(
        f"`name` {name!r} is neither a statsmodels parameter name of this model nor one of "
        f"its lme4 terms. statsmodels names: {names}; lme4 terms: {lme4}."
    )


def from_statsmodels(model_or_result: object, *, reml: bool | None = None) -> StatsmodelsFit:
    """Fit a statsmodels mixed model with vctest and check it is the same model.

    Translates (:func:`~vctest.api.statsmodels.translate`), fits with :func:`vctest.fit`, then
    compares the log-likelihoods: vctest's at statsmodels' estimates with
    statsmodels' ``result.llf``, and statsmodels' ``loglike`` at vctest's
    estimates with vctest's (both to 1e-6 relative, REML values shifted by
    ``translation.reml_offset``).

    Parameters
    ----------
    model_or_result : statsmodels MixedLM or MixedLMResults
        For an unfitted model only the second comparison is made.
    reml : bool, optional
        Criterion of vctest's fit; default: the statsmodels fit's.

    Returns
    -------
    StatsmodelsFit
        ``fit`` (an :class:`~vctest.LmmFit`), ``translation``, the
        log-likelihoods compared and ``notes``.

    Raises
    ------
    TypeError
        If ``model_or_result`` is not a statsmodels mixed model or ``reml``
        is not a bool or None.
    ValueError
        If the model cannot be translated, or a log-likelihood comparison
        fails (the message gives both values).

    Examples
    --------
    >>> import statsmodels.formula.api as smf
    >>> import vctest
    >>> sleep = vctest.datasets.load("sleepstudy")
    >>> res = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    >>> m = vctest.from_statsmodels(res)
    >>> round(float(res.llf), 4), round(m.vctest_loglik_at_sm_estimates, 4), round(m.loglik, 4)
    (-871.8141, -871.8141, -871.8141)
    >>> m.notes
    ()
    """
    if reml is not None and not isinstance(reml, bool):
        raise TypeError(f"`reml` must be True, False or None; got {reml!r}.")
    model, result = _unwrap(model_or_result)
    t = translate(model_or_result)
    use_reml = t.reml if reml is None else reml
    fitted = vctest_fit(t.formula, t.data, reml=use_reml)
    blocks = t.design.blocks
    if fitted.theta_names != theta_layout([b.name for b in blocks],
                                          [b.column_names for b in blocks]).names:
        raise RuntimeError("vctest's refit of the translation has other parameters than "
                           "the translation's design; please report this.")
    offset = t.reml_offset if use_reml else 0.0
    psi_v, vcomp_v = sm_from_theta(t._re_map, t._sources, t._k_vc, fitted)
    sm_at_vc = sm_loglike(model, psi_v, vcomp_v, use_reml)
    if not _agree(fitted.loglik + offset, sm_at_vc):
        raise _mismatch("log-likelihood at vctest's estimates", fitted.loglik + offset,
                        sm_at_vc, t)
    notes = list(t.notes)
    sm_llf = vc_at_sm = None
    if result is not None:
        po = result.params_object
        psi_sm, vcomp_sm = np.asarray(po.cov_re, dtype=float), np.asarray(po.vcomp, dtype=float)
        theta_sm = theta_from_sm(t._re_map, t._sources, psi_sm, vcomp_sm)
        vc_at_sm = -0.5 * fitted.model.objective(theta_sm, use_reml)
        sm_llf = sm_loglike(model, psi_sm, vcomp_sm, use_reml)
        same = use_reml == bool(result.reml)
        if not same:
            asked = "REML" if use_reml else "ML"
            notes.append(f"statsmodels fitted by {result.method}; vctest fits by {asked} as "
                         f"asked, so statsmodels' {asked} log-likelihood at its "
                         f"{result.method} estimates is compared.")
        else:
            reported = reported_llf(result)
            if reported is not None and _agree(reported, sm_llf):
                sm_llf = reported
            else:
                now = "REML" if model.reml else "ML"
                notes.append(
                    "statsmodels computes result.llf lazily with the model's current "
                    f"criterion, and this model was refitted by {now} after this "
                    f"{result.method} fit, so result.llf {'would be' if reported is None else 'is'}"
                    f" wrong; the {result.method} log-likelihood {sm_llf:.6f} was recomputed."
                )
        if not _agree(vc_at_sm + offset, sm_llf):
            raise _mismatch("log-likelihood at statsmodels' estimates", vc_at_sm + offset,
                            sm_llf, t)
        notes += result_notes(result, fitted, theta_sm, sm_llf, offset, same)
    return StatsmodelsFit(fit=fitted, translation=t, sm_loglik=sm_llf,
                          vctest_loglik_at_sm_estimates=vc_at_sm,
                          sm_loglik_at_vctest_estimates=sm_at_vc, notes=tuple(notes))


def _agree(a: float, b: float) -> bool:
    return abs(a - b) <= LOGLIK_RTOL * max(abs(b), 1.0)


def _mismatch(what: str, a: float, b: float, t: Translation) -> ValueError:
    return ValueError(
        f"{what}: vctest gives {a:.10g}, statsmodels {b:.10g} (difference {a - b:.3g}, "
        f"tolerance {LOGLIK_RTOL:g} relative), so {t.formula!r} is not the statsmodels "
        "model. Please report this with the statsmodels call."
    )
