"""The linear mixed model with one variance component, fitted from its design matrices.

``y = X beta + Z b + e`` with ``b ~ N(0, sigma_b^2 Sigma)``, ``Sigma = R'R``
(R a known square root, e.g. the upper Cholesky factor) and
``e ~ N(0, sigma^2 I_n)``.  With ``Zt = Z R'`` (so that ``Z b = Zt u``,
``u ~ N(0, sigma_b^2 I)``), the variance ratio ``lambda = sigma_b^2 / sigma^2``
is the only parameter left after profiling out beta and sigma^2, and both
criteria are closed forms in the spectrum of the design:

* with ``P0 Zt = U diag(sqrt(mu)) W'`` (thin SVD; ``P0 = I - X (X'X)^-1 X'``),
  ``a = U'y`` and ``rest = ||P0 y - U a||^2``, the generalised residual sum of
  squares is ``D(lambda) = sum_s a_s^2 / (1 + lambda mu_s) + rest``
  (``y'A (A'VA)^-1 A'y`` with ``A'A = I``, ``AA' = P0``, ``V = I + lambda Zt Zt'``);
* REML (lme4's criterion, Bates et al. 2015, eq. 41):
  ``sum_s log(1 + lambda mu_s) + log|X'X| + (n - p)(1 + log(2 pi D / (n - p)))``,
  because ``log|V| + log|X'V^-1 X| = log|A'VA| + log|X'X|``;
* ML (eq. 34): ``sum_s log(1 + lambda xi_s) + n (1 + log(2 pi D / n))``, with
  ``xi`` the eigenvalues of ``Zt'Zt`` (``log|V|``).

The same ``mu`` and ``xi`` give the exact null distribution of the (R)LRT
(Crainiceanu & Ruppert 2004), so the fit and its null share one SVD.  The
criterion is minimised globally over ``lambda >= 0``: a log-spaced grid, then
bounded Brent refinement around every local minimum of the grid, and the
boundary ``lambda = 0`` when the derivative there is not negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["OneComponentFit", "OneComponentModel"]

#: Eigenvalues of Zt' P0 Zt below this fraction of the largest of Zt'Zt are structural
#: zeros (set to 0; :func:`vctest.nulls.spectral.group_eigenvalues` drops them too).
ZERO_TOL = 1e-10

#: Grid points per decade of lambda for the global scan.
POINTS_PER_DECADE = 20


@dataclass(frozen=True, eq=False)
class OneComponentModel:
    """The spectral form of ``y = X beta + Zt u + e``, ready to fit.

    Build it with :meth:`from_arrays`; the arrays must already be validated
    (finite, X of full column rank, n - p - K >= 1).

    Attributes
    ----------
    y, X, Zt : ndarray
        Response, fixed-effects design (n x p) and ``Z R'`` (n x K).
    mu : ndarray
        Eigenvalues of ``Zt' P0 Zt``, decreasing (K of them, zeros included).
    xi : ndarray
        Eigenvalues of ``Zt' Zt``, decreasing.
    a : ndarray
        ``U'y`` for the non-zero ``mu`` (the first ``k_eff`` of them).
    rest : float
        Residual sum of squares left after X and the non-zero directions of P0 Zt.
    logdet_xtx : float
        ``log|X'X|`` (0 without fixed effects).
    """

    y: np.ndarray
    X: np.ndarray
    Zt: np.ndarray
    mu: np.ndarray
    xi: np.ndarray
    a: np.ndarray
    rest: float
    logdet_xtx: float

    @classmethod
    def from_arrays(cls, y: np.ndarray, X: np.ndarray, Zt: np.ndarray) -> OneComponentModel:
        """One QR of X and one SVD of ``P0 Zt`` (and the singular values of ``Zt``).

        Examples
        --------
        >>> import numpy as np
        >>> x = np.linspace(0, 1, 12)
        >>> X = np.column_stack([np.ones(12), x])
        >>> Z = np.maximum(x[:, None] - [0.25, 0.5, 0.75], 0)
        >>> m = OneComponentModel.from_arrays(np.sin(6 * x), X, Z)
        >>> m.n, m.p, m.K, m.k_eff
        (12, 2, 3, 3)
        """
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        Zt = np.asarray(Zt, dtype=float)
        p = X.shape[1]
        k = Zt.shape[1]
        if p:
            q, r = np.linalg.qr(X)
            p0z = Zt - q @ (q.T @ Zt)
            p0y = y - q @ (q.T @ y)
            logdet = 2.0 * float(np.sum(np.log(np.abs(np.diag(r)))))
        else:
            p0z, p0y, logdet = Zt, y, 0.0
        u, s, _ = np.linalg.svd(p0z, full_matrices=False)
        mu = np.zeros(k)
        mu[: s.size] = s**2
        xi = np.zeros(k)
        sz = np.linalg.svd(Zt, compute_uv=False)
        xi[: sz.size] = sz**2
        # zero relative to Zt's own scale: a Z inside the column space of X leaves rounding only
        keep = mu[: s.size] > ZERO_TOL * max(float(xi.max()), 1e-300)
        mu[: s.size][~keep] = 0.0
        um = u[:, : int(keep.sum())]
        a = um.T @ p0y
        rest = float(np.sum((p0y - um @ a) ** 2))
        return cls(y=y, X=X, Zt=Zt, mu=mu, xi=xi, a=a, rest=rest, logdet_xtx=logdet)

    @property
    def n(self) -> int:
        """Observations."""
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        """Fixed-effect columns."""
        return int(self.X.shape[1])

    @property
    def K(self) -> int:
        """Random-effect columns."""
        return int(self.Zt.shape[1])

    @property
    def k_eff(self) -> int:
        """Non-zero eigenvalues of ``Zt' P0 Zt`` (the K of the exact null)."""
        return int(self.a.size)

    def _rss(self, lam: np.ndarray) -> np.ndarray:
        mu = self.mu[: self.k_eff]
        return (self.a**2 / (1.0 + lam[:, None] * mu)).sum(axis=1) + self.rest

    def objective(self, lam: Any, reml: bool) -> np.ndarray | float:
        """lme4's REML criterion or ML deviance at variance ratio(s) ``lam``.

        Examples
        --------
        >>> import numpy as np
        >>> y = np.array([1.0, 2.0, 4.0, 3.0, 6.0, 5.0])
        >>> X = np.ones((6, 1))
        >>> Z = np.kron(np.eye(3), np.ones((2, 1)))
        >>> m = OneComponentModel.from_arrays(y, X, Z)
        >>> rss = np.sum((y - y.mean()) ** 2)   # lambda = 0: the linear model
        >>> bool(np.isclose(m.objective(0.0, False), 6 * (1 + np.log(2 * np.pi * rss / 6))))
        True
        """
        scalar = np.ndim(lam) == 0
        lam = np.atleast_1d(np.asarray(lam, dtype=float))
        d = self._rss(lam)
        if reml:
            nn = self.n - self.p
            pen = np.log1p(lam[:, None] * self.mu).sum(axis=1) + self.logdet_xtx
        else:
            nn = self.n
            pen = np.log1p(lam[:, None] * self.xi).sum(axis=1)
        out = pen + nn * (1.0 + np.log(2.0 * math.pi * d / nn))
        return float(out[0]) if scalar else out

    def _slope_at_zero(self, reml: bool) -> float:
        """d criterion / d lambda at lambda = 0."""
        mu = self.mu[: self.k_eff]
        d0 = float(np.sum(self.a**2)) + self.rest
        nn, pen = (self.n - self.p, self.mu) if reml else (self.n, self.xi)
        return float(pen.sum()) - nn * float(np.sum(self.a**2 * mu)) / d0

    def minimise(self, reml: bool) -> tuple[float, float]:
        """Global minimum of the criterion over lambda >= 0: ``(lambda_hat, criterion)``."""

        def f(lam: float) -> float:
            return float(self.objective(lam, reml))

        mu = self.mu[: self.k_eff]
        lo, hi = 1e-6 / float(mu.max()), 1e6 / float(mu.min())
        npts = math.ceil(math.log10(hi / lo) * POINTS_PER_DECADE) + 1
        grid = np.concatenate([[0.0], np.geomspace(lo, hi, npts)])
        values = np.asarray(self.objective(grid, reml))
        while values[-1] < values[-2] and grid[-1] * mu.min() < 1e15:  # minimum above the grid
            grid = np.append(grid, grid[-1] * 10.0)
            values = np.append(values, f(grid[-1]))
        best = (0.0, float(values[0]))
        m = grid.size
        for k in range(m):
            left = k == 0 or values[k] <= values[k - 1]
            right = k == m - 1 or values[k] <= values[k + 1]
            if not (left and right):
                continue
            if k == 0:
                if self._slope_at_zero(reml) >= 0.0:
                    continue  # lambda = 0 is a local minimum (already the start)
                res = minimize_scalar(f, bounds=(0.0, grid[1]), method="bounded",
                                      options={"xatol": 1e-13 * grid[1]})
            else:
                b = (math.log(grid[k - 1]) if k > 1 else math.log(grid[1]) - 3.0,
                     math.log(grid[min(k + 1, m - 1)]))
                res = minimize_scalar(lambda t: f(math.exp(t)), bounds=b, method="bounded",
                                      options={"xatol": 1e-11})
                res.x = math.exp(res.x)
            cand = (float(res.x), float(res.fun))
            if values[k] < cand[1]:
                cand = (float(grid[k]), float(values[k]))
            if cand[1] < best[1]:
                best = cand
        return best

    def fit(self, reml: bool) -> OneComponentFit:
        """Fit by REML (``reml=True``) or ML; estimates at the global optimum.

        Examples
        --------
        >>> import numpy as np
        >>> y = np.array([1.0, 2.0, 4.0, 3.0, 6.0, 5.0])
        >>> m = OneComponentModel.from_arrays(y, np.ones((6, 1)),
        ...                                   np.kron(np.eye(3), np.ones((2, 1))))
        >>> fit = m.fit(reml=True)
        >>> round(fit.sigma2, 4), round(fit.sigma2_b, 4)   # the ANOVA estimates
        (0.5, 3.75)
        """
        lam, obj = self.minimise(reml)
        d = float(self._rss(np.array([lam]))[0])
        sigma2 = d / (self.n - self.p if reml else self.n)
        beta, coef = self._modes(lam)
        return OneComponentFit(reml=reml, lam=lam, objective=obj, sigma2=sigma2,
                               beta=beta, zt_coef=coef, n=self.n, p=self.p, K=self.K,
                               k_eff=self.k_eff)

    def _modes(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """GLS beta and the conditional modes of u at ``lam`` (augmented least squares)."""
        p, k = self.p, self.K
        if lam == 0.0:
            beta = np.linalg.lstsq(self.X, self.y, rcond=None)[0] if p else np.empty(0)
            return beta, np.zeros(k)
        s = math.sqrt(lam)
        top = np.hstack([self.X, s * self.Zt])
        bottom = np.hstack([np.zeros((k, p)), np.eye(k)])
        coef = np.linalg.lstsq(np.vstack([top, bottom]), np.concatenate([self.y, np.zeros(k)]),
                               rcond=None)[0]
        return coef[:p], s * coef[p:]


@dataclass(frozen=True, eq=False)
class OneComponentFit:
    """A fitted one-component LMM (REML or ML).

    Attributes
    ----------
    reml : bool
    lam : float
        The variance ratio sigma_b^2 / sigma^2 (on the scale of ``Z R'``).
    objective : float
        lme4's REML criterion or ML deviance (-2 log-likelihood) at the optimum.
    sigma2 : float
        Residual variance.
    beta : ndarray
        Fixed effects (GLS at ``lam``).
    zt_coef : ndarray
        Conditional modes of ``u`` in ``Z b = Z R' u`` (``b = R' u``).
    n, p, K, k_eff : int
        Observations, fixed effects, random-effect columns, non-zero eigenvalues.
    names : tuple of str
        Names of the fixed-effect columns (set by the caller).
    """

    reml: bool
    lam: float
    objective: float
    sigma2: float
    beta: np.ndarray
    zt_coef: np.ndarray
    n: int
    p: int
    K: int
    k_eff: int
    names: tuple[str, ...] = field(default=())

    @property
    def sigma2_b(self) -> float:
        """Variance of the random effect, ``lam * sigma2``."""
        return self.lam * self.sigma2

    @property
    def singular(self) -> bool:
        """The variance estimate is zero (a boundary fit)."""
        return self.lam == 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the fit."""
        names = self.names or tuple(f"x{j}" for j in range(self.p))
        return {"kind": "one-component LMM", "reml": self.reml, "objective": self.objective,
                "lambda": self.lam, "sigma2": self.sigma2, "sigma2_b": self.sigma2_b,
                "beta": dict(zip(names, map(float, self.beta), strict=True)),
                "n": self.n, "p": self.p, "K": self.K, "k_eff": self.k_eff,
                "singular": self.singular}

    def summary(self) -> str:
        """A few lines: criterion, variances, fixed effects."""
        crit = "REML criterion" if self.reml else "deviance (-2 log L)"
        names = self.names or tuple(f"x{j}" for j in range(self.p))
        lines = [f"one-component LMM fitted by {'REML' if self.reml else 'ML'} "
                 f"(n = {self.n}, p = {self.p}, K = {self.K})",
                 f"  {crit} = {self.objective:.4f}",
                 f"  sigma_b^2 = {self.sigma2_b:.6g}, sigma^2 = {self.sigma2:.6g}, "
                 f"ratio = {self.lam:.6g}" + ("  (boundary fit)" if self.singular else "")]
        lines += [f"  {nm} = {b:.6g}" for nm, b in zip(names, self.beta, strict=True)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()
