"""Exact nulls from a fitted design: eigenvalues, the observed statistic, test inversion.

For one scalar random-effects term b ~ N(0, sigma_b^2 I) with design Z (n x K)
and fixed effects X (n x p), the (restricted) likelihood-ratio statistic for
H0: lambda = sigma_b^2 / sigma^2 = lambda0 has an exact finite-sample null
determined by n, p and the eigenvalues

    mu = eig(Z' P0 Z),  P0 = I - X (X'X)^-1 X'   (REML and ML)
    xi = eig(Z' Z)                                  (ML only)

(Crainiceanu & Ruppert 2004).  They are computed here from K x K cross-products
(never an n x K dense matrix), so large designs such as InstEval stay cheap.
With other random effects in the model, the same single-component null is the
pseudo-model approximation of Greven et al. (2008).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from vctest.formula.design import Design
from vctest.nulls.spectral import lrt_null, rlrt_null


@dataclass(frozen=True, eq=False)
class SpectralDesign:
    """What the exact null of one scalar term depends on.

    Attributes
    ----------
    n, p : int
        Observations and fixed-effect columns (rank of X).
    mu : ndarray
        Eigenvalues of Z'P0Z (all K of them, zeros included).
    xi : ndarray
        Eigenvalues of Z'Z.
    """

    n: int
    p: int
    mu: np.ndarray
    xi: np.ndarray

    @property
    def K(self) -> int:
        """Number of random-effect columns."""
        return int(self.mu.size)


def spectral_design(design: Design, block: int) -> SpectralDesign:
    """Eigenvalues of the scalar random-effects term ``design.blocks[block]``.

    Raises
    ------
    ValueError
        If the block has more than one column (not a single variance component).
    """
    blk = design.blocks[block]
    if blk.k != 1:
        raise ValueError(
            f"term {blk.term.label} has {blk.k} correlated columns, not a single variance "
            "component; the exact null applies to one variance component."
        )
    x = np.asarray(design.X, dtype=float)
    n, p = x.shape
    z = blk.columns[:, 0]
    codes = blk.codes
    ztz = np.bincount(codes, weights=z * z, minlength=blk.n_levels)
    if p:
        q, _ = np.linalg.qr(x)
        qtz = np.empty((p, blk.n_levels))
        for i in range(p):
            qtz[i] = np.bincount(codes, weights=q[:, i] * z, minlength=blk.n_levels)
        m = np.diag(ztz) - qtz.T @ qtz
    else:
        m = np.diag(ztz)
    mu = np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)[::-1]
    return SpectralDesign(n=n, p=p, mu=mu, xi=np.sort(ztz)[::-1])


def linear_model_objective(x: np.ndarray, y: np.ndarray, reml: bool) -> float:
    """-2 log-likelihood of the linear model y = X beta + e (restricted if ``reml``).

    The profiled deviance with no random effects: n(1 + log(2 pi RSS / n)) for
    ML; (n - p)(1 + log(2 pi RSS / (n - p))) + log|X'X| for REML.
    """
    n, p = x.shape
    if p:
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        rss = float(np.sum((y - x @ beta) ** 2))
    else:
        rss = float(np.sum(y**2))
    if reml:
        _, logdet = np.linalg.slogdet(x.T @ x) if p else (1.0, 0.0)
        return (n - p) * (1.0 + math.log(2 * math.pi * rss / (n - p))) + float(logdet)
    return n * (1.0 + math.log(2 * math.pi * rss / n))


@dataclass(frozen=True)
class ConfidenceInterval:
    """An exact confidence interval for the variance ratio lambda = sigma_b^2 / sigma^2.

    Attributes
    ----------
    level : float
        Confidence level, e.g. 0.95.
    lower, upper : float
        Bounds for lambda (``upper`` may be ``inf``).
    estimate : float
        The REML estimate of lambda.
    icc : tuple of float or None
        The same interval for the intraclass correlation lambda / (1 + lambda),
        given for a random intercept.
    nsim : int
        Null draws per candidate lambda0 (common random numbers across lambda0).
    """

    level: float
    lower: float
    upper: float
    estimate: float
    icc: tuple[float, float] | None
    nsim: int

    def summary(self) -> str:
        """One or two lines: the interval for the variance ratio (and the ICC)."""
        text = (f"{self.level:.0%} exact confidence interval for sigma_b^2 / sigma^2: "
                f"{self.lower:.4g} to {self.upper:.4g} (REML estimate {self.estimate:.4g}; "
                f"{self.nsim} null draws per candidate)")
        if self.icc is not None:
            text += f"\n  intraclass correlation: {self.icc[0]:.4g} to {self.icc[1]:.4g}"
        return text

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from vctest._tables import text_html

        return text_html("Confidence interval (test inversion)", self.summary())

    def to_dict(self) -> dict:
        """JSON-ready form (``inf`` as None)."""
        up = self.upper if math.isfinite(self.upper) else None
        return {"level": self.level, "lower": self.lower, "upper": up,
                "estimate": self.estimate, "icc": list(self.icc) if self.icc else None,
                "nsim": self.nsim}


def invert_rlrt(profile, estimate: float, sd: SpectralDesign, *, level: float, nsim: int,
                seed, threads: int | None = None, rtol: float = 1e-3,
                intercept: bool = False) -> ConfidenceInterval:
    """Invert the exact RLRT of H0: lambda = lambda0 into a confidence interval.

    ``profile(lam)`` returns the REML criterion at variance ratio ``lam``; the
    interval is {lambda0 : p(lambda0) > 1 - level}, where p is the Monte Carlo
    p-value of RLRT(lambda0) = profile(lambda0) - profile(estimate) against the
    exact null at lambda0 (Crainiceanu & Ruppert 2004, with lambda0 > 0).  All
    candidate lambda0 use the same seed, so the acceptance curve is smooth.
    Endpoints are found by bisection to relative precision ``rtol``.
    """
    from vctest._pvalue import monte_carlo_pvalue

    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1); got {level}.")
    alpha = 1.0 - level
    base = profile(estimate)

    def accept(lam0: float) -> bool:
        stat = max(profile(lam0) - base, 0.0)
        sample = rlrt_null(sd.mu, sd.n, sd.p, lambda0=lam0, nsim=nsim, seed=seed,
                           threads=threads)
        return monte_carlo_pvalue(stat, sample).pvalue > alpha

    mu_pos = sd.mu[sd.mu > 1e-10 * sd.mu.max()]
    scale = 1.0 / float(mu_pos.max())
    far = 1e8 / float(mu_pos.min())

    def bisect(accepted: float, rejected: float) -> float:
        # accept(accepted) is True and accept(rejected) is False; narrow the gap
        while abs(rejected - accepted) > rtol * max(accepted, rejected, scale * 1e-8):
            both_pos = accepted > 0 and rejected > 0
            mid = math.sqrt(accepted * rejected) if both_pos else 0.5 * (accepted + rejected)
            if accept(mid):
                accepted = mid
            else:
                rejected = mid
        return accepted

    lower = 0.0 if accept(0.0) else bisect(estimate, 0.0)
    last_accepted, candidate = estimate, max(2.0 * estimate, scale)
    upper = math.inf
    while candidate <= far:
        if not accept(candidate):
            upper = bisect(last_accepted, candidate)
            break
        last_accepted, candidate = candidate, 4.0 * candidate
    icc = None
    if intercept:
        icc = (lower / (1 + lower), 1.0 if math.isinf(upper) else upper / (1 + upper))
    return ConfidenceInterval(level=level, lower=lower, upper=upper, estimate=estimate,
                              icc=icc, nsim=nsim)


@dataclass(frozen=True, eq=False)
class SpectralTask:
    """Draws ``start .. stop - 1`` of the exact null of one design (picklable).

    Draw ``i`` depends only on the seed and ``i``, so chunks can run anywhere.
    """

    design: SpectralDesign
    reml: bool
    seed: np.random.SeedSequence
    threads: int | None = None
    lambda0: float = 0.0

    def __call__(self, start: int, stop: int) -> np.ndarray:
        sd = self.design
        if self.reml:
            return rlrt_null(sd.mu, sd.n, sd.p, lambda0=self.lambda0, nsim=stop - start,
                             seed=self.seed, threads=self.threads, start=start)
        return lrt_null(sd.mu, sd.xi, sd.n, sd.p, q=0, nsim=stop - start, seed=self.seed,
                        threads=self.threads, start=start)


#: Draws per chunk when the sample is not kept (8 MB of float64).
CHUNK_DRAWS = 1_000_000


def simulate_null(task: SpectralTask, nsim: int, observed: float, *, keep: bool,
                  backend: str = "local", client=None, n_workers: int = 1):
    """Run ``task`` for ``nsim`` draws in chunks; return ``(sample or None, sketch)``.

    With ``keep=False`` memory stays flat: each chunk is folded into a
    :class:`~vctest.nulls.sketch.NullSketch` and dropped.
    """
    from vctest.nulls.executor import chunk_ranges, run_chunks
    from vctest.nulls.sketch import NullSketch

    size = CHUNK_DRAWS
    if backend == "dask":
        size = min(CHUNK_DRAWS, max(1, -(-nsim // (4 * max(n_workers, 1)))))
    elif keep:
        size = nsim
    sample = np.empty(nsim) if keep else None
    sketch = NullSketch(observed=observed)

    def take(a: int, b: int, draws: np.ndarray) -> None:
        if sample is not None:
            sample[a:b] = draws
        else:
            sketch.add(draws)

    run_chunks(task, chunk_ranges(0, nsim, size), take, backend=backend, client=client)
    return sample, sketch
