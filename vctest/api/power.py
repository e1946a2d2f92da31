"""``power``: rejection rates of the tests under specified alternatives."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vctest._data import as_frame
from vctest._pvalue import wilson_interval
from vctest._rng import SeedLike, child_sequence, entropy_of, seed_sequence
from vctest._signals import interruptible
from vctest.api._checks import check_backend, check_family, offset_values
from vctest.api._pipeline import (
    BootstrapFailureWarning,
    Draws,
    fit_null,
    term_pair,
    test_term,
)
from vctest.formula.design import Design, build_design
from vctest.model.glm import simulate_response
from vctest.nulls.bootstrap import Generator
from vctest.nulls.executor import chunk_ranges, run_chunks
from vctest.nulls.power import POWER_METHODS


@dataclass(frozen=True, eq=False)
class PowerResult:
    """Rejection rates by effect size and method.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``effect_size``, ``method``, ``rejections``, ``datasets``,
        ``rate``, ``ci_low``, ``ci_high`` (Wilson 95%).
    alpha : float
        The level at which each test rejects.
    settings : dict
        The call's settings (formula, term, data sets, draws, seed entropy, ...).
    interrupted : bool
        Stopped by Ctrl-C or SIGTERM: the table counts the data sets that
        finished (``datasets`` per row; a row with none has rate NaN).
    """

    table: pd.DataFrame
    alpha: float
    settings: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    def plot(self, ax: Any = None) -> Any:
        """Power curves with their Monte Carlo intervals (needs matplotlib)."""
        from vctest.report.power_curve import plot_rates

        return plot_rates(self.table, "effect_size", self.alpha,
                          "effect size (sd of the tested effect / residual sd)"
                          if self.settings.get("family", "gaussian") == "gaussian" else
                          "effect size (sd of the tested effect, linear-predictor scale)", ax)

    def summary(self) -> str:
        """The rejection rates as a text table, one row per effect size and method."""
        cols = ["effect_size", "method", "rejections", "datasets", "rate", "ci_low", "ci_high"]
        table = self.table[[c for c in cols if c in self.table]]
        return (f"Power at alpha = {self.alpha:g} (rejection rates, Wilson 95% intervals)\n"
                + table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    def __repr__(self) -> str:
        from vctest._tables import clip_lines

        return clip_lines(self.summary(), what="result.table")

    def _repr_html_(self) -> str:
        from vctest._tables import frame_html

        return frame_html(f"Power at alpha = {self.alpha:g}", self.table,
                          "Rejection rates with Wilson 95% intervals.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"alpha": self.alpha, "settings": dict(self.settings),
                "interrupted": self.interrupted,
                "table": self.table.to_dict(orient="records")}


@dataclass(frozen=True, eq=False)
class _PowerTask:
    """Simulate and test data sets ``start .. stop - 1`` of one effect size (picklable).

    The response is drawn from the null model plus the tested effect (see
    :meth:`_response`); each method's test then runs the test pipeline.
    """

    design: Design
    null: Generator
    other: tuple[tuple[Any, np.ndarray], ...]
    term: str
    block: int
    effect: float
    methods: tuple[str, ...]
    alpha: float
    nsim_exact: int
    nsim_bootstrap: int
    reml: bool
    seed: np.random.SeedSequence

    def _response(self, rng: np.random.Generator) -> np.ndarray:
        """One response: the null model's draw plus the tested effect."""
        block = self.design.blocks[self.block]
        if not self.null.gaussian:
            model = self.null.model
            eta = self.null.linear_predictor(rng)
            b = rng.standard_normal(block.n_levels) * self.effect
            eta += block.columns[:, 0] * b[block.codes]
            return simulate_response(model.fam_code, model.link_code, eta, model.weights, rng)
        mu, sigma = self.null.mu, self.null.sigma
        y = mu + sigma * rng.standard_normal(mu.size) / np.sqrt(self.null.model.weights)
        for blk, factor in self.other:
            u = rng.standard_normal((blk.n_levels, blk.k)) @ factor.T
            y += sigma * np.einsum("ij,ij->i", blk.columns, u[blk.codes])
        b = rng.standard_normal(block.n_levels) * self.effect * sigma
        return y + block.columns[:, 0] * b[block.codes]

    def _test(self, design: Design, i: int) -> np.ndarray:
        """Reject or not, by each method, for data set ``i``.

        Method ``m``'s draws come from the stream ``spawn_key + (i, 1 + m)`` of the
        effect size's sequence: they follow the user's seed and differ between data
        sets and effect sizes (data set ``i`` itself draws from ``spawn_key + (i,)``).
        """
        glmm = not self.null.gaussian
        model = ({"family": self.null.model.family, "link": self.null.model.link,
                  "offset": self.null.model.offset} if glmm else {})
        row = np.zeros(len(self.methods), dtype=bool)
        res = None
        for m, method in enumerate(self.methods):
            if method == "naive":
                continue
            nsim = self.nsim_exact if method == "exact" else self.nsim_bootstrap
            res = test_term(design, self.term, method,
                            Draws(nsim=nsim, seed=child_sequence(self.seed, i, 1 + m),
                                  threads=1, progress=False),
                            reml=self.reml, **model)
            if res.interrupted:  # a test cut short does not count as a data set
                raise KeyboardInterrupt
            row[m] = res.pvalue <= self.alpha
        if "naive" in self.methods:
            if res is None:
                res = test_term(design, self.term, "asymptotic", Draws(nsim=0),
                                reml=self.reml, **model)
            naive = next(p for k, p in res.asymptotic.items() if k.startswith("naive"))
            row[self.methods.index("naive")] = naive <= self.alpha
        return row

    def __call__(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((stop - start, len(self.methods)), dtype=bool)
        for i in range(start, stop):
            rng = np.random.default_rng(child_sequence(self.seed, i))
            design = dataclasses.replace(self.design, y=self._response(rng))
            with warnings.catch_warnings():
                # failed replicates are counted by the test; a simulated response
                # with a separated GLM is a legitimate data set, not news
                warnings.simplefilter("ignore", BootstrapFailureWarning)
                warnings.filterwarnings("ignore", message="the GLM's deviance converged")
                warnings.filterwarnings("ignore", message="separation in the fixed")
                out[i - start] = self._test(design, i)
        return out


def power(
    formula: str,
    data: pd.DataFrame | str,
    *,
    term: str,
    effect_sizes: list[float] | np.ndarray,
    nsim: int = 200,
    alpha: float = 0.05,
    methods: tuple[str, ...] | None = None,
    nsim_exact: int = 10_000,
    nsim_bootstrap: int = 199,
    reml: bool = True,
    seed: SeedLike = None,
    backend: str = "local",
    client: Any = None,
    family: str = "gaussian",
    link: str | None = None,
    offset: str | Any = None,
    weights: str | Any = None,
) -> PowerResult:
    """Power of the tests of a scalar variance component by simulation.

    Data sets are simulated from the model fitted without ``term`` (its fixed
    effects, residual sd and other variance components) plus the tested effect
    with standard deviation ``effect_size * sigma``; every method tests each
    data set.  ``effect_size = 0`` gives the type-I error.  For a GLMM
    (``family`` binomial or Poisson) the effect's standard deviation is
    ``effect_size`` on the scale of the linear predictor (logit, log, ...),
    and the responses are drawn given it (binomial successes out of the same
    trials, Poisson counts).

    Parameters
    ----------
    formula, data, term
        As for :func:`vctest.vc_test`; ``term`` must be one scalar variance
        component.
    effect_sizes : sequence of float
        Standard deviations of the tested effect in units of the residual sd.
    nsim : int, default 200
        Data sets per effect size.
    alpha : float, default 0.05
    methods : tuple of {"exact", "bootstrap", "asymptotic", "naive"}, optional
        ``"asymptotic"`` is the chi-bar-square mixture, ``"naive"`` the
        textbook chi-square with the number of removed parameters.  Default
        ``("exact", "bootstrap", "asymptotic")``, and for a GLMM (no exact
        null) ``("bootstrap", "asymptotic")``.
    nsim_exact, nsim_bootstrap : int
        Draws of each test (exact null draws; bootstrap replicates).
    reml : bool, default True
    seed : int, SeedSequence or numpy.random.Generator, optional
        Data set ``i`` of effect size ``k`` has its own stream.
    backend : {"local", "dask"}, default "local"
    client : dask.distributed.Client, optional
    family, link, offset, weights
        As for :func:`vctest.vc_test` (the data sets are simulated with the
        prior weights: Gaussian residual variance ``sigma^2 / w_i``).

    Returns
    -------
    PowerResult

    Examples
    --------
    >>> import vctest
    >>> pw = vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
    ...                   effect_sizes=[0.0, 1.5], nsim=20, methods=("exact",),
    ...                   nsim_exact=2000, seed=1)
    >>> list(pw.table.columns)
    ['effect_size', 'method', 'rejections', 'datasets', 'rate', 'ci_low', 'ci_high']
    """
    check_backend(backend)
    check_family(family, link, offset)
    glmm = family != "gaussian"
    if methods is None:
        methods = ("bootstrap", "asymptotic") if glmm else ("exact", "bootstrap", "asymptotic")
    if glmm and "exact" in methods:
        raise ValueError("`methods` cannot include 'exact' for a GLMM: there is no exact "
                         "null; use 'bootstrap', 'asymptotic' or 'naive'.")
    if isinstance(nsim, bool) or not isinstance(nsim, int) or nsim < 1:
        raise ValueError(f"`nsim` must be a positive integer; got {nsim!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    bad = [m for m in methods if m not in POWER_METHODS]
    if bad or not methods:
        raise ValueError(f"`methods` must be a non-empty subset of {POWER_METHODS}; got "
                         f"{methods!r}.")
    sizes = np.asarray(effect_sizes, dtype=float).ravel()
    if sizes.size == 0 or np.any(~np.isfinite(sizes)) or np.any(sizes < 0):
        raise ValueError("`effect_sizes` must be finite, non-negative numbers.")
    frame = as_frame(data)
    design = build_design(formula, frame, weights=weights)
    pair = term_pair(design, term)
    loc, null_design = pair.location, pair.null
    if not pair.single_scalar:
        raise ValueError(f"`term` {loc.label} must be a single variance component for "
                         "power(); it sets the standard deviation of one effect.")
    root = seed_sequence(seed)
    settings = {"formula": formula, "term": loc.label, "nsim": nsim, "alpha": alpha,
                "nsim_exact": nsim_exact, "nsim_bootstrap": nsim_bootstrap, "reml": reml,
                "seed_entropy": entropy_of(root), "backend": backend, "family": family}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen, null_fit = fit_null(null_design, family=family, link=link,
                                 offset=offset_values(offset, frame, design.row_index),
                                 reml=reml)
    other = []
    if glmm:
        reml = False
        settings.update(link=gen.model.link, reml=False, nsim_exact=None,
                        effect_scale="sd of the tested effect on the linear-predictor scale")
    elif null_fit is not None:
        for blk, factor in zip(null_design.blocks, null_fit.model.layout.factors(null_fit.theta),
                               strict=True):
            other.append((blk, np.asarray(factor)))
    tasks = [_PowerTask(design=design, null=gen, other=tuple(other), term=term, block=loc.block,
                        effect=float(effect), methods=tuple(methods), alpha=alpha,
                        nsim_exact=nsim_exact, nsim_bootstrap=nsim_bootstrap, reml=reml,
                        seed=child_sequence(root, k))
             for k, effect in enumerate(sizes)]
    return _run(tasks, nsim, tuple(methods), alpha, settings, backend, client)


def _run(tasks: list[_PowerTask], nsim: int, methods: tuple[str, ...], alpha: float,
         settings: dict[str, Any], backend: str, client: Any) -> PowerResult:
    """Simulate and test ``nsim`` data sets per effect size; tabulate the rejections.

    Locally each data set is its own chunk, so Ctrl-C (or SIGTERM) keeps every
    data set that finished; the result is then marked ``interrupted``.
    """
    rejected = [np.zeros((nsim, len(methods)), dtype=bool) for _ in tasks]
    finished = [np.zeros(nsim, dtype=bool) for _ in tasks]
    interrupted = False
    try:
        with interruptible():
            for task, rej, fin in zip(tasks, rejected, finished, strict=True):

                def take(a: int, b: int, r: np.ndarray, rej: np.ndarray = rej,
                         fin: np.ndarray = fin) -> None:
                    rej[a:b] = r
                    fin[a:b] = True

                size = 1 if backend == "local" else max(1, nsim // 8)
                run_chunks(task, chunk_ranges(0, nsim, size), take, backend=backend,
                           client=client)
    except KeyboardInterrupt:
        if not any(f.any() for f in finished):
            raise
        interrupted = True
    rows = []
    for task, rej, fin in zip(tasks, rejected, finished, strict=True):
        n = int(fin.sum())
        for m, method in enumerate(methods):
            r = int(rej[fin, m].sum())
            lo, hi = wilson_interval(r, n)
            rows.append({"effect_size": task.effect, "method": method, "rejections": r,
                         "datasets": n, "rate": r / n if n else float("nan"), "ci_low": lo,
                         "ci_high": hi})
    if interrupted:
        done = sum(int(f.sum()) for f in finished)
        settings = {**settings, "interrupted": True, "datasets_finished": done}
        warnings.warn(f"power() interrupted after {done} of {nsim * len(tasks)} data sets; "
                      "the table counts those that finished.", RuntimeWarning, stacklevel=3)
    return PowerResult(table=pd.DataFrame(rows), alpha=alpha, settings=settings,
                       interrupted=interrupted)
