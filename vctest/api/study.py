"""Study designs: a model to simulate from, made from scratch or from a fit, and extended.

:func:`design_frame` lays out a design (crossed or nested factors, covariate
values or generators); :func:`make_model` puts a formula and parameter values
on it (lme4's fixed effects, variance components or theta, sigma, family and
link), as simr's ``makeLmer``/``makeGlmer``, or takes them from a fitted
model; :func:`extend` gives a model more levels of a factor or more rows per
level, as simr's ``extend``.  :func:`vctest.power_curve` simulates from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from vctest._rng import SeedLike, seed_sequence
from vctest.api._checks import check_family
from vctest.formula.design import Design, build_design
from vctest.formula.parse import parse_formula


def design_frame(levels: Mapping[str, int | Sequence[Any]], *, nested: Sequence[str] = (),
                 covariates: Mapping[str, Any] | None = None,
                 seed: SeedLike = None) -> pd.DataFrame:
    """A study design as a DataFrame: every combination of the ``levels``, one row each.

    Parameters
    ----------
    levels : mapping of name to int or sequence
        In order, the first varying slowest.  An integer ``K`` makes a factor
        with levels ``name1 .. nameK``; a sequence gives the values (numbers
        make a covariate, such as ``Days=range(10)``).
    nested : sequence of str, optional
        Factors nested in the ones before them: their labels are made unique
        within each combination of the earlier factors (``"school2:class1"``),
        so ``(1 | class)`` means classes within schools.
    covariates : mapping of name to value, array or callable, optional
        Further columns: a scalar, one value per row, or a generator
        ``f(rng, frame)`` returning one value per row (drawn once, from
        ``seed``).
    seed : int, SeedSequence or Generator, optional
        For the covariate generators.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import vctest
    >>> d = vctest.design_frame({"Subject": 3, "Days": range(2)},
    ...                         covariates={"age": lambda rng, f: rng.integers(20, 60, len(f))},
    ...                         seed=1)
    >>> d.shape, list(d.Subject[:3])
    ((6, 3), ['Subject1', 'Subject1', 'Subject2'])
    """
    if not isinstance(levels, Mapping) or not levels:
        raise TypeError("`levels` must be a non-empty dict of factor name to a number of "
                        "levels or a sequence of values, e.g. {'Subject': 18, 'Days': range(10)}.")
    values: dict[str, list[Any]] = {}
    for name, spec in levels.items():
        if isinstance(spec, bool) or not isinstance(spec, int | np.integer | Sequence | range
                                                     | np.ndarray):
            raise TypeError(f"`levels[{name!r}]` must be a number of levels or a sequence of "
                            f"values; got {type(spec).__name__}.")
        if isinstance(spec, int | np.integer):
            if spec < 1:
                raise ValueError(f"`levels[{name!r}]` must be at least 1; got {spec}.")
            values[name] = [f"{name}{j + 1}" for j in range(int(spec))]
        else:
            values[name] = list(spec)
            if not values[name]:
                raise ValueError(f"`levels[{name!r}]` is empty.")
    unknown = [n for n in nested if n not in values]
    if unknown or (nested and list(values).index(nested[0]) == 0):
        raise ValueError(f"`nested` must name factors of `levels` after the first; got "
                         f"{list(nested)!r}.")
    frame = pd.DataFrame(list(itertools.product(*values.values())), columns=list(values))
    names = list(values)
    for name in nested:
        outer = names[: names.index(name)]
        frame[name] = frame[[*outer, name]].astype(str).agg(":".join, axis=1)
    rng = np.random.default_rng(seed_sequence(seed))
    for name, spec in (covariates or {}).items():
        col = spec(rng, frame) if callable(spec) else spec
        arr = np.asarray(col)
        if arr.ndim == 0:
            arr = np.repeat(arr, len(frame))
        if arr.shape != (len(frame),):
            raise ValueError(f"covariate {name!r} must give one value per row ({len(frame)}); "
                             f"got shape {arr.shape}.")
        frame[name] = arr
    return frame


@dataclass(frozen=True, eq=False)
class StudyModel:
    """A mixed model with known parameters, to simulate data sets from.

    Attributes
    ----------
    formula : str
    frame : pandas.DataFrame
        The design (the response column may hold a placeholder).
    beta : dict
        Fixed effects by column name (R's names, e.g. ``"(Intercept)"``, ``"Days"``).
    theta : ndarray
        lme4's theta (relative covariance factors, in the order of
        ``design().blocks``; relative to sigma for an LMM).
    sigma : float
        Residual standard deviation (1 for binomial and Poisson).
    family : str
    link : str or None
    weights : str or None
        Column of binomial trials or Gaussian prior weights.
    """

    formula: str
    frame: pd.DataFrame
    beta: dict[str, float]
    theta: np.ndarray
    sigma: float
    family: str = "gaussian"
    link: str | None = None
    weights: str | None = None

    def design(self, frame: pd.DataFrame | None = None) -> Design:
        """The numeric design on ``frame`` (default: the model's own)."""
        return build_design(self.formula, self.frame if frame is None else frame,
                            weights=self.weights)

    def beta_for(self, design: Design) -> np.ndarray:
        """The fixed effects in ``design``'s column order."""
        return np.array([self.beta[name] for name in design.fixed_names])

    def with_frame(self, frame: pd.DataFrame) -> StudyModel:
        """The same model on another design."""
        return replace(self, frame=frame)

    def __repr__(self) -> str:
        beta = ", ".join(f"{k}={v:g}" for k, v in self.beta.items())
        return (f"StudyModel({self.formula!r}, {len(self.frame)} rows, {self.family}; "
                f"beta: {beta}; theta: {np.round(self.theta, 4).tolist()}; "
                f"sigma: {self.sigma:g})")


def _placeholder(formula: str, frame: pd.DataFrame, family: str) -> pd.DataFrame:
    """``frame`` with a placeholder response column when the response is missing."""
    response = parse_formula(formula).response
    if response.kind == "column" and response.parts[0] not in frame.columns:
        rng = np.random.default_rng(0)
        n = len(frame)
        frame = frame.copy()
        frame[response.parts[0]] = (rng.standard_normal(n) if family == "gaussian" else
                                    np.arange(n) % 2 if family == "binomial"
                                    else rng.poisson(2.0, n))
        return frame
    if response.kind != "column":
        needed = [p for p in response.parts if p not in frame.columns]
        if needed and all(p.isidentifier() for p in response.parts):
            raise ValueError(
                f"the response {response.text!r} names columns the design lacks "
                f"({', '.join(needed)}); give a plain response name (a binomial response "
                "of proportions with `weights=` the trials) or add the columns.")
    return frame


def _theta_from_varcorr(design: Design, varcorr: Mapping[str, Any], sigma: float,
                        gaussian: bool) -> np.ndarray:
    """lme4's theta from covariance matrices keyed by term label or grouping factor."""
    out = []
    labels = [b.term.label for b in design.blocks]
    for blk in design.blocks:
        keys = [blk.term.label, blk.name]
        key = next((k for k in keys if k in varcorr), None)
        if key is None or (key == blk.name and sum(b.name == blk.name
                                                   for b in design.blocks) > 1):
            raise ValueError(f"`varcorr` has no entry for the term {blk.term.label}; key it by "
                             f"term ({', '.join(labels)}) or by a grouping factor used once.")
        cov = np.atleast_2d(np.asarray(varcorr[key], dtype=float))
        if cov.shape != (blk.k, blk.k) or not np.allclose(cov, cov.T):
            raise ValueError(f"`varcorr[{key!r}]` must be a symmetric {blk.k} x {blk.k} "
                             f"covariance matrix (columns {', '.join(blk.column_names)}); "
                             f"got shape {cov.shape}.")
        if blk.k == 1:
            if cov[0, 0] < 0:
                raise ValueError(f"`varcorr[{key!r}]` is a variance; it must be >= 0.")
            factor = np.sqrt(cov)
        else:
            try:
                factor = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                raise ValueError(f"`varcorr[{key!r}]` must be positive definite; for a "
                                 "singular covariance give `theta=` instead.") from None
        factor = factor / sigma if gaussian else factor
        out.extend(factor[r, c] for c in range(blk.k) for r in range(c, blk.k))
    return np.asarray(out, dtype=float)


def make_model(formula: Any, design: pd.DataFrame | None = None, *,
               fixef: Mapping[str, float] | Sequence[float] | None = None,
               varcorr: Mapping[str, Any] | None = None, theta: Sequence[float] | None = None,
               sigma: float = 1.0, family: str = "gaussian", link: str | None = None,
               weights: str | None = None) -> StudyModel:
    """A model with known parameters on a design (simr's ``makeLmer``/``makeGlmer``).

    Parameters
    ----------
    formula : str or fitted model
        An lme4 formula; or a fit of :func:`vctest.fit` (its formula, data and
        estimates; the other arguments must then be omitted).
    design : pandas.DataFrame
        The design (see :func:`design_frame`); a missing response column is
        filled with a placeholder (only the design matters).
    fixef : dict or sequence of float
        Fixed effects by R's column name, or in the design's column order.
    varcorr : dict, optional
        Covariance of each random-effects term, keyed by term label
        (``"(1 | Subject)"``) or grouping factor: a variance for one column, a
        matrix for several (data units; linear-predictor units for a GLMM).
    theta : sequence of float, optional
        lme4's theta instead of ``varcorr``.
    sigma : float, default 1
        Residual standard deviation (Gaussian).
    family, link, weights
        As for :func:`vctest.fit`.

    Returns
    -------
    StudyModel

    Examples
    --------
    >>> import vctest
    >>> d = vctest.design_frame({"Subject": 10, "Days": range(5)})
    >>> m = vctest.make_model("y ~ Days + (1 | Subject) + (0 + Days | Subject)", d,
    ...                       fixef={"(Intercept)": 250, "Days": 10},
    ...                       varcorr={"(1 | Subject)": 600, "(0 + Days | Subject)": 25},
    ...                       sigma=25)
    >>> m.theta.round(3).tolist()
    [0.98, 0.2]
    """
    if not isinstance(formula, str):
        if any(v is not None for v in (design, fixef, varcorr, theta)):
            raise TypeError("make_model(fit) takes its design and parameters from the fit; "
                            "pass either a fit or a formula with `design` and `fixef`.")
        return _from_fit(formula)
    check_family(family, link, None)
    if not isinstance(design, pd.DataFrame):
        raise TypeError("`design` must be a pandas DataFrame (see vctest.design_frame).")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"`sigma` must be a positive number; got {sigma!r}.")
    frame = _placeholder(formula, design, family)
    d = build_design(formula, frame, weights=weights)
    names = list(d.fixed_names)
    if fixef is None:
        raise ValueError(f"`fixef` is required: one value for each of {names}.")
    if isinstance(fixef, Mapping):
        missing, extra = set(names) - set(fixef), set(fixef) - set(names)
        if missing or extra:
            raise ValueError(f"`fixef` must name exactly the fixed-effect columns {names}; "
                             f"missing {sorted(missing)}, unknown {sorted(extra)}.")
        beta = {k: float(fixef[k]) for k in names}
    else:
        vals = np.asarray(fixef, dtype=float).ravel()
        if vals.size != len(names):
            raise ValueError(f"`fixef` must have {len(names)} values ({names}); got "
                             f"{vals.size}.")
        beta = dict(zip(names, vals.tolist(), strict=True))
    gaussian = family == "gaussian"
    if (varcorr is None) == (theta is None):
        raise ValueError("give exactly one of `varcorr` (covariances by term) and `theta` "
                         "(lme4's relative factors).")
    if theta is not None:
        th = np.asarray(theta, dtype=float).ravel()
        size = sum(b.k * (b.k + 1) // 2 for b in d.blocks)
        if th.size != size:
            raise ValueError(f"`theta` must have {size} values for the terms "
                             f"{[b.term.label for b in d.blocks]}; got {th.size}.")
    else:
        th = _theta_from_varcorr(d, varcorr, sigma, gaussian)  # type: ignore[arg-type]
    if not np.all(np.isfinite(th)) or not np.all(np.isfinite(list(beta.values()))):
        raise ValueError("`fixef`, `varcorr` and `theta` must be finite.")
    return StudyModel(formula=formula, frame=frame, beta=beta, theta=th,
                      sigma=float(sigma) if gaussian else 1.0, family=family, link=link,
                      weights=weights)


def _from_fit(fit: Any) -> StudyModel:
    """A fitted LMM or GLMM as a :class:`StudyModel` (its estimates as the truth)."""
    model = getattr(fit, "model", None)
    design = getattr(model, "design", None)
    if design is None or design.frame is None or not hasattr(fit, "theta"):
        raise TypeError("make_model() takes a formula or a mixed-model fit of vctest.fit; "
                        f"got {type(fit).__name__}.")
    if design.prior_weights is not None:
        raise ValueError("make_model(fit) of a fit with prior weights is not supported; "
                         "build the model with make_model(formula, design, weights=...).")
    frame = design.frame.reset_index(drop=True)
    family = getattr(model, "family", "gaussian")
    beta = dict(zip(design.fixed_names, np.asarray(fit.beta, float).tolist(), strict=True))
    return StudyModel(formula=design.formula.text, frame=frame, beta=beta,
                      theta=np.asarray(fit.theta, float).copy(),
                      sigma=float(getattr(fit, "sigma", 1.0)) if family == "gaussian" else 1.0,
                      family=family, link=getattr(model, "link", None))


def extend_frame(frame: pd.DataFrame, *, along: str | None = None, within: str | None = None,
                 n: int) -> pd.DataFrame:
    """``frame`` with ``n`` levels of ``along``, or ``n`` rows per level of ``within``.

    ``along``: the rows of level ``j`` are those of existing level ``j mod K``
    (in order of appearance), under a new label ``along + str(j + 1)`` for
    ``j >= K``; fewer levels than the frame has keep the first ``n``.
    ``within``: each level's rows are repeated in order (or cut) to ``n`` rows.
    """
    if (along is None) == (within is None):
        raise ValueError("give exactly one of `along` (more levels of a factor) and "
                         "`within` (more rows per level).")
    name = along if along is not None else within
    if name not in frame.columns:
        raise ValueError(f"{'`along`' if along else '`within`'} names {name!r}, not a column "
                         f"of the design ({', '.join(map(str, frame.columns))}).")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"sizes must be positive integers; got {n!r}.")
    codes, uniques = pd.factorize(frame[name], sort=False)
    groups = [np.flatnonzero(codes == g) for g in range(len(uniques))]
    if within is not None:
        rows = np.concatenate([np.resize(g, int(n)) for g in groups])
        return frame.iloc[rows].reset_index(drop=True)
    K = len(uniques)
    parts = []
    for j in range(int(n)):
        part = frame.iloc[groups[j % K]].copy()
        if j >= K:
            part[name] = f"{name}{j + 1}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def extend(model: StudyModel, *, along: str | None = None, within: str | None = None,
           n: int) -> StudyModel:
    """The model on a larger (or smaller) design (simr's ``extend``).

    ``along``: ``n`` levels of that factor; the rows of level ``j`` are those of
    existing level ``j mod K`` (in order of appearance) under a new label
    ``along + str(j + 1)`` for ``j >= K``; fewer levels than the design has
    keep the first ``n``.  ``within``: each level's rows are repeated in order
    (or cut) to ``n`` rows.  The parameters are unchanged.

    Examples
    --------
    >>> import vctest
    >>> d = vctest.design_frame({"Subject": 4, "Days": range(3)})
    >>> m = vctest.make_model("y ~ Days + (1 | Subject)", d, fixef=[1, 0.5],
    ...                       varcorr={"Subject": 1.0})
    >>> vctest.extend(m, along="Subject", n=10).frame.Subject.nunique()
    10
    """
    if not isinstance(model, StudyModel):
        raise TypeError(f"`model` must be a StudyModel (vctest.make_model); got "
                        f"{type(model).__name__}.")
    return model.with_frame(extend_frame(model.frame, along=along, within=within, n=n))

