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
                offset: str | Any = None) -> np.ndarray:
        """Predictions as lme4's ``predict.merMod`` (``type="link"`` or ``"response"``).

        ``re_form`` and ``allow_new_levels`` as for :meth:`vctest.LmmFit.predict`.
        The offset is included, as lme4 does for an offset in its formula
        (``+ offset(logsize)``): on the fit's rows the fit's offset; on
        ``newdata`` the offset evaluated on the new rows -- the
        fit's offset column read from ``newdata`` (a fit with
        ``offset="logsize"``), or ``offset=`` given here (a column of
        ``newdata`` or one value per new row; required when the fit's offset
        was given as values).  (lme4 drops an offset given as glmer's
        ``offset =`` argument from ``predict(newdata)``, lme4 issue #447;
        ``validation/r/glmm_predict_offset.R`` records both.)

        Raises
        ------
        ValueError
            ``newdata`` without the offset column, an ``offset`` of the wrong
            length, or ``offset`` for a model without one or without ``newdata``.

        Examples
        --------
        >>> import numpy as np, vctest
        >>> cb = vctest.datasets.load("cbpp").assign(logsize=lambda d: np.log(d["size"]))
        >>> g = vctest.fit("incidence ~ period + (1 | herd)", cb, family="poisson",
        ...                offset="logsize")
        >>> new = cb.iloc[:2].assign(logsize=np.log([10.0, 20.0]))
        >>> bool(np.isclose(np.diff(g.predict(new, re_form=False) - np.log([10.0, 20.0]))[0],
        ...                 g.beta["period2"]))
        True
        """
        from vctest.model.conditional import inverse_link, predict_linear

        if type not in ("link", "response"):
            raise ValueError(f"`type` must be 'link' or 'response'; got {type!r}.")
        if not isinstance(allow_new_levels, bool):
            raise TypeError("`allow_new_levels` must be True or False.")
        eta = predict_linear(self.model.design, self.beta.to_numpy(), self._conditional.b,
                             newdata, re_form, allow_new_levels)
        eta = eta + self._prediction_offset(newdata, offset)
        if type == "response":
            ok = np.isfinite(eta)
            out = np.full(eta.size, np.nan)
            out[ok] = inverse_link(self.model, eta[ok])
            return out
        return eta

    def _prediction_offset(self, newdata: pd.DataFrame | None, offset: Any) -> np.ndarray | float:
        """The offset on the rows predicted (lme4 evaluates it on ``newdata``)."""
        has_offset = bool(np.any(self.model.offset != 0)) or self.model.offset_column is not None
        if offset is not None and not has_offset:
            raise ValueError("`offset` was given, but the model was fitted without one; "
                             "drop `offset`.")
        if newdata is None:
            if offset is not None:
                raise ValueError("`offset` applies to `newdata`; on the fit's rows the fit's "
                                 "offset is used.")
            return self.model.offset
        if not has_offset:
            return 0.0
        column = offset if isinstance(offset, str) else (
            self.model.offset_column if offset is None else None)
        if column is not None:
            if column not in newdata.columns:
                raise ValueError(f"`newdata` has no column {column!r}, the model's offset; add "
                                 "it (lme4 evaluates the offset on the new rows).")
            values = pd.to_numeric(newdata[column], errors="coerce").to_numpy(dtype=float)
        elif offset is None:
            raise ValueError("the model's offset was given as values, which cannot be "
                             "evaluated on new rows; pass `offset=` to predict (a column of "
                             "`newdata` or one value per new row), or fit with "
                             "offset='<column>'.")
        else:
            try:
                values = np.asarray(offset, dtype=float).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise TypeError("`offset` must be a column name of `newdata` or numeric "
                                f"values; got {type(offset).__name__}.") from exc
        if values.size != len(newdata):
            raise ValueError(f"`offset` must have one value per row of `newdata` "
                             f"({len(newdata)}); got {values.size}.")
        return values

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
