"""A model given as a fit or as a formula with data: its design, fit and family, once.

Shared by ``ranova``, ``anova`` and ``reduce``, which accept either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vctest._data import as_frame
from vctest.api._checks import check_family, offset_values
from vctest.formula.design import Design, build_design
from vctest.model.fit import LmmFit, fit_model
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmFit, fit_glmm
from vctest.model.lmm import LinearMixedModel


@dataclass(frozen=True, eq=False)
class ModelSource:
    """A model's design, its fit and how it was fitted."""

    design: Design
    fit: LmmFit | GlmmFit
    family: str
    link: str | None
    offset: np.ndarray | None
    reml: bool


def fit_design(design: Design, *, family: str = "gaussian", link: str | None = None,
               offset: np.ndarray | None = None, reml: bool = True) -> LmmFit | GlmmFit:
    """Fit a design with random effects (an LMM, or a GLMM by ``family``)."""
    if not design.blocks:
        raise ValueError(f"the model {design.formula.text!r} has no random-effects term such "
                         "as `(1 | group)`; give a mixed model.")
    if family != "gaussian":
        return fit_glmm(GeneralizedLinearMixedModel.from_design(design, family, link, offset))
    return fit_model(LinearMixedModel.from_design(design), reml=reml)


def model_source(model: Any, data: pd.DataFrame | str | None = None, *,
                 reml: bool | None = None, family: str = "gaussian", link: str | None = None,
                 offset: Any = None) -> ModelSource:
    """The :class:`ModelSource` of a fit from :func:`vctest.fit` or of a formula and data.

    A fit keeps its criterion unless ``reml`` asks for the other one (then
    it is refitted).  A formula is fitted by REML unless ``reml=False`` (an
    LMM), by maximum likelihood (a GLMM).
    """
    if reml is not None and not isinstance(reml, bool):
        raise TypeError(f"`reml` must be True, False or None; got {reml!r}.")
    if isinstance(model, LmmFit):
        if data is not None:
            raise TypeError("`data` must be omitted when the model is a fit; its own data "
                            "are used.")
        fit = model
        if reml is not None and reml != model.reml:
            fit = fit_model(model.model, reml=reml)
        return ModelSource(design=model.model.design, fit=fit, family="gaussian", link=None,
                           offset=None, reml=fit.reml)
    if isinstance(model, GlmmFit):
        if data is not None:
            raise TypeError("`data` must be omitted when the model is a fit; its own data "
                            "are used.")
        if reml:
            raise ValueError("GLMMs are fitted by maximum likelihood; use reml=None or False.")
        m = model.model
        offset = m.offset if np.any(m.offset != 0) else None
        return ModelSource(design=m.design, fit=model, family=m.family, link=m.link,
                           offset=offset, reml=False)
    if not isinstance(model, str):
        raise TypeError(f"the model must be a fit from vctest.fit or an lme4 formula string; "
                        f"got {type(model).__name__}.")
    if data is None:
        raise TypeError("`data` is required when the model is a formula string.")
    check_family(family, link, offset)
    frame = as_frame(data)
    design = build_design(model, frame)
    glmm = family != "gaussian"
    if glmm and reml:
        raise ValueError("GLMMs are fitted by maximum likelihood; use reml=None or False.")
    use_reml = False if glmm else (True if reml is None else reml)
    off = offset_values(offset, frame, design.row_index) if glmm else None
    fit = fit_design(design, family=family, link=link, offset=off, reml=use_reml)
    return ModelSource(design=design, fit=fit, family=family,
                       link=fit.model.link if glmm else None, offset=off, reml=use_reml)
