"""Fitting a linear mixed model: optimiser paths, boundary snapping, the Fit record.

One path: minimise the profiled objective over theta with the engine
(:func:`vctest.kernels.engine.fit_model`: projected quasi-Newton search, edge
restarts, and a snap of parameters within 1e-5 of their bound onto it when
that does not raise the objective), then diagnose the optimum
(:func:`vctest.diagnostics.diagnose`).  SciPy's bounded
methods (``"L-BFGS-B"``, ``"Powell"``, ``"Nelder-Mead"``) are available by name
as second opinions; they are what the kernel is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from vctest._tables import FitViews
from vctest.diagnostics import FitDiagnostics
from vctest.kernels.optimize import BOUNDARY_SNAP, EDGE_PROBE
from vctest.kernels.types import STATUS_TEXT
from vctest.model.lmm import LinearMixedModel
from vctest.model.structure import below_diagonals, settings
from vctest.model.terms import varcorr_rows

OPTIMIZERS = ("bfgs", "L-BFGS-B", "Powell", "Nelder-Mead")

#: Restarts allowed when the optimum sits on a bound the objective falls away from.
MAX_EDGE_RESTARTS = 3



@dataclass(frozen=True)
class OptimizerSettings:
    """Tolerances of the default optimiser (recorded with every fit)."""

    maxiter: int = 500
    gtol: float = 1e-9
    ftol: float = 1e-13
    xtol: float = 1e-8

    def kernel(self, *, parallel: bool = False) -> Any:
        """The engine's :class:`~vctest.kernels.types.Settings` (edge restarts included)."""
        return settings(maxiter=self.maxiter, gtol=self.gtol, ftol=self.ftol, xtol=self.xtol,
                        restarts=MAX_EDGE_RESTARTS, parallel=parallel)


@dataclass(frozen=True, eq=False, repr=False)
class LmmFit(FitViews):
    """A fitted linear mixed model (frozen).

    Attributes
    ----------
    model : LinearMixedModel
        The model that was fitted: design, data and the engine's structure.
    reml : bool
        True for REML, False for maximum likelihood.
    theta : ndarray
        Relative covariance parameters (lme4's ``getME(m, "theta")``).
    beta : pandas.Series
        Fixed effects, named.
    beta_se : pandas.Series
        Standard errors of the fixed effects (computed on first access from
        the factor of the fit's last evaluation).
    sigma : float
        Residual standard deviation.
    objective : float
        REML criterion or ML deviance at the optimum (lme4's ``REMLcrit`` /
        ``deviance``).
    n_evals : int
        Objective evaluations used by the optimiser.
    optimizer : str
        The optimiser used (``"bfgs"``, vctest's kernel, or a SciPy method).
    optimizer_message : str
        Why the optimiser stopped, in its words.
    optimizer_ok : bool
        The optimiser reported a normal stop (see ``converged`` for the verdict).
    settings : OptimizerSettings
        Its tolerances (recorded with every fit).
    """

    model: LinearMixedModel
    reml: bool
    theta: np.ndarray
    beta: pd.Series
    sigma: float
    objective: float
    n_evals: int
    optimizer: str
    optimizer_message: str
    optimizer_ok: bool
    settings: OptimizerSettings = field(default_factory=OptimizerSettings)
    #: ``(R_X' of the fit's last evaluation, sigma of the fit)``: what ``beta_se`` needs
    #: (None: evaluate at ``theta`` again, the same numbers)
    _se_from: tuple[np.ndarray, float] | None = field(default=None, repr=False)

    @cached_property
    def beta_se(self) -> pd.Series:
        """Standard errors of the fixed effects (computed on first access: a fit does not
        need them)."""
        lxx, sigma = self._se_from or (self.model.solution(self.theta, self.reml).lxx,
                                       self.sigma)
        vcov = self.model.beta_covariance(lxx)
        return pd.Series(sigma * np.sqrt(np.diag(vcov)),
                         index=list(self.model.design.fixed_names), name="se")

    @cached_property
    def diagnostics(self) -> FitDiagnostics:
        """Gradient, Hessian, boundary status and the convergence verdict.

        Computed on first access (finite differences cost O(d^2) objective
        evaluations), so that refits in a loop stay fast.
        """
        return self.model.diagnostics_at(self.theta, self.reml)

    @property
    def loglik(self) -> float:
        """Log-likelihood as lme4's ``logLik``: the restricted one for REML fits."""
        return -0.5 * self.objective

    @property
    def theta_names(self) -> tuple[str, ...]:
        """lme4-style names of theta."""
        return self.model.layout.names

    @property
    def singular(self) -> bool:
        """A variance parameter is within 1e-4 of its bound (lme4's ``isSingular``).

        Measured in units of the parameter's random-effect column
        (``theta * model.theta_scale``), so a covariate's units do not matter;
        for intercepts this is lme4's rule.
        """
        return bool(self.model.layout.singular(self.theta, self.model.theta_scale))

    @property
    def converged(self) -> bool:
        """The optimiser stopped normally and the boundary-aware check passed."""
        return bool(self.optimizer_ok and self.diagnostics.converged)

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return self.model.n

    @property
    def df(self) -> int:
        """Number of parameters (fixed effects, theta and sigma), as logLik's df."""
        return self.model.p + self.theta.size + 1

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as lme4's ``as.data.frame(VarCorr(m))``."""
        return pd.DataFrame(varcorr_rows(self.model.layout, self.theta, self.sigma))

    def refit(self, y: np.ndarray, *, start: np.ndarray | None = None) -> LmmFit:
        """Fit the same model to a new response, reusing the workspace.

        Parameters
        ----------
        y : array_like, shape (n,)
            New response values, in the order of the rows used by the fit.
        start : array_like, optional
            Starting theta; defaults to this fit's estimate (a warm start).

        Examples
        --------
        >>> import numpy as np, vctest
        >>> m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
        >>> y = m.model.design.y
        >>> m2 = m.refit(y + np.random.default_rng(1).normal(0, 10, y.size))
        >>> m2.converged, m2.model.n == m.model.n
        (True, True)
        >>> bool(np.allclose(m.refit(y).theta, m.theta, atol=1e-5))
        True
        """
        model = self.model.with_response(np.asarray(y, dtype=float))
        return fit_model(model, reml=self.reml, start=self.theta if start is None else start,
                         optimizer=self.optimizer, settings=self.settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the fit."""
        vc = self.varcorr.astype(object).where(self.varcorr.notna(), None)
        return {
            "formula": self.model.design.formula.text,
            "reml": self.reml,
            "nobs": self.nobs,
            "loglik": self.loglik,
            "objective": self.objective,
            "objective_name": "REML criterion" if self.reml else "deviance",
            "theta": dict(zip(self.theta_names, map(float, self.theta), strict=True)),
            "beta": {k: float(v) for k, v in self.beta.items()},
            "beta_se": {k: float(v) for k, v in self.beta_se.items()},
            "sigma": self.sigma,
            "varcorr": vc.to_dict(orient="records"),
            "singular": self.singular,
            "converged": self.converged,
            "optimizer": self.optimizer,
            "optimizer_message": self.optimizer_message,
            "n_evals": self.n_evals,
            "diagnostics": self.diagnostics.to_dict(),
        }

    def coef_table(self) -> pd.DataFrame:
        """Fixed effects as a DataFrame: Estimate, Std. Error, t value."""
        from vctest._tables import coef_table

        return coef_table(self)

    # --- model methods (lme4's fitted, residuals, ranef, predict, simulate, AIC, BIC) ---
    # The linear algebra is in vctest.model.conditional.

    @property
    def aic(self) -> float:
        """Akaike's criterion ``-2 logLik + 2 df`` (lme4's ``AIC``; REML logLik for REML fits)."""
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        """Schwarz's criterion ``-2 logLik + log(n) df`` (lme4's ``BIC``)."""
        return -2.0 * self.loglik + math.log(self.nobs) * self.df

    @cached_property
    def _conditional(self) -> Any:
        from vctest.model.conditional import lmm_conditional

        return lmm_conditional(self)

    def fitted(self) -> np.ndarray:
        """``X beta + Z b~`` on the rows used (lme4's ``fitted``)."""
        return self.model.design.X @ self.beta.to_numpy() + self._conditional.zb

    def residuals(self) -> np.ndarray:
        """Response minus :meth:`fitted` (lme4's ``residuals``, type "response")."""
        return self.model.design.y - self.fitted()

    def ranef(self, condvar: bool = True) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one frame per grouping factor.

        As lme4's ``ranef(m, condVar = TRUE)``: rows are the factor's levels,
        columns the terms' columns; ``frame.attrs["condvar"]`` holds, per term
        on that factor, the conditional covariances as an array (levels, k, k)
        (lme4's ``postVar``).

        Examples
        --------
        >>> import vctest
        >>> m = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff")
        >>> re = m.ranef()["Batch"]
        >>> round(float(re.loc["A", "(Intercept)"]), 3)   # lme4: -17.607
        -17.607
        >>> round(float(re.attrs["condvar"][0][0, 0, 0]), 2)   # lme4's postVar: 383.63
        383.63
        """
        from vctest.model.conditional import ranef_frames

        cond = self._conditional
        frames = ranef_frames(self.model.design, cond)
        if not condvar:
            for frame in frames.values():
                frame.attrs.pop("condvar", None)
        return frames

    def predict(self, newdata: pd.DataFrame | None = None, *, re_form: Any = None,
                allow_new_levels: bool = False) -> np.ndarray:
        """Predictions as lme4's ``predict.merMod``.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            New rows (default: the rows of the fit).  Columns the model's
            response uses may be absent.  A row with a missing value predicts NaN.
        re_form : None, str or False
            Random effects to include: None (all), a formula such as
            ``"~ (1 | plate)"`` (those terms), or ``"~0"`` / False (none: the
            population level, lme4's ``re.form = NA``).
        allow_new_levels : bool, default False
            A level the fit has not seen predicts with its random effect 0 (as
            lme4's ``allow.new.levels = TRUE``); otherwise it is an error.

        Examples
        --------
        >>> import pandas as pd, vctest
        >>> m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
        >>> new = pd.DataFrame({"Days": [0.0, 9.0], "Subject": ["308", "new"]})
        >>> m.predict(new, allow_new_levels=True).round(3).tolist()   # lme4's predict
        [253.664, 345.611]
        """
        from vctest.model.conditional import predict_lmm

        if not isinstance(allow_new_levels, bool):
            raise TypeError("`allow_new_levels` must be True or False.")
        return predict_lmm(self, newdata, re_form, allow_new_levels)

    def simulate(self, nsim: int = 1, seed: Any = None) -> np.ndarray:
        """``nsim`` responses from the fitted model (new random effects), shape (n, nsim).

        As lme4's ``simulate(m, nsim, seed)`` (unconditional on the random
        effects); same seed, same draws (not R's numbers: another generator).
        """
        from vctest._rng import seed_sequence
        from vctest.model.conditional import simulate_lmm

        if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
            raise ValueError(f"`nsim` must be a positive integer; got {nsim!r}.")
        rng = np.random.default_rng(seed_sequence(seed))
        return simulate_lmm(self, int(nsim), rng)

    def confint(self, method: str = "profile", level: float = 0.95, *, nsim: int = 500,
                seed: Any = None) -> pd.DataFrame:
        """Confidence intervals of every variance parameter and fixed effect (lme4's ``confint``).

        Rows as lme4's: ``.sig01``, ... (standard deviations and correlations of
        each term, in theta's order), ``.sigma``, then the fixed effects.

        Parameters
        ----------
        method : {"profile", "wald", "bootstrap"}
            ``"profile"``: where the signed square root of the ML deviance,
            profiled over the other parameters, reaches the normal quantile
            (lme4 profiles the ML deviance for REML fits too; a bound -- 0 for a
            standard deviation, +-1 for a correlation -- when it is not
            reached).  ``"wald"``: estimate +- z SE for the fixed effects (NaN
            for the variance parameters, as lme4).  ``"bootstrap"``:
            percentiles over ``nsim`` parametric bootstrap refits.
        level : float, default 0.95
        nsim : int, default 500
            Bootstrap replicates (``method="bootstrap"``).
        seed : int, SeedSequence or None
            Bootstrap seed.

        Examples
        --------
        >>> import vctest
        >>> m = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff")
        >>> m.confint().round(2)   # lme4: 12.20 84.06 / 38.23 67.66 / 1486.45 1568.55
                       2.5 %   97.5 %
        .sig01         12.20    84.06
        .sigma         38.23    67.66
        (Intercept)  1486.45  1568.55
        """
        from vctest.model import profile

        if not (isinstance(level, float) and 0 < level < 1):
            raise ValueError(f"`level` must be a float in (0, 1); got {level!r}.")
        if method == "profile":
            ml = self if not self.reml else fit_model(self.model, reml=False, start=self.theta)
            return profile.profile_confint(ml, level)
        if method == "wald":
            return profile.wald_confint(self, level)
        if method == "bootstrap":
            from vctest._rng import seed_sequence

            if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 2:
                raise ValueError(f"`nsim` must be an integer of at least 2; got {nsim!r}.")
            rng = np.random.default_rng(seed_sequence(seed))
            frame, failed = profile.bootstrap_confint(self, level, int(nsim), rng)
            frame.attrs["n_failed"] = failed
            return frame
        raise ValueError(f"`method` must be 'profile', 'wald' or 'bootstrap'; got {method!r}.")

    def rePCA(self) -> dict[str, pd.DataFrame]:
        """Principal components of each grouping factor's random-effects covariance.

        As lme4's ``rePCA``: per grouping factor, the standard deviations
        (relative to sigma) of the principal directions and the proportion of
        variance; a proportion near 0 is a direction the data do not support.

        Examples
        --------
        >>> import vctest
        >>> m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
        >>> m.rePCA()["Subject"]["proportion"].round(4).tolist()   # lme4: 0.9461, 0.0539
        [0.9461, 0.0539]
        """
        from vctest.model.conditional import repca

        return repca(self)

    def summary(self, max_rows: int | None = None) -> str:
        """An lme4-like text summary.

        Parameters
        ----------
        max_rows : int, optional
            Most rows of each table (all by default); the repr uses 12.

        Examples
        --------
        >>> import vctest
        >>> m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
        >>> print(m.summary())  # doctest: +ELLIPSIS
        Linear mixed model fit by REML (vctest)
        Formula: Reaction ~ Days + (Days | Subject)
          REML criterion at convergence: 1743.6283   logLik: -871.8141   df: 6
        ...
        Number of obs: 180, groups: Subject, 18
        ...
        Converged.
        """
        from vctest._tables import clip_rows, groups_line

        kind = "REML" if self.reml else "maximum likelihood"
        lines = [
            f"Linear mixed model fit by {kind} (vctest)",
            f"Formula: {self.model.design.formula.text}",
            f"  {'REML criterion' if self.reml else 'deviance'} at convergence: "
            f"{self.objective:.4f}   logLik: {self.loglik:.4f}   df: {self.df}",
            "",
            "Random effects:",
        ]
        vc = self.varcorr
        lines.append(f" {'Groups':<14}{'Name':<16}{'Variance':>12}{'Std.Dev.':>11}{'Corr':>8}")
        rows = []
        for _, row in vc.iterrows():
            if row["var2"]:
                continue
            corr = vc[(vc.grp == row.grp) & (vc.var2 != "") & (vc.var2 == row.var1)]
            ctext = " ".join(f"{c:6.2f}" for c in corr.sdcor) if len(corr) else ""
            rows.append(f" {row.grp:<14}{row.var1:<16}{row.vcov:>12.4g}{row.sdcor:>11.4g}"
                        f"{ctext:>8}")
        lines += clip_rows(rows, max_rows, "fit.varcorr")
        lines.append(groups_line(self.model.design))
        lines += ["", "Fixed effects:", f" {'':<16}{'Estimate':>12}{'Std. Error':>12}"]
        rows = [f" {name:<16}{self.beta[name]:>12.5g}{self.beta_se[name]:>12.5g}"
                for name in self.beta.index]
        lines += clip_rows(rows, max_rows, "fit.coef_table()")
        lines.append("")
        if self.singular:
            lines.append("boundary (singular) fit: a variance parameter is estimated at 0.")
        if self.converged:
            lines.append("Converged.")
        else:
            why = "; ".join(self.diagnostics.messages) or self.optimizer_message
            lines.append(f"NOT converged: {why}")
        return "\n".join(lines)


def _run_optimizer(model, reml, start, optimizer, settings):
    """``(theta, objective, evaluations, ok, message, run)``: ``run`` is the engine's
    :class:`~vctest.model.lmm.EngineFit` (its last evaluation is at ``theta``), None for
    SciPy's methods."""
    lower = model.layout.lower
    if optimizer == "bfgs":
        res = model.run(np.asarray(start, dtype=float), reml, settings.kernel())
        return (res.theta, res.objective, res.n_evals, res.status in (0, 1),
                STATUS_TEXT[res.status], res)
    from scipy.optimize import minimize

    # SciPy's methods search theta * scale too, so units do not steer them
    scale = model.theta_scale
    bounds = [(lo * sc if np.isfinite(lo) else None, None) for lo, sc in zip(lower, scale,
                                                                           strict=True)]
    counter = {"n": 0}

    def fun(x):
        counter["n"] += 1
        val = model.objective(x / scale, reml)
        return val if math.isfinite(val) else 1e300

    opts = {"maxiter": 20_000}
    if optimizer == "Nelder-Mead":
        opts.update(xatol=1e-9, fatol=1e-11, maxfev=50_000)
    res = minimize(fun, np.asarray(start, dtype=float) * scale, method=optimizer,
                   bounds=bounds, options=opts)
    return (np.asarray(res.x) / scale, float(res.fun), counter["n"], bool(res.success),
            str(res.message), None)


def _edge_restart(model, reml, theta, f):
    """A better start when the optimum sits on a bound the objective falls away from.

    The profiled objective depends on a variance parameter through its square,
    so its derivative at the bound is zero and a gradient method that lands
    there can stay on a saddle.  As lme4's ``restart_edge``, probe each
    parameter within a step of its bound one step further in -- with the
    entries below it in its column of T as they are and with their signs
    flipped (free while the diagonal is 0) -- and if the objective drops,
    return a restart point with that parameter moved to the best of a few
    interior values.  Steps are in units of the column (as the engine's
    :func:`vctest.kernels.optimize.optimize`, for SciPy's methods).  Returns
    ``(start or None, evaluations used)``.
    """
    lay = model.layout
    scale = model.theta_scale
    below = below_diagonals(lay.is_diagonal)
    nev = 0
    start = None
    near = lay.is_diagonal & ((theta - lay.lower) * scale <= EDGE_PROBE)
    for i in np.flatnonzero(near):
        column = slice(i + 1, i + 1 + below[i])
        best, fbest = None, f
        for sign in (1.0, -1.0) if below[i] else (1.0,):
            probe = theta.copy()
            probe[column] = sign * theta[column]
            probe[i] = theta[i] + EDGE_PROBE / scale[i]
            nev += 1
            if not model.objective(probe, reml) < f:
                continue
            for value in (1e-2, 1e-1, 1.0):
                probe[i] = lay.lower[i] + value / scale[i]
                fv = model.objective(probe, reml)
                nev += 1
                if fv < fbest:
                    best, fbest = probe.copy(), fv
        if best is not None:
            start = theta.copy() if start is None else start
            start[i:i + 1 + below[i]] = best[i:i + 1 + below[i]]
    return start, nev


def fit_model(
    model: LinearMixedModel,
    *,
    reml: bool = True,
    start: np.ndarray | None = None,
    optimizer: str = "bfgs",
    settings: OptimizerSettings | None = None,
) -> LmmFit:
    """Fit ``model`` by REML or ML.

    Parameters
    ----------
    model : LinearMixedModel
    reml : bool, default True
    start : array_like, optional
        Starting theta (default: 1 / (root-mean-square of the column) on
        variance parameters, 0 elsewhere -- 1 for intercepts, as lme4).
    optimizer : {"bfgs", "L-BFGS-B", "Powell", "Nelder-Mead"}
        ``"bfgs"`` is vctest's Numba kernel; the others are SciPy's.
    settings : OptimizerSettings, optional
        Tolerances of the ``"bfgs"`` kernel.

    Returns
    -------
    LmmFit
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}; got {optimizer!r}.")
    settings = settings or OptimizerSettings()
    layout = model.layout
    # default start: 1 on variance parameters in units of their column's scale
    x0 = (layout.initial() / model.theta_scale if start is None
          else np.maximum(np.asarray(start, float), layout.lower))
    theta, f, nev, ok, message, run = _run_optimizer(model, reml, x0, optimizer, settings)
    theta = np.maximum(theta, layout.lower)
    # the "bfgs" kernel restarts from bounds itself; SciPy's methods get the same here
    for _ in range(MAX_EDGE_RESTARTS if optimizer != "bfgs" else 0):
        restart, nprobe = _edge_restart(model, reml, theta, f)
        nev += nprobe
        if restart is None:
            break
        theta, f, nev2, ok, message, run = _run_optimizer(model, reml, restart, optimizer,
                                                          settings)
        theta = np.maximum(theta, layout.lower)
        nev += nev2
    # snap near-boundary variance parameters onto the bound if that does not hurt
    near = (theta - layout.lower) * model.theta_scale < BOUNDARY_SNAP
    for i in np.flatnonzero(layout.is_diagonal & near):
        if theta[i] == layout.lower[i]:
            continue
        trial = theta.copy()
        trial[i] = layout.lower[i]
        ftrial = model.objective(trial, reml)
        nev += 1
        if ftrial <= f:
            theta, f = trial, ftrial
    # the engine's last evaluation is at its estimate: reuse it unless the snap moved theta
    at = run if run is not None and np.array_equal(run.theta, theta) else None
    solution = model.solution(theta, reml, at=at)
    dof = model.n - model.p if reml else model.n
    sigma = math.sqrt(solution.pwrss / dof)
    return LmmFit(
        model=model, reml=reml, theta=theta,
        beta=pd.Series(solution.beta, index=list(model.design.fixed_names), name="beta"),
        sigma=sigma, objective=float(f), n_evals=nev, optimizer=optimizer,
        optimizer_message=message, optimizer_ok=ok, settings=settings,
        _se_from=(solution.lxx, sigma),
    )
