"""Profile-likelihood confidence intervals of an LMM, as lme4's ``confint(m, method = "profile")``.

The parameters are lme4's: per random-effects term the standard deviations
and correlations (``.sig01``, ``.sig02``, ... in the order of theta: a
diagonal entry of T is a standard deviation, an off-diagonal one a
correlation), then ``.sigma``, then the fixed effects.  As lme4, the profile
is of the ML deviance (a REML fit is profiled by ML too; lme4's intervals of
a REML and an ML fit agree).  With ``Sigma_j = D R D`` (D the standard
deviations, R the correlations), ``T_j = D chol(R) / sigma``, and

    -2 log L(theta, beta, sigma) = log|L_theta|^2 + n log(2 pi sigma^2)
                                   + (r^2(theta) + |R_X (beta - beta_hat)|^2) / sigma^2,

where ``log|L_theta|^2`` and ``r^2`` come from the engine's profiled deviance.
Fixing one fixed effect beta_k adds ``(beta_k - beta_hat_k)^2 / (sigma^2
c_kk(theta))`` (c the unscaled covariance of beta_hat) once the others are
profiled out.  For a parameter psi, ``zeta(psi) = sign(psi - psi_hat)
sqrt(dev(psi) - dev_min)`` with the others re-optimised; the interval is where
``|zeta|`` reaches the normal quantile (found by root finding, where lme4
interpolates a spline through profile points), or a bound (0 for a standard
deviation, +-1 for a correlation) if it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.optimize import brentq, minimize
from scipy.stats import norm

from vctest.model.terms import ThetaLayout

#: Inner optimisations (Nelder-Mead) stop at these changes of the parameters (relative to
#: each parameter's scale) and of the deviance.  A relative error e of the parameters
#: moves the profiled deviance by O(e^2): 1e-7 leaves it exact to ~1e-12.
INNER_XTOL = 1e-7
INNER_FTOL = 1e-10
#: Size of the inner optimisations' initial simplex, relative to each parameter's scale.
SIMPLEX_STEP = 1e-3


def natural_from_theta(layout: ThetaLayout, theta: np.ndarray, sigma: float) -> np.ndarray:
    """Standard deviations and correlations (theta's layout), then sigma."""
    out = np.empty(layout.size + 1)
    for j, t in enumerate(layout.factors(theta)):
        cov = sigma ** 2 * t @ t.T
        sd = np.sqrt(np.diag(cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov / np.outer(sd, sd)
        k, pos = t.shape[0], int(layout.offsets[j])
        for c in range(k):
            for r in range(c, k):
                out[pos] = sd[r] if r == c else (corr[r, c] if sd[r] * sd[c] > 0 else 0.0)
                pos += 1
    out[-1] = sigma
    return out


def theta_from_natural(layout: ThetaLayout, nat: np.ndarray) -> np.ndarray | None:
    """theta of standard deviations, correlations and sigma (None if R is not PD)."""
    sigma = float(nat[-1])
    theta = np.empty(layout.size)
    for j, kj in enumerate(layout.k):
        k, pos = int(kj), int(layout.offsets[j])
        if k == 1:   # the common cases without LAPACK (profiling calls this thousands of times)
            theta[pos] = nat[pos] / sigma
            continue
        if k == 2:   # chol([[1, r], [r, 1]]) = [[1, 0], [r, sqrt(1 - r^2)]]
            rho = float(nat[pos + 1])
            if not -1.0 < rho < 1.0:
                return None
            theta[pos] = nat[pos] / sigma
            theta[pos + 1] = nat[pos + 2] * rho / sigma
            theta[pos + 2] = nat[pos + 2] * math.sqrt(1.0 - rho * rho) / sigma
            continue
        sd, corr = np.empty(k), np.eye(k)
        p = pos
        for c in range(k):
            for r in range(c, k):
                if r == c:
                    sd[r] = nat[p]
                else:
                    corr[r, c] = corr[c, r] = nat[p]
                p += 1
        try:
            chol = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:
            return None
        t = (sd[:, None] * chol) / sigma
        p = pos
        for c in range(k):
            for r in range(c, k):
                theta[p] = t[r, c]
                p += 1
    return theta


@dataclass(frozen=True, eq=False)
class Profiler:
    """The ML deviance of an LMM in lme4's parameters (see the module docstring)."""

    model: Any
    names: tuple[str, ...]
    is_sd: np.ndarray
    nat_hat: np.ndarray
    beta_hat: np.ndarray
    dev_min: float

    @classmethod
    def of(cls, fit: Any) -> Profiler:
        """The profiler of ``fit`` (an ML fit; refit a REML one first)."""
        lay = fit.model.layout
        names = (*(f".sig{i + 1:02d}" for i in range(lay.size)), ".sigma")
        is_sd = np.concatenate([lay.is_diagonal, [True]])
        return cls(model=fit.model, names=names, is_sd=is_sd,
                   nat_hat=natural_from_theta(lay, fit.theta, fit.sigma),
                   beta_hat=fit.beta.to_numpy(), dev_min=float(fit.objective))

    def deviance(self, nat: np.ndarray, k: int | None = None, beta_k: float = 0.0) -> float:
        """-2 log L at ``nat`` with beta profiled (beta_k fixed when ``k`` is given)."""
        sigma = nat[-1]
        if not sigma > 0 or np.any(nat[:-1][self.is_sd[:-1]] < 0):
            return math.inf
        theta = theta_from_natural(self.model.layout, nat)
        if theta is None:
            return math.inf
        m = self.model
        res = m.run(theta, False)
        if not math.isfinite(res.objective):
            return math.inf
        n, r2 = m.n, res.pwrss
        logdet = res.objective - n * (1.0 + math.log(2.0 * math.pi * r2 / n))
        dev = logdet + n * math.log(2.0 * math.pi * sigma ** 2) + r2 / sigma ** 2
        if k is not None:
            # Cov(beta_hat) / sigma^2 = A (L L')^{-1} A' with L = R_X' in engine units:
            # c_kk = |L^{-1} A[k]'|^2
            x = solve_triangular(res.lxx, m.units.a[k], lower=True)
            ckk = float(x @ x)
            dev += (beta_k - res.beta[k]) ** 2 / (sigma ** 2 * ckk)
        return dev

    def profile(self, index: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over the other parameters with parameter ``index`` at ``value``.

        ``index`` < number of natural parameters: a variance parameter; beyond
        that, fixed effect ``index - len(nat)``.  Returns (deviance, argmin).
        """
        nn = self.nat_hat.size
        free = [i for i in range(nn) if i != index]
        k = index - nn if index >= nn else None

        def full(x: np.ndarray) -> np.ndarray:
            nat = start.copy()
            nat[free] = x
            if k is None:
                nat[index] = value
            return nat

        def f(x: np.ndarray) -> float:
            val = self.deviance(full(x), k, value)
            return val if math.isfinite(val) else 1e300

        # Nelder-Mead in units of each parameter's scale (a standard deviation's estimate,
        # 1 for a correlation), from the previous point's optimum with a small simplex
        scale = self._scales(free)
        tiny = 1e-12 * max(self.nat_hat[-1], 1e-300)
        bounds = [(tiny, None) if i == nn - 1 else (0.0, None) if self.is_sd[i]
                  else (-1.0 + 1e-10, 1.0 - 1e-10) for i in free]
        bounds = [(None if lo is None else lo / s, None if hi is None else hi / s)
                  for (lo, hi), s in zip(bounds, scale, strict=True)]

        def g(y: np.ndarray) -> float:
            return f(y * scale)

        def run(x_start: np.ndarray) -> Any:
            y0 = x_start / scale
            simplex = np.vstack([y0, y0 + SIMPLEX_STEP * np.eye(y0.size)])
            for j, (_, hi) in enumerate(bounds):   # keep a correlation's vertex inside
                if hi is not None and simplex[j + 1, j] > hi:
                    simplex[j + 1, j] = y0[j] - SIMPLEX_STEP
            opts = {"xatol": INNER_XTOL, "fatol": INNER_FTOL, "maxfev": 20_000,
                    "initial_simplex": simplex}
            # derivative-free: the deviance has a noise floor near 1e-11 that misleads
            # finite-difference gradients (L-BFGS-B stopped at its start here)
            return minimize(g, y0, method="Nelder-Mead", bounds=bounds, options=opts)

        x0 = start[free]
        best = run(x0)
        # a standard deviation at 0 is a saddle of the deviance (it enters squared), where
        # the simplex does not leave: start again from inside
        at_zero = [j for j, i in enumerate(free) if self.is_sd[i] and i != nn - 1
                   and x0[j] <= 1e-8 * self.nat_hat[-1]]
        if at_zero:
            x1 = x0.copy()
            x1[at_zero] = 0.25 * start[-1]
            other = run(x1)
            if other.fun < best.fun:
                best = other
        return float(best.fun), full(best.x * scale)

    def _scales(self, free: list[int]) -> np.ndarray:
        """Units of the inner optimisation: a standard deviation's estimate (at least
        1e-3 sigma), 1 for a correlation."""
        floor = 1e-3 * self.nat_hat[-1]
        return np.array([max(abs(self.nat_hat[i]), floor) if self.is_sd[i] else 1.0
                         for i in free])

    def estimate(self, index: int) -> float:
        nn = self.nat_hat.size
        return float(self.nat_hat[index] if index < nn else self.beta_hat[index - nn])

    def endpoint(self, index: int, side: int, level: float, step: float) -> float:
        """Where zeta crosses ``side * z_level`` (or the parameter's bound).

        zeta is nearly linear in the parameter, so each trial point is the
        linear extrapolation to the target (a little beyond, to bracket it);
        then Brent's method on zeta.
        """
        z = norm.ppf(0.5 + level / 2.0)
        est = self.estimate(index)
        nn = self.nat_hat.size
        is_var = index < nn
        lo_bound = (0.0 if self.is_sd[index] else -1.0) if is_var else -math.inf
        hi_bound = 1.0 if is_var and not self.is_sd[index] else math.inf
        # a correlation of +-1 makes R singular: stop just inside
        edge = (lo_bound if side < 0 else hi_bound)
        if is_var and not self.is_sd[index]:
            edge -= side * 1e-9
        state = {"start": self.nat_hat.copy()}
        seen: dict[float, float] = {}

        def gap(v: float) -> float:
            # remembered, so that Brent's method sees the bracket's signs as found
            if v not in seen:
                dev, state["start"] = self.profile(index, v, state["start"])
                seen[v] = math.sqrt(max(dev - self.dev_min, 0.0)) - z
            return seen[v]

        inner, h = est, step
        for _ in range(40):
            outer = est + side * h
            if side * (outer - edge) >= 0:
                outer = edge
            g_out = gap(outer)
            if g_out > 0:
                break
            if outer == edge:
                return float(edge)
            inner = outer
            # extrapolate zeta linearly from the estimate, 10% beyond the target
            h = max(abs(outer - est) * 1.1 * z / max(g_out + z, 1e-3 * z), 2.0 * h * 0.75)
        else:
            return float(edge)
        scale = max(abs(est), step)
        a, b = (outer, inner) if side < 0 else (inner, outer)
        return float(brentq(gap, a, b, xtol=1e-9 * scale, rtol=1e-10))


def profile_confint(ml: Any, level: float = 0.95) -> pd.DataFrame:
    """lme4's ``confint(m, method = "profile")`` from the ML fit ``ml`` of an LMM."""
    if ml.reml:
        raise ValueError("the profile is of the ML deviance; pass the model's ML fit.")
    prof = Profiler.of(ml)
    nn = prof.nat_hat.size
    se = ml.beta_se.to_numpy()
    names = list(prof.names) + list(ml.beta.index)
    lo_col, hi_col = f"{50 * (1 - level):.3g} %", f"{50 * (1 + level):.3g} %"
    rows = []
    for i in range(len(names)):
        est = prof.estimate(i)
        if i >= nn:
            step = se[i - nn]
        elif prof.is_sd[i]:
            step = max(0.25 * abs(est), 1e-3 * max(prof.nat_hat[-1], 1e-8))
        else:
            step = 0.2
        rows.append((prof.endpoint(i, -1, level, step), prof.endpoint(i, 1, level, step)))
    return pd.DataFrame(rows, index=names, columns=[lo_col, hi_col])


def wald_confint(fit: Any, level: float = 0.95) -> pd.DataFrame:
    """lme4's ``confint(m, method = "Wald")``: NaN for the variance parameters."""
    z = norm.ppf(0.5 + level / 2.0)
    lay = fit.model.layout
    names = [f".sig{i + 1:02d}" for i in range(lay.size)]
    if hasattr(fit, "sigma"):
        names.append(".sigma")
    beta, se = fit.beta.to_numpy(), fit.beta_se.to_numpy()
    lo_col, hi_col = f"{50 * (1 - level):.3g} %", f"{50 * (1 + level):.3g} %"
    lo = np.concatenate([np.full(len(names), np.nan), beta - z * se])
    hi = np.concatenate([np.full(len(names), np.nan), beta + z * se])
    return pd.DataFrame({lo_col: lo, hi_col: hi}, index=names + list(fit.beta.index))


def bootstrap_confint(fit: Any, level: float, nsim: int, rng: np.random.Generator
                      ) -> tuple[pd.DataFrame, int]:
    """Percentile intervals from a parametric bootstrap (lme4's ``method = "boot"``).

    ``nsim`` responses are simulated from the fit (new random effects), the
    model refitted to each by the fit's criterion; returns the intervals and
    the number of refits that failed (left out).
    """
    from vctest.model.conditional import simulate_lmm

    lay = fit.model.layout
    sims = simulate_lmm(fit, nsim, rng)
    draws, failed = [], 0
    for b in range(nsim):
        try:
            r = fit.refit(sims[:, b])
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            failed += 1
            continue
        draws.append(np.concatenate([natural_from_theta(lay, r.theta, r.sigma),
                                     r.beta.to_numpy()]))
    values = np.array(draws)
    names = [f".sig{i + 1:02d}" for i in range(lay.size)] + [".sigma", *fit.beta.index]
    lo_col, hi_col = f"{50 * (1 - level):.3g} %", f"{50 * (1 + level):.3g} %"
    q = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return pd.DataFrame({lo_col: q[0], hi_col: q[1]}, index=names), failed
