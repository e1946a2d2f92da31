"""Gaussian (additive) mixed models with smooth terms, fitted by dense profiled (RE)ML.

A smooth's penalised part is one random-effects block with iid coefficients
and a dense design ``Z`` (every row loads on every column), which the Numba
engine's blocks (one level per row) cannot hold.  This module fits

    y = X beta + sum_j Z_j b_j + e,   b_j ~ N(0, sigma^2 theta_j^2 I),  e ~ N(0, sigma^2 I)

where the ``Z_j`` are the smooths' penalised parts and the formula's scalar
random-effects terms (``(1 | g)``, ``(0 + x | g)``) as dense columns, by the
profiled criterion of Bates et al. (2015, eqs. 34 and 41) -- the same numbers
as lme4 and nlme for the same model -- over theta >= 0: a log-grid, Brent's
method per component and coordinate sweeps until nothing moves.  With ``q``
random-effects columns in all, an evaluation costs O(q^3) on cross-products
formed once; ``q`` is limited to :data:`MAX_DENSE_Q`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar
from scipy.stats import norm

from vctest.formula.design import Design
from vctest.formula.smooth import SMOOTH_BASES as _BASES
from vctest.formula.smooth_design import find_smooth
from vctest.model.conditional import predict_linear

__all__ = ["MAX_DENSE_Q", "SmoothFit", "SmoothModel", "fit_smooth"]

#: Most random-effects columns in all (smooths plus the other terms' levels).
MAX_DENSE_Q = 4000

#: A relative variance ``theta`` below this is a boundary (singular) fit.
SINGULAR_TOL = 1e-4

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True, eq=False)
class Component:
    """One variance component: a label, its dense columns and, for a formula term, its block."""

    label: str
    Z: np.ndarray
    smooth: int | None = None  #: index in ``design.smooths``
    block: int | None = None  #: index in ``design.blocks``


def components(design: Design, drop: str | None) -> list[Component]:
    comps = []
    for j, blk in enumerate(design.blocks):
        if blk.k != 1:
            raise ValueError(
                f"the random-effects term {blk.term.label} has {blk.k} correlated columns; with "
                "smooth terms vctest fits scalar terms only, such as (1 | g) or (0 + x | g). "
                "Write independent terms with || instead.")
        z = np.zeros((design.n, blk.n_levels))
        z[np.arange(design.n), blk.codes] = blk.columns[:, 0]
        if blk.term.label != drop:
            comps.append(Component(blk.term.label, z, block=j))
    for j, sm in enumerate(design.smooths):
        if sm.label != drop:
            comps.append(Component(sm.label, sm.Z, smooth=j))
    return comps


def stacked(comps: list[Component], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The components' columns side by side and each one's number of columns.

    Refuses more than :data:`MAX_DENSE_Q` columns in all (the dense systems' limit).
    """
    z = np.hstack([c.Z for c in comps]) if comps else np.zeros((n, 0))
    if z.shape[1] > MAX_DENSE_Q:
        raise ValueError(
            f"the model has {z.shape[1]} random-effects columns; with smooth terms vctest "
            f"fits dense systems of at most {MAX_DENSE_Q}. Use a smaller k or fewer levels.")
    return z, np.array([c.Z.shape[1] for c in comps], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Solution:
    """The penalised least-squares solution at one theta."""

    objective: float
    beta: np.ndarray
    b: np.ndarray  #: random effects (all components, in order)
    pwrss: float
    sigma: float


class SmoothModel:
    """A Gaussian model with dense random-effects components (see the module docstring).

    Parameters
    ----------
    design : Design
        A design with smooth terms (and scalar random-effects terms).
    drop : str, optional
        Label of a component to leave out (``"s(x)"`` or ``"(1 | g)"``): the
        null model of a test.  Its fixed-effect columns stay.
    """

    def __init__(self, design: Design, drop: str | None = None) -> None:
        if design.weights is not None or design.prior_weights is not None:
            raise ValueError("prior weights (or a cbind() response) with smooth terms are not "
                             "supported; fit the model without `weights`.")
        if design.response_levels is not None:
            raise ValueError(f"the response {design.formula.response.text!r} is a factor; "
                             "models with smooth terms are Gaussian.")
        self.design = design
        self.drop = drop
        self.components = components(design, drop)
        self.Z, self.sizes = stacked(self.components, design.n)
        z = self.Z
        x, y = design.X, design.y
        self.ztz, self.ztx, self.zty = z.T @ z, z.T @ x, z.T @ y
        self.xtx, self.xty = x.T @ x, x.T @ y

    @property
    def labels(self) -> tuple[str, ...]:
        """The components' labels."""
        return tuple(c.label for c in self.components)

    def solve(self, theta: np.ndarray, reml: bool) -> Solution:
        """Profiled criterion (lme4's REML criterion or ML deviance) and estimates at theta."""
        d = self.design
        n, p = d.X.shape
        lam = np.repeat(np.asarray(theta, dtype=float), self.sizes)
        a = lam[:, None] * self.ztz * lam[None, :]
        a[np.diag_indices_from(a)] += 1.0
        try:  # NumPy's LAPACK: scipy's triangular solves are slow on small systems here
            lz = np.linalg.cholesky(a)
            cu = np.linalg.solve(lz, lam * self.zty)
            rzx = np.linalg.solve(lz, lam[:, None] * self.ztx)
            rx = np.linalg.cholesky(self.xtx - rzx.T @ rzx).T
        except np.linalg.LinAlgError:
            return Solution(math.inf, np.full(p, np.nan), np.full(lam.size, np.nan), math.nan,
                            math.nan)
        beta = np.linalg.solve(rx, np.linalg.solve(rx.T, self.xty - rzx.T @ cu))
        u = np.linalg.solve(lz.T, cu - rzx @ beta)
        b = lam * u
        resid = d.y - d.X @ beta - self.Z @ b
        pwrss = float(resid @ resid + u @ u)
        logdet = 2.0 * float(np.sum(np.log(np.diag(lz))))
        if reml:
            nr = n - p
            f = logdet + 2.0 * float(np.sum(np.log(np.abs(np.diag(rx))))) + nr * (
                1.0 + LOG_2PI + math.log(pwrss / nr))
            sigma = math.sqrt(pwrss / nr)
        else:
            f = logdet + n * (1.0 + LOG_2PI + math.log(pwrss / n))
            sigma = math.sqrt(pwrss / n)
        return Solution(f, beta, b, pwrss, sigma)

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """The profiled criterion at theta."""
        return self.solve(theta, reml).objective


def _brent(f: Any, theta: np.ndarray, j: int, local: bool) -> tuple[float, float]:
    """Best theta_j (others fixed): Brent in log theta over a log-grid's best bracket (or,
    ``local``, within a factor 2 of the current value), and the boundary 0."""
    def at(t: float) -> float:
        th = theta.copy()
        th[j] = t
        return f(th)

    if local and theta[j] > 0:
        grid = theta[j] * np.array([0.5, 1.0, 2.0])
    else:
        grid = np.exp(np.linspace(-9.0, 7.0, 65))
    values = np.array([at(t) for t in grid])
    i = int(np.argmin(values))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])
    res = minimize_scalar(lambda s: at(math.exp(s)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10})
    best_t, best_f = (math.exp(res.x), float(res.fun)) if res.fun <= values[i] else (
        float(grid[i]), float(values[i]))
    f0 = at(0.0)
    return (0.0, f0) if f0 <= best_f else (best_t, best_f)


def _optimise(model: SmoothModel, reml: bool) -> tuple[np.ndarray, bool, int]:
    """theta minimising the criterion.

    One component: :func:`_brent` over a log-grid.  Several: L-BFGS-B from
    theta = 1, then coordinate sweeps of local Brent steps until nothing moves.
    """
    k = len(model.components)
    theta = np.ones(k)
    if k == 0:
        return theta, True, 0

    def f(th: np.ndarray) -> float:
        return model.objective(th, reml)

    if k == 1:
        theta[0], _ = _brent(f, theta, 0, local=False)
        return theta, True, 1
    res = minimize(f, theta, method="L-BFGS-B", bounds=[(0.0, 1e4)] * k,
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 1000})
    theta = np.maximum(np.asarray(res.x, dtype=float), 0.0)
    for sweep in range(1, 31):
        previous = theta.copy()
        for j in range(k):
            theta[j], _ = _brent(f, theta, j, local=True)
        if np.allclose(theta, previous, rtol=1e-8, atol=1e-10):
            return theta, True, sweep
    return theta, False, 30


def fit_smooth(design: Design, *, reml: bool = True, drop: str | None = None) -> SmoothFit:
    """Fit a design with smooth terms (Gaussian) by REML or ML.

    Parameters
    ----------
    design : Design
    reml : bool, default True
    drop : str, optional
        A component to leave out (see :class:`SmoothModel`).

    Returns
    -------
    SmoothFit

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from vctest.formula import build_design
    >>> rng = np.random.default_rng(1)
    >>> x = np.sort(rng.uniform(size=100))
    >>> d = pd.DataFrame({"x": x, "y": np.sin(6 * x) + rng.normal(0, 0.3, 100)})
    >>> m = fit_smooth(build_design("y ~ s(x, bs='cr')", d))
    >>> m.converged, m.edf > 2
    (True, True)
    """
    model = SmoothModel(design, drop)
    theta, converged, sweeps = _optimise(model, reml)
    return SmoothFit(model=model, reml=reml, theta=theta, solution=model.solve(theta, reml),
                     converged=converged, sweeps=sweeps)


def _parametric_twin(design: Design, p0: int) -> Design:
    """``design`` without its smooth terms (the first ``p0`` columns of X): new rows are
    coded by it, so no smooth basis is built from them."""
    f = design.formula
    random = list(dict.fromkeys(t.source for t in f.random))
    rhs = " + ".join([f.fixed, *random]) if f.fixed != "1" or not random else " + ".join(
        ["1", *random])
    text = f"{f.response.text} ~ {rhs}"
    parsed = dataclasses.replace(f, text=text, smooths=())
    return dataclasses.replace(design, formula=parsed, X=design.X[:, :p0],
                               fixed_names=design.fixed_names[:p0], smooths=())


@dataclass(frozen=True, eq=False)
class SmoothFit:
    """A fitted (additive) mixed model with smooth terms.

    Attributes
    ----------
    model : SmoothModel
    reml : bool
    theta : ndarray
        Relative standard deviations ``sigma_j / sigma`` of the components
        (``model.labels``), in the units of their columns (a smooth's ``Z`` has
        columns of root-mean-square 1).
    converged : bool
    """

    model: SmoothModel
    reml: bool
    theta: np.ndarray
    solution: Solution
    converged: bool
    sweeps: int

    @property
    def design(self) -> Design:
        """The design fitted."""
        return self.model.design

    @property
    def objective(self) -> float:
        """REML criterion (``reml=True``) or deviance: -2 (restricted) log-likelihood."""
        return self.solution.objective

    @property
    def loglik(self) -> float:
        """(Restricted) log-likelihood, nlme's and lme4's convention (gamm's ``lme$logLik``)."""
        return -0.5 * self.solution.objective

    @property
    def sigma(self) -> float:
        """Residual standard deviation."""
        return self.solution.sigma

    @property
    def beta(self) -> pd.Series:
        """Fixed effects (a smooth's null-space coefficients are named ``"s(x)Fx1"``)."""
        return pd.Series(self.solution.beta, index=list(self.design.fixed_names))

    @property
    def singular(self) -> bool:
        """Whether a variance component is estimated at (or next to) zero."""
        return bool(np.any(self.theta < SINGULAR_TOL))

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components: one row per component, then the residual."""
        rows = [{"grp": lab, "vcov": (self.sigma * t) ** 2, "sdcor": self.sigma * t}
                for lab, t in zip(self.model.labels, self.theta, strict=True)]
        rows.append({"grp": "Residual", "vcov": self.sigma**2, "sdcor": self.sigma})
        return pd.DataFrame(rows)

    def ranef(self, label: str) -> np.ndarray:
        """Predicted random effects (conditional modes) of component ``label``."""
        labels = self.model.labels
        if label not in labels:
            raise ValueError(f"no component {label!r}; the model has {list(labels)}.")
        j = labels.index(label)
        start = int(np.sum(self.model.sizes[:j]))
        return self.solution.b[start:start + int(self.model.sizes[j])]

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values ``X beta + Z b`` on the rows used (all components)."""
        return self.design.X @ self.solution.beta + self.model.Z @ self.solution.b

    @property
    def residuals(self) -> np.ndarray:
        """Response minus fitted values."""
        return self.design.y - self.fitted

    @cached_property
    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Bayesian covariance of (beta, b) (Wood 2017, section 6.10): sigma^2 (C'C + P)^-1.

        Components at zero variance are left out (their b are exactly 0).
        """
        m, th = self.model, self.theta
        keep = np.repeat(th > 0, m.sizes)
        lam = np.repeat(th, m.sizes)[keep]
        p = self.design.p
        c = np.hstack([self.design.X, m.Z[:, keep]])
        prec = c.T @ c
        prec[p:, p:] += np.diag(1.0 / lam**2)
        cov = self.sigma**2 * np.linalg.inv(prec)
        return cov, keep

    def _smooth_index(self, term: str) -> int:
        j = find_smooth(self.design.smooths, term)
        if j is None:
            labels = [sm.label for sm in self.design.smooths]
            raise ValueError(f"`term` {term!r} is not a smooth term of the model (or names "
                             f"several); its smooth terms are {labels}.")
        return j

    def smooth(self, term: str, x: Any = None, *, n: int = 200,
               level: float = 0.95) -> pd.DataFrame:
        """The fitted smooth function of ``term`` with a pointwise confidence band.

        The curve is the smooth's own part (null-space and penalised columns;
        it sums to zero over the data, like mgcv's ``plot.gam``); ``se`` is from
        the Bayesian posterior covariance (Wood 2017, section 6.10).  For
        ``s(x, by=z)`` it is f(x) (z = 1); for a factor ``by``, the level's curve.

        Parameters
        ----------
        term : str
            ``"s(x)"`` (or the column name).
        x : array_like, optional
            Where to evaluate (default: ``n`` points over the data's range).
        n : int, default 200
        level : float, default 0.95

        Returns
        -------
        pandas.DataFrame
            Columns ``x``, ``fit``, ``se``, ``lower``, ``upper``.
        """
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"`level` must be between 0 and 1; got {level!r}.")
        j = self._smooth_index(term)
        sm = self.design.smooths[j]
        if x is None:
            xs = sm.term.variable
            obs = self.design.frame[xs].to_numpy(dtype=float)
            x = np.linspace(obs.min(), obs.max(), int(n))
        x = np.asarray(x, dtype=float).reshape(-1)
        p = self.design.p
        cov, keep = self._posterior
        starts = np.concatenate([[0], np.cumsum(self.model.sizes)])
        comp = next((i for i, c in enumerate(self.model.components) if c.smooth == j), None)
        g = np.zeros((x.size, p + int(keep.sum())))
        g[:, list(sm.fixed_columns)] = sm.basis.fixed(x)
        cols = np.zeros((x.size, self.model.Z.shape[1]))
        if comp is not None:  # None: a null model without the smooth's penalised part
            cols[:, starts[comp]:starts[comp + 1]] = sm.basis.random(x)
        g[:, p:] = cols[:, keep]
        coef = np.concatenate([self.solution.beta, self.solution.b[keep]])
        fit = g @ coef
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", g, cov, g), 0.0))
        zq = float(norm.ppf(0.5 + float(level) / 2.0))
        return pd.DataFrame({"x": x, "fit": fit, "se": se, "lower": fit - zq * se,
                             "upper": fit + zq * se})

    @property
    def edf(self) -> float:
        """Effective degrees of freedom: the trace of the hat matrix of every component.

        With smooths only, mgcv's ``sum(gam$edf)``; the ordinary random
        effects of an additive mixed model add theirs (gamm's ``gam`` part does
        not count them).
        """
        cov, keep = self._posterior
        c = np.hstack([self.design.X, self.model.Z[:, keep]])
        return float(np.sum((c @ cov) * c) / self.sigma**2)

    def predict(self, newdata: pd.DataFrame | None = None, *, re_form: Any = None,
                allow_new_levels: bool = False) -> np.ndarray:
        """Predictions on the fit's rows or on ``newdata``.

        A smooth is evaluated at the new x with the fit's knots, constraint and
        reparametrisation (nothing is learnt from ``newdata``); beyond the
        data's range a cr smooth continues linearly.  ``re_form`` and
        ``allow_new_levels`` act on the ordinary random-effects terms as in
        ``LmmFit.predict`` (smooths are always included).
        """
        d, sol = self.design, self.solution
        modes = []
        for j, blk in enumerate(d.blocks):
            comp = next((c for c in self.model.components if c.block == j), None)
            modes.append(self.ranef(comp.label)[:, None] if comp is not None
                         else np.zeros((blk.n_levels, 1)))
        p0 = d.p - sum(len(sm.fixed_columns) for sm in d.smooths)  # smooths' columns: last
        frame = d.frame if newdata is None else newdata
        out = predict_linear(_parametric_twin(d, p0), sol.beta[:p0], modes, newdata, re_form,
                             allow_new_levels)
        for j, sm in enumerate(d.smooths):
            x = pd.to_numeric(frame[sm.term.variable]).to_numpy(dtype=float)
            by = None if sm.term.by is None else frame[sm.term.by]
            if by is not None and sm.basis.level is None:
                by = pd.to_numeric(by).to_numpy(dtype=float)
            part = sm.basis.fixed(x, by) @ sol.beta[list(sm.fixed_columns)]
            comp = next((c for c in self.model.components if c.smooth == j), None)
            if comp is not None:
                part = part + sm.basis.random(x, by) @ self.ranef(comp.label)
            out = out + part
        return out

    def plot_smooth(self, term: str, *, ax: Any = None, level: float = 0.95,
                    data: bool = True) -> Any:
        """Plot the smooth of ``term`` with its pointwise band and the partial residuals.

        (No partial residuals for a numeric ``by``: f(x) z has none on f's scale.)

        Needs matplotlib (``pip install 'vctest[plot]'``).  Returns the axes.
        """
        from vctest._smooth_plot import draw_smooth

        curve = self.smooth(term, level=level)
        sm = self.design.smooths[self._smooth_index(term)]
        x = self.design.frame[sm.term.variable].to_numpy(dtype=float)
        partial = None
        if data and (sm.term.by is None or sm.basis.level is not None):
            own = self.smooth(term, x=x, level=level)["fit"].to_numpy()
            partial = own + self.residuals
            if sm.basis.level is not None:  # a factor by: the rows of this level
                rows = np.asarray(sm.basis.multiplier(self.design.frame[sm.term.by])) != 0
                x, partial = x[rows], partial[rows]
        return draw_smooth(curve, x, partial, label=sm.label, level=level, ax=ax,
                           response=self.design.formula.response.text)

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return self.design.n

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the fit."""
        return {
            "formula": self.design.formula.text,
            "reml": self.reml,
            "nobs": self.nobs,
            "loglik": self.loglik,
            "objective": self.objective,
            "objective_name": "REML criterion" if self.reml else "deviance",
            "theta": dict(zip(self.model.labels, map(float, self.theta), strict=True)),
            "beta": {k: float(v) for k, v in self.beta.items()},
            "sigma": self.sigma,
            "varcorr": self.varcorr.to_dict(orient="records"),
            "edf": self.edf,
            "singular": self.singular,
            "converged": self.converged,
            "optimizer": "dense profiled criterion, coordinate Brent (vctest.model.smooth_fit)",
        }

    def summary(self) -> str:
        """A text summary: criterion, smooths (edf), variance components, fixed effects.

        Examples
        --------
        >>> import numpy as np, pandas as pd, vctest
        >>> x = np.linspace(0, 1, 80)
        >>> d = pd.DataFrame({"x": x, "y": np.sin(6 * x) + np.cos(40 * x) / 4})
        >>> print(vctest.fit("y ~ s(x, bs='cr')", d).summary())  # doctest: +ELLIPSIS
        Additive mixed model fit by REML (vctest; penalised splines as in mgcv::gamm)
        Formula: y ~ s(x, bs='cr')
        ...
        """
        kind = "REML" if self.reml else "maximum likelihood"
        d = self.design
        lines = [
            f"Additive mixed model fit by {kind} (vctest; penalised splines as in mgcv::gamm)",
            f"Formula: {d.formula.text}",
            f"  {'REML criterion' if self.reml else 'deviance'}: {self.objective:.4f}   "
            f"logLik: {self.loglik:.4f}   edf (all components): {self.edf:.3f}",
            "",
            "Smooth terms:",
        ]
        for sm in d.smooths:
            t = sm.term
            lines.append(f"  {sm.label}: bs = '{t.bs}' ({_BASES[t.bs]}), "
                         f"k = {t.k}; fixed {', '.join(sm.basis.fixed_names)} + "
                         f"{sm.q} penalised columns")
        lines += ["", "Variance components:"]
        vc = self.varcorr
        lines += [f"  {row.grp:<20} variance {row.vcov:.6g}  sd {row.sdcor:.6g}"
                  for row in vc.itertuples()]
        lines += ["", "Fixed effects:"]
        lines += [f"  {name:<20} {value: .6g}" for name, value in self.beta.items()]
        lines += ["", f"Number of obs: {d.n}" + (f" ({d.n_dropped} dropped)" if d.n_dropped
                                                 else ""),
                  "Converged." if self.converged else "The variance search did not settle.",
                  *(["Boundary (singular) fit: a variance component is estimated at zero."]
                    if self.singular else [])]
        return "\n".join(lines)

    def __repr__(self) -> str:
        kind = "REML criterion" if self.reml else "deviance"
        comps = ", ".join(f"{lab} sd {self.sigma * t:.4g}"
                          for lab, t in zip(self.model.labels, self.theta, strict=True))
        return (f"<SmoothFit {self.design.formula.text!r}: {kind} {self.objective:.4f}, "
                f"{comps}, residual sd {self.sigma:.4g}, n = {self.design.n}>")
