"""``vctest.warmup()``: compile every Numba kernel ahead of time.

Runs tiny representative jobs through the public API on bundled data, so that
each kernel is compiled and written to the on-disk cache (see
:mod:`vctest.kernels._jit`).  Do it once when building a Docker image, in a CI
job whose cache directory is kept, or on each Dask worker before a big run;
afterwards the first call in a new process only loads the cached machine code.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vctest.api.fitting import fit
from vctest.api.testing import vc_test
from vctest.kernels import _jit, tiers

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _lmm_fit() -> None:
    fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")


def _exact_test() -> None:
    vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)", nsim=2000, seed=1,
            progress=False)


def _lmm_bootstrap() -> None:
    vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)", method="bootstrap",
            nsim=8, seed=1, progress=False)


def _glmm_fit() -> None:
    fit(CBPP, "cbpp", family="binomial")


def _glmm_bootstrap() -> None:
    vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial", nsim=4, seed=1,
            progress=False)


def _poisson_fit() -> None:
    fit("TICKS ~ YEAR + (1 | BROOD)", "grouseticks", family="poisson")


STAGES: tuple[tuple[str, Callable[[], None]], ...] = (
    ("LMM fit", _lmm_fit),
    ("exact test", _exact_test),
    ("LMM bootstrap", _lmm_bootstrap),
    ("GLMM fit", _glmm_fit),
    ("GLMM bootstrap", _glmm_bootstrap),
    ("Poisson fit", _poisson_fit),
)
"""The warm-up jobs, in order: (name, job)."""


@dataclass(frozen=True)
class WarmupReport:
    """What :func:`vctest.warmup` did: seconds per stage and where the cache is.

    Attributes
    ----------
    stages : tuple of (str, float)
        Each stage's name and wall-clock seconds (compilation, or loading
        from the cache when it was warm already).
    cache_dir : str or None
        The kernel cache directory (``None``: on-disk caching is off, so the
        compiled kernels last only as long as this process).
    """

    stages: tuple[tuple[str, float], ...]
    cache_dir: str | None

    @property
    def seconds(self) -> float:
        """Total wall-clock seconds."""
        return float(sum(s for _, s in self.stages))

    def summary(self) -> str:
        """A short table: one line per stage, the total and the cache directory."""
        width = max(len(name) for name, _ in self.stages) if self.stages else 5
        lines = ["vctest warmup"]
        lines += [f"  {name:<{width}}  {secs:7.1f} s" for name, secs in self.stages]
        lines.append(f"  {'total':<{width}}  {self.seconds:7.1f} s")
        where = self.cache_dir or "off (VCTEST_NUMBA_CACHE=0 or no writable directory)"
        lines.append(f"cache: {where}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON)."""
        return {"stages": dict(self.stages), "seconds": self.seconds,
                "cache_dir": self.cache_dir}

    def _repr_html_(self) -> str:
        from vctest._tables import text_html

        return text_html("vctest warmup", self.summary())

    def __repr__(self) -> str:
        return (f"WarmupReport({len(self.stages)} stages, {self.seconds:.1f} s, "
                f"cache_dir={self.cache_dir!r})")


def warmup(progress: bool = True) -> WarmupReport:
    """Compile all of vctest's numerical kernels now, and cache them on disk.

    Runs a tiny job of each kind through the public API on bundled data: an
    LMM fit (sleepstudy), an exact test and a parametric bootstrap (Dyestuff),
    a binomial GLMM fit and bootstrap (cbpp) and a Poisson GLMM fit
    (grouseticks), with the tier policy set to ``compile``
    (``vctest.kernels.tiers``: jobs this small would otherwise run the
    kernels' source as Python and compile nothing).  The first time this takes
    a minute or two of CPU; with a warm cache, a few seconds.  The cache lives
    in ``$VCTEST_CACHE_DIR`` (by default ``~/.cache/vctest/numba``), in a
    subdirectory keyed by a digest of the kernel sources and the Numba version,
    so it never serves stale kernels.

    Parameters
    ----------
    progress : bool, default True
        Show a progress bar over the stages (on stderr; a widget in a
        notebook with ``vctest[notebook]``).

    Returns
    -------
    WarmupReport
        Seconds per stage and the cache directory; ``summary()`` prints them.
    """
    from vctest._progress import progress_bar

    done: list[tuple[str, float]] = []
    bar = progress_bar(iterable=STAGES, desc="vctest warmup", unit="stage",
                       disable=not progress, leave=False)
    with bar, warnings.catch_warnings():
        # the jobs are toys: their warnings (and the compile notice) mean nothing here
        warnings.simplefilter("ignore")
        for name, job in bar:
            bar.set_postfix_str(name)
            start = time.perf_counter()
            with tiers.forced("compile"):  # tiny jobs would otherwise run as Python
                job()
            done.append((name, time.perf_counter() - start))
    cache_dir = str(_jit.CACHE_DIR) if _jit.CACHE else None
    return WarmupReport(stages=tuple(done), cache_dir=cache_dir)
