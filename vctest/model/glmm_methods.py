"""lme4's methods on a GLMM fit: fitted, residuals, ranef, predict, simulate, rePCA.

A mixin of :class:`vctest.model.glmm.GlmmFit` (kept apart so that module stays
small); the linear algebra is in :mod:`vctest.model.conditional`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd


class GlmmMethods:
    """Methods of a fitted GLMM that need only its model, theta, beta and modes u."""

    model: Any
    theta: np.ndarray
    beta: pd.Series
    u: np.ndarray

    @cached_property
    def _conditional(self) -> Any:
        from vctest.model.conditional import glmm_conditional

        return glmm_conditional(self.model, self.theta, self.beta.to_numpy(), self.u)

    def fitted(self) -> np.ndarray:
        """Fitted means ``g^{-1}(offset + X beta + Z b~)`` (lme4's ``fitted``)."""
        from vctest.model.conditional import inverse_link

        return inverse_link(self.model, self.predict(type="link"))

    def residuals(self, type: str = "deviance") -> np.ndarray:
        """Residuals as lme4's ``residuals.merMod``: ``"deviance"`` (default),
        ``"pearson"`` or ``"response"``."""
        from vctest.model.conditional import glmm_residuals

        if type not in ("deviance", "pearson", "response"):
            raise ValueError("`type` must be 'deviance', 'pearson' or 'response'; got "
                             f"{type!r}.")
        return glmm_residuals(self.model, self.fitted(), type)

    def ranef(self, condvar: bool = True) -> dict[str, pd.DataFrame]:
        """Conditional modes (and covariances in ``frame.attrs["condvar"]``), as
        :meth:`vctest.LmmFit.ranef` (lme4's ``ranef(m, condVar = TRUE)``)."""
        from vctest.model.conditional import ranef_frames

        frames = ranef_frames(self.model.design, self._conditional)
        if not condvar:
            for frame in frames.values():
                frame.attrs.pop("condvar", None)
        return frames

    def predict(self, newdata: pd.DataFrame | None = None, *, re_form: Any = None,
                allow_new_levels: bool = False, type: str = "link",
                ) -> np.ndarray:
        """Predictions as lme4's ``predict.merMod`` (``type="link"`` or ``"response"``).

        ``re_form`` and ``allow_new_levels`` as for :meth:`vctest.LmmFit.predict`.
        On the fit's rows the offset is included; ``newdata`` is refused for a
        model with an offset (give the offset-free prediction and add it).
        """
        from vctest.model.conditional import inverse_link, predict_linear

        if type not in ("link", "response"):
            raise ValueError(f"`type` must be 'link' or 'response'; got {type!r}.")
        if not isinstance(allow_new_levels, bool):
            raise TypeError("`allow_new_levels` must be True or False.")
        has_offset = bool(np.any(self.model.offset != 0))
        if newdata is not None and has_offset:
            raise ValueError("predict with `newdata` is not available for a GLMM with an "
                             "offset; predict without it and add the new rows' offset to "
                             "the link-scale prediction.")
        eta = predict_linear(self.model.design, self.beta.to_numpy(), self._conditional.b,
                             newdata, re_form, allow_new_levels)
        if newdata is None:
            eta = eta + self.model.offset
        if type == "response":
            ok = np.isfinite(eta)
            out = np.full(eta.size, np.nan)
            out[ok] = inverse_link(self.model, eta[ok])
            return out
        return eta

    def simulate(self, nsim: int = 1, seed: Any = None) -> np.ndarray:
        """``nsim`` responses from the fitted model (new random effects), shape (n, nsim).

        Proportions for a binomial model with trials (the trials are the
        weights), counts for Poisson; same seed, same draws.
        """
        from vctest._rng import seed_sequence

        if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
            raise ValueError(f"`nsim` must be a positive integer; got {nsim!r}.")
        rng = np.random.default_rng(seed_sequence(seed))
        beta = self.beta.to_numpy()
        return np.column_stack([self.model.simulate(self.theta, beta, rng)
                                for _ in range(int(nsim))])

    def rePCA(self) -> dict[str, pd.DataFrame]:
        """Principal components of each grouping factor's random-effects covariance
        (lme4's ``rePCA``; see :meth:`vctest.LmmFit.rePCA`)."""
        from vctest.model.conditional import repca

        return repca(self)
