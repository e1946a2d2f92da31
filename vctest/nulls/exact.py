"""Exact nulls from a fitted design: eigenvalues, the observed statistic, test inversion.

For one scalar random-effects term b ~ N(0, sigma_b^2 I) with design Z (n x K)
and fixed effects X (n x p), the (restricted) likelihood-ratio statistic for
H0: lambda = sigma_b^2 / sigma^2 = lambda0 has an exact finite-sample null
determined by n, p and the eigenvalues

    mu = eig(Z' P0 Z),  P0 = I - X (X'X)^-1 X'   (REML and ML)
    xi = eig(Z' Z)                                  (ML only)

(Crainiceanu & Ruppert 2004).  They are computed here without an n x K matrix
and, when levels share their sum of squares (groups of equal size), without a
K x K one either (:mod:`vctest.nulls.term_spectrum`), so a random intercept
with a million groups stays cheap.
With other random effects in the model, the same single-component null is the
pseudo-model approximation of Greven et al. (2008).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from vctest.formula.design import Design
from vctest._text import wrap_lines
from vctest.nulls.spectral import NullInputs, lrt_inputs, rlrt_inputs, rlrt_null
from vctest.nulls.term_spectrum import scalar_term_spectrum


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

    The eigenvalues come from :func:`~vctest.nulls.term_spectrum.scalar_term_spectrum`,
    which never forms a K x K matrix when levels share their sum of squares
    (a random intercept: levels of equal size), so one million groups cost
    about as much as the model matrix.

    Raises
    ------
    ValueError
        If the block has more than one column (not a single variance component),
        or if its levels leave a dense eigenvalue problem too large for memory
        (a random slope on a continuous covariate with very many levels).
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
    q = None
    if design.prior_weights is not None:  # the whitened model W^(1/2) y: its null is exact
        sw = np.sqrt(design.prior_weights)
        x, z = x * sw[:, None], z * sw
    elif p:
        q = design.qr()[0]  # the factorisation the fits used
    values, counts, ztz = scalar_term_spectrum(x, z, blk.codes, blk.n_levels,
                                               label=blk.term.label, q=q)
    mu = np.sort(np.repeat(values, counts))[::-1]
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
        lines = [text]
        if self.icc is not None:
            lines.append(f"  intraclass correlation: {self.icc[0]:.4g} to {self.icc[1]:.4g}")
        return wrap_lines(lines)

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
    ``q`` (ML only) is the number of fixed effects that are also 0 under H0:
    the LRT's null then gains the term ``n log(1 + chi2_q / chi2_(n-p))``
    (Crainiceanu & Ruppert 2004; see :func:`~vctest.nulls.spectral.lrt_null`).
    """

    design: SpectralDesign
    reml: bool
    seed: np.random.SeedSequence
    threads: int | None = None
    lambda0: float = 0.0
    q: int = 0

    @cached_property
    def inputs(self) -> NullInputs:
        """The spectral kernel's inputs (validated and tabled once per task)."""
        sd = self.design
        if self.reml:
            return rlrt_inputs(sd.mu, sd.n, sd.p, self.lambda0)
        return lrt_inputs(sd.mu, sd.xi, sd.n, sd.p, self.q)

    def __call__(self, start: int, stop: int) -> np.ndarray:
        return self.inputs.draw(stop - start, self.seed, self.threads, start)[0]


#: Draws per chunk at most (8 MB of float64).
CHUNK_DRAWS = 1_000_000

#: Local runs size their chunks to take about this long (an interrupt waits for
#: the chunk in progress; the first chunk has :data:`FIRST_CHUNK` draws).
CHUNK_SECONDS = 0.5
FIRST_CHUNK = 4096


def simulate_null(task: SpectralTask, nsim: int, observed: float, *, keep: bool,
                  backend: str = "local", client=None, n_workers: int = 1):
    """Run ``task`` for ``nsim`` draws in chunks; return ``(sample or None, sketch)``.

    With ``keep=False`` memory stays flat: each chunk is folded into a
    :class:`~vctest.nulls.sketch.NullSketch` and dropped.  Draw ``i`` depends
    only on the seed and ``i``, so the chunking never changes a number.

    Ctrl-C (or SIGTERM, see :mod:`vctest._signals`) between chunks keeps the
    chunks that finished: the sample (in draw order) or the sketch then holds
    fewer than ``nsim`` draws, which is how the caller knows.  An interrupt
    before the first chunk finished propagates.
    """
    import time

    from vctest._signals import interruptible
    from vctest.nulls.executor import chunk_ranges, run_chunks
    from vctest.nulls.sketch import NullSketch

    sample = np.empty(nsim) if keep else None
    state = {"sketch": NullSketch(observed=observed)}
    finished: list[tuple[int, int]] = []

    def take(a: int, b: int, draws: np.ndarray) -> None:
        if sample is not None:
            sample[a:b] = draws
        else:  # fold into a copy, so that an interrupt mid-way leaves the sketch whole
            sketch = dataclasses.replace(state["sketch"], counts=state["sketch"].counts.copy())
            sketch.add(draws)
            state["sketch"] = sketch
        finished.append((a, b))

    try:
        with interruptible():
            if backend == "dask":
                size = min(CHUNK_DRAWS, max(1, -(-nsim // (4 * max(n_workers, 1)))))
                run_chunks(task, chunk_ranges(0, nsim, size), take, backend=backend,
                           client=client)
            else:
                done, size = 0, min(nsim, FIRST_CHUNK)
                while done < nsim:
                    stop = min(nsim, done + size)
                    t0 = time.perf_counter()
                    run_chunks(task, [(done, stop)], take, backend=backend, client=client)
                    per_draw = (time.perf_counter() - t0) / (stop - done)
                    size = int(min(max(size, CHUNK_SECONDS / max(per_draw, 1e-12)),
                                   CHUNK_DRAWS))
                    done = stop
    except KeyboardInterrupt:
        if not finished:
            raise
        if sample is not None:
            sample = np.concatenate([sample[a:b] for a, b in sorted(finished)])
    return sample, state["sketch"]
