"""``power_curve``: power of the tests of a random effect along a sample-size axis.

For each size the design is built once (:func:`vctest.api.study.extend_frame`
then :func:`~vctest.formula.design.build_design`); the data sets are
simulated, refitted and tested in compiled code by
:class:`vctest.nulls.power.PowerTask`.  Size ``k`` draws from the child
``spawn_key + (k,)`` of the user's seed; inside it every data set and every
inner test has its own stream, so the numbers do not depend on threads,
chunks or Dask.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vctest._pvalue import wilson_interval
from vctest._rng import SeedLike, child_sequence, entropy_of, seed_sequence
from vctest._signals import interruptible
from vctest.api._checks import check_backend, check_threads
from vctest.api._pipeline import Pair, check_method, model_pair, term_pair
from vctest.api.study import StudyModel, extend_frame, make_model
from vctest.formula.design import Design, build_design
from vctest.model.fit import OptimizerSettings
from vctest.model.glm import GeneralizedLinearModel
from vctest.model.glmm import GeneralizedLinearMixedModel
from vctest.model.lmm import LinearMixedModel
from vctest.model.structure import GlmmSettings
from vctest.nulls.bootstrap import PROGRESS_AFTER_SECONDS, Generator
from vctest.nulls.exact import spectral_design
from vctest.nulls.executor import chunk_ranges, resolve_client, run_chunks
from vctest.nulls.power import POWER_METHODS, PowerTask, Start
from vctest.report.power_curve import COLUMNS, PowerCurve

#: Data sets per local chunk (the progress bar and Ctrl-C work chunk by chunk).
LOCAL_CHUNK = 32


def power_curve(
    model: StudyModel | Any,
    *,
    sizes: Sequence[int],
    along: str | None = None,
    within: str | None = None,
    term: str | None = None,
    null: str | None = None,
    nsim: int = 200,
    alpha: float = 0.05,
    methods: Sequence[str] | None = None,
    nsim_exact: int = 10_000,
    nsim_bootstrap: int = 199,
    sequential: bool = True,
    stop_error: float = 1e-3,
    reml: bool = True,
    seed: SeedLike = None,
    threads: int | None = None,
    progress: bool | None = None,
    backend: str = "local",
    client: Any = None,
) -> PowerCurve:
    """Power of the tests of a random effect at each sample size, by simulation.

    At each size the design is ``model``'s extended (or cut) to that many
    levels of ``along`` (or rows per level of ``within``); ``nsim`` data sets
    are simulated from the model's parameters, the full model and the model
    without ``term`` (or the ``null`` formula) are refitted to each, and each
    method tests the likelihood-ratio statistic.  A model whose tested
    variance is zero gives each method's size.

    Parameters
    ----------
    model : StudyModel or fit
        From :func:`vctest.make_model` (or a fit of :func:`vctest.fit`, taken
        with its estimates as the truth).
    sizes : sequence of int
        Numbers of levels of ``along`` (or of rows per level of ``within``).
    along, within : str
        The factor the sizes count levels of, or rows within the levels of
        (exactly one).
    term : str, optional
        The random-effects term to test, as for :func:`vctest.vc_test`: a
        scalar variance component (``"(1 | Subject)"``), a random slope with
        its correlation (``"Days | Subject"`` in ``(Days | Subject)``), ...
    null : str, optional
        Instead of ``term``, the null model's formula (any nested pair; ML
        unless the fixed effects are the same).
    nsim : int, default 200
        Data sets per size.
    alpha : float, default 0.05
    methods : sequence of {"exact", "bootstrap", "asymptotic", "naive"}, optional
        Default: every method that applies (``exact`` for one variance
        component of an LMM; ``asymptotic`` where a chi-bar-square mixture is
        known).
    nsim_exact, nsim_bootstrap : int
        Most null draws per data set (exact draws; bootstrap replicates).
    sequential : bool, default True
        Stop a data set's null draws once its decision at ``alpha`` is settled
        with error ``stop_error``; False draws them all.
    stop_error : float, default 1e-3
    reml : bool, default True
        REML criteria for an LMM pair with the same fixed effects.
    seed : int, SeedSequence or Generator, optional
    threads : int, optional
        Numba threads (never changes a number).
    progress : bool, optional
        A progress bar over the data sets (default: on a terminal or in a
        notebook when the run is slow).
    backend : {"local", "dask"}, default "local"
    client : dask.distributed.Client, optional

    Returns
    -------
    PowerCurve

    Examples
    --------
    >>> import vctest
    >>> d = vctest.design_frame({"Batch": 6, "rep": 5})
    >>> m = vctest.make_model("y ~ 1 + (1 | Batch)", d, fixef=[10.0],
    ...                       varcorr={"Batch": 0.5}, sigma=1.0)
    >>> pc = vctest.power_curve(m, term="(1 | Batch)", along="Batch", sizes=[4, 8],
    ...                         nsim=20, methods=("exact", "naive"), seed=1)
    >>> pc.to_frame()[["size", "method", "datasets"]].values.tolist()
    [[4, 'exact', 20], [4, 'naive', 20], [8, 'exact', 20], [8, 'naive', 20]]
    """
    study = model if isinstance(model, StudyModel) else make_model(model)
    sizes_t = _check_args(study, sizes, along, within, term, null, nsim, alpha, nsim_exact,
                          nsim_bootstrap, stop_error, reml, threads, backend)
    glmm = study.family != "gaussian"
    reml = bool(reml) and not glmm
    root = seed_sequence(seed)
    local = backend == "local"
    tasks, first_pair = [], None
    for k, size in enumerate(sizes_t):
        frame = extend_frame(study.frame, along=along, within=within, n=size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a placeholder response is not news
            design = study.design(frame)
            pair = _pair(study, design, frame, term, null, reml)
        if first_pair is None:
            first_pair = pair
            methods_t = _methods(pair, methods)
        tasks.append(_task(study, design, pair, methods_t, alpha, nsim_exact, nsim_bootstrap,
                           sequential, stop_error, child_sequence(root, k),
                           threads if local else None))
    assert first_pair is not None
    settings = {
        "formula": study.formula, "null_formula": first_pair.null.formula.text,
        "term": first_pair.label, "family": study.family, "link": study.link,
        "reml": first_pair.reml, "sizes": list(sizes_t), "axis": along or within,
        "axis_text": (f"numbers of levels of {along}" if along else
                      f"numbers of rows per level of {within}"),
        "nsim": nsim, "alpha": alpha, "methods": list(methods_t), "nsim_exact": nsim_exact,
        "nsim_bootstrap": nsim_bootstrap, "sequential": sequential, "stop_error": stop_error,
        "seed_entropy": entropy_of(root), "backend": backend, "df": first_pair.df,
        "test": ("restricted likelihood-ratio test" if first_pair.reml
                 else "likelihood-ratio test"),
        "other_random_effects": len(first_pair.full.blocks) > 1,
        "beta": dict(study.beta), "theta": study.theta.tolist(), "sigma": study.sigma,
    }
    n_workers = 1
    if not local:
        n_workers = max(len(resolve_client(client).scheduler_info().get("workers", {})), 1)
    return _run(tasks, sizes_t, nsim, methods_t, alpha, settings, backend, client, n_workers,
                progress)


def _check_args(study: StudyModel, sizes: Any, along: Any, within: Any, term: Any, null: Any,
                nsim: Any, alpha: Any, nsim_exact: Any, nsim_bootstrap: Any, stop_error: Any,
                reml: Any, threads: Any, backend: Any) -> tuple[int, ...]:
    """Validate the arguments of :func:`power_curve`; return the sizes."""
    check_backend(backend)
    check_threads(threads)
    if (term is None) == (null is None):
        raise ValueError("give exactly one of `term` (the random-effects term to test) and "
                         "`null` (the null model's formula).")
    if (along is None) == (within is None):
        raise ValueError("give exactly one of `along` (sizes count levels of this factor) and "
                         "`within` (sizes count rows per level of this factor).")
    for name, value in (("nsim", nsim), ("nsim_exact", nsim_exact),
                        ("nsim_bootstrap", nsim_bootstrap)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    if not (isinstance(stop_error, float | int) and 0 < stop_error < 1):
        raise ValueError(f"`stop_error` must be in (0, 1); got {stop_error!r}.")
    if not isinstance(reml, bool | np.bool_):
        raise TypeError(f"`reml` must be True or False; got {type(reml).__name__}.")
    try:
        values = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"`sizes` must be a sequence of positive integers; got "
                         f"{sizes!r}.") from None
    if not values or any(v < 1 for v in values) or any(int(s) != s for s in sizes):
        raise ValueError(f"`sizes` must be a non-empty sequence of positive integers; got "
                         f"{list(sizes)!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"`sizes` must not repeat a size; got {values}.")
    return tuple(values)


def _pair(study: StudyModel, design: Design, frame: pd.DataFrame, term: str | None,
          null: str | None, reml: bool) -> Pair:
    """The full design and the null (without ``term``, or the ``null`` formula)."""
    family = study.family
    if term is not None:
        return term_pair(design, term, family=family, link=study.link, reml=reml)
    null_design = build_design(null, frame, weights=study.weights)  # type: ignore[arg-type]
    same = (null_design.n == design.n)
    if not same:
        raise ValueError("the `null` formula drops rows the full model keeps; both must use "
                         "the same rows of the design.")
    from vctest.model.nesting import nesting

    use_reml = reml and nesting(design, null_design).same_fixed
    return model_pair(design, null_design, family=family, link=study.link, reml=use_reml)


def _methods(pair: Pair, methods: Sequence[str] | None) -> tuple[str, ...]:
    """The methods to run (validated against the pair)."""
    if methods is None:
        out = []
        if not pair.glmm and pair.single_scalar:
            out.append("exact")
        out.append("bootstrap")
        if pair.mixture is not None:
            out.append("asymptotic")
        out.append("naive")
        return tuple(out)
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    bad = [m for m in methods if m not in POWER_METHODS]
    if bad or not methods or len(set(methods)) != len(methods):
        raise ValueError(f"`methods` must be distinct names from {POWER_METHODS}; got "
                         f"{methods!r}.")
    for m in methods:
        if m == "exact" and pair.glmm:
            raise ValueError("`methods` cannot include 'exact' for a GLMM: there is no exact "
                             "null; use 'bootstrap', 'asymptotic' or 'naive'.")
        if m == "exact" and pair.location is None:
            raise ValueError("'exact' needs `term=` (one variance component), not `null=`; "
                             "use 'bootstrap' for a general nested pair.")
        if m in ("exact", "asymptotic"):
            check_method(pair, m)
    return methods


def _task(study: StudyModel, design: Design, pair: Pair, methods: tuple[str, ...],
          alpha: float, nsim_exact: int, nsim_bootstrap: int, sequential: bool,
          stop_error: float, seed: np.random.SeedSequence, threads: int | None) -> PowerTask:
    """The simulation of one size: alternative, the two models and their starts."""
    beta = study.beta_for(design)
    if pair.glmm:
        full_model: Any = GeneralizedLinearMixedModel.from_design(design, study.family,
                                                                  study.link, None)
        null_model: Any = (GeneralizedLinearMixedModel.from_design(pair.null, study.family,
                                                                   study.link, None)
                           if pair.null.blocks else
                           GeneralizedLinearModel.from_design(pair.null, study.family,
                                                              study.link, None))
        settings: Any = GlmmSettings()
    else:
        full_model = LinearMixedModel.from_design(design)
        null_model = LinearMixedModel.from_design(pair.null,
                                                  random_effects=bool(pair.null.blocks))
        settings = OptimizerSettings()
    if study.theta.size != full_model.layout.size:
        raise ValueError(f"the model has {study.theta.size} theta values but its design at "
                         f"this size has {full_model.layout.size}.")
    alternative = Generator(model=full_model, theta=study.theta.copy(), beta=beta,
                            sigma=study.sigma, objective=math.nan)
    fixed = not pair.null.blocks
    theta0 = (np.zeros(0) if fixed else null_model.layout.initial() / null_model.theta_scale)
    by_name = dict(zip(design.fixed_names, beta, strict=True))
    beta0 = np.array([by_name.get(name, 0.0) for name in pair.null.fixed_names])
    if fixed and pair.glmm:
        beta0 = np.full(beta0.size, np.nan)  # a GLM starts from R's mustart
    null_start = Generator(model=null_model, theta=theta0, beta=beta0, sigma=study.sigma,
                           objective=math.nan, fixed_theta=fixed)
    full_start = Start(model=full_model,
                       theta=full_model.layout.initial() / full_model.theta_scale,
                       beta=beta, settings=settings)
    mixture = ("scalar" if pair.single_scalar else "slope") if pair.mixture else None
    spectral = (spectral_design(design, pair.location.block)  # type: ignore[union-attr]
                if "exact" in methods else None)
    return PowerTask(alternative=alternative, null=null_start, full=full_start,
                     embed=pair.nested.embed, reml=pair.reml, df=pair.df, mixture=mixture,
                     spectral=spectral, methods=methods, alpha=alpha, nsim_exact=nsim_exact,
                     nsim_bootstrap=nsim_bootstrap, sequential=sequential,
                     stop_error=stop_error, seed=seed, threads=threads)


def _run(tasks: list[PowerTask], sizes: tuple[int, ...], nsim: int, methods: tuple[str, ...],
         alpha: float, settings: dict[str, Any], backend: str, client: Any, n_workers: int,
         progress: bool | None) -> PowerCurve:
    """Run every size's task in chunks; tabulate the rejections (Ctrl-C keeps what finished)."""
    n_m = len(methods)
    stats = [np.full(nsim, np.nan) for _ in tasks]
    failure = [np.zeros(nsim, dtype=np.int8) for _ in tasks]
    pvals = [np.full((nsim, n_m), np.nan) for _ in tasks]
    draws = [np.zeros((nsim, n_m), dtype=np.int64) for _ in tasks]
    finished = [np.zeros(nsim, dtype=bool) for _ in tasks]
    total = nsim * len(tasks)
    state: dict[str, Any] = {"bar": None, "done": 0, "t0": time.perf_counter()}
    interrupted = False
    size = LOCAL_CHUNK if backend == "local" else max(1, -(-nsim // (4 * n_workers)))
    try:
        with interruptible():
            for k, task in enumerate(tasks):

                def take(a: int, b: int, r: tuple[np.ndarray, ...], k: int = k) -> None:
                    stats[k][a:b], failure[k][a:b], pvals[k][a:b], draws[k][a:b] = r
                    finished[k][a:b] = True
                    _advance(state, progress, b - a, total)

                run_chunks(task, chunk_ranges(0, nsim, size), take, backend=backend,
                           client=client)
    except KeyboardInterrupt:
        if not any(f.any() for f in finished):
            raise
        interrupted = True
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    rows = []
    for k, s in enumerate(sizes):
        fin = finished[k]
        for c, method in enumerate(methods):
            p = pvals[k][fin, c]
            ok = np.isfinite(p)
            n, r = int(ok.sum()), int(np.sum(p[ok] <= alpha))
            lo, hi = wilson_interval(r, n)
            rows.append({"size": s, "method": method, "rejections": r, "datasets": n,
                         "failed": int(fin.sum()) - n, "rate": r / n if n else math.nan,
                         "ci_low": lo, "ci_high": hi,
                         "mean_draws": float(draws[k][fin, c][ok].mean()) if n else math.nan})
    if interrupted:
        done = int(sum(f.sum() for f in finished))
        settings = {**settings, "interrupted": True, "datasets_finished": done}
        warnings.warn(f"power_curve() interrupted after {done} of {nsim * len(tasks)} data "
                      "sets; the table counts those that finished.", RuntimeWarning,
                      stacklevel=3)
    return PowerCurve(table=pd.DataFrame(rows, columns=list(COLUMNS)), alpha=alpha,
                      settings=settings,
                      statistics={s: stats[k] for k, s in enumerate(sizes)},
                      pvalues={s: pvals[k] for k, s in enumerate(sizes)},
                      interrupted=interrupted)


def _advance(state: dict[str, Any], progress: bool | None, step: int, total: int) -> None:
    """Count finished data sets; open a progress bar when asked, or (``progress=None``)
    on a terminal or in a notebook once the rest looks longer than a couple of seconds."""
    from vctest._progress import interactive, progress_bar

    state["done"] += step
    if state["bar"] is not None:
        state["bar"].update(step)
        return
    per = (time.perf_counter() - state["t0"]) / state["done"]
    slow = per * (total - state["done"]) > PROGRESS_AFTER_SECONDS
    if progress or (progress is None and slow and interactive()):
        state["bar"] = progress_bar(total=total, initial=state["done"], unit="data set",
                                    desc="power curve", leave=False)
