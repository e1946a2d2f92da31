"""Tiered execution: a kernel's own source runs in the interpreter until compiling it pays.

Why
---
Compiling the engine's kernels costs tens of CPU seconds the first time
(about 23 s for the kernels of a linear mixed model fit, 6 s for the exact
test's, 30 s for the bootstrap's; cached on disk afterwards), while the work
of a typical first call is small: a sleepstudy fit is 12 evaluations of the
criterion, 0.06 s when the kernels' source runs in the Python interpreter.
Paying 23 s of compilation for 0.06 s of work is what made a first call slow.

What
----
The kernels Python calls are grouped into :class:`Tier` s, one per job whose
kernels are compiled together (the fit of a linear mixed model, of a GLMM,
the exact test's draws, the bootstrap).  A tier's kernels run compiled when

* they are compiled in this process already, or their machine code is in the
  on-disk cache (loading it takes a fraction of a second);
* or the interpreter has spent as long on the tier's work in this process as
  compiling it would take (``spent >= budget``, the classic rent-or-buy rule:
  the total time is never more than twice what the better choice in hindsight
  would have cost), or is predicted to (a call whose time, repeated
  :data:`LOOKAHEAD` times, would exceed what is left of the budget; a loop over
  replicates predicts from its rate and the rows left);

and as Python (:func:`vctest.kernels._jit.interpreted`) otherwise.  The switch
can happen in the middle of a fit or of a loop over replicates: both worlds
run the same source with the same IEEE arithmetic and the same C math
library, so **the numbers are the same bit for bit** whichever runs (tested
for every family, the exact test and the bootstrap).  Kernels that call LAPACK
(a dense block of order ``lapack_min`` or more) always run compiled, since
NumPy's LAPACK is not the one compiled code calls.

Control
-------
``VCTEST_JIT``: ``auto`` (the default, as above), ``compile`` (always compile,
as before tiers existed: for benchmarks of compiled speed), ``interpret``
(always run the tiered kernels' source as Python, compiled or not: a
debugging aid; LAPACK-sized fits still call compiled kernels).  :func:`forced` sets it
for a block (``vctest.warmup()`` runs in ``compile`` mode).  With
``NUMBA_DISABLE_JIT=1`` every kernel is Python anyway.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba

from vctest.kernels import _jit

MODES = ("auto", "compile", "interpret")

LOOKAHEAD = 20.0
"""A fit takes tens of evaluations: one call this slow, times this, is the fit's cost."""

_FORCED: list[str] = []


def mode() -> str:
    """The tier policy in force: :func:`forced`'s, else ``$VCTEST_JIT``, else ``auto``."""
    if _FORCED:
        return _FORCED[-1]
    value = os.environ.get("VCTEST_JIT", "").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"VCTEST_JIT={value!r} is not one of {', '.join(MODES)}; unset it "
                         "for the default ('auto')")
    return value


@contextmanager
def forced(policy: str) -> Iterator[None]:
    """Run a block under tier policy ``policy`` (one of :data:`MODES`)."""
    if policy not in MODES:
        raise ValueError(f"policy={policy!r} is not one of {', '.join(MODES)}")
    _FORCED.append(policy)
    try:
        yield
    finally:
        _FORCED.pop()


def is_cached(kernel: Any) -> bool:
    """Whether ``kernel`` is compiled in this process or has an index in the disk cache."""
    if getattr(kernel, "overloads", None):  # (cheaper than building .signatures)
        return True
    cache = getattr(kernel, "_cache", None)
    index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
    return bool(_jit.CACHE and index and os.path.exists(index))


class Tier:
    """Kernels compiled together for one kind of job, and the interpreter time spent on it.

    Parameters
    ----------
    name : str
        What the job is (for messages).
    compile_seconds : float
        About how many CPU seconds compiling the tier's kernels takes (the
        budget of interpretation before compiling).
    kernels : tuple of numba dispatchers
        The kernels whose compiled code the tier needs; the tier counts as
        compiled when all of them are compiled or cached.
    follows : tuple of Tier
        Tiers whose compilation this one follows (a small kernel that several
        jobs share: compiled as soon as one of them is).
    """

    def __init__(self, name: str, compile_seconds: float, kernels: tuple[Any, ...],
                 follows: tuple[Tier, ...] = ()) -> None:
        self.name = name
        self.budget = float(compile_seconds)
        self.kernels = kernels
        self.follows = follows
        self.spent = 0.0
        self._compiled = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"Tier({self.name!r}, spent {self.spent:.2f} s of {self.budget:.0f} s, "
                f"{'compiled' if self._compiled else 'interpreted'})")

    def compiled(self) -> bool:
        """Whether the tier's kernels run compiled now (see the module docstring)."""
        if numba.config.DISABLE_JIT:
            return False
        policy = mode()
        if policy != "auto":
            return policy == "compile"
        if self._compiled:
            return True
        if all(is_cached(k) for k in self.kernels) or any(t.compiled() for t in self.follows):
            self._compiled = True  # compiled in this process, or a load from the disk cache
        return self._compiled or self.spent >= self.budget

    def charge(self, seconds: float, predicted: float = 0.0) -> None:
        """Count ``seconds`` of interpretation; compile from now on if ``spent +
        predicted`` (the interpretation still ahead, as the caller predicts it)
        reaches the budget."""
        with self._lock:
            self.spent += seconds
            if mode() == "auto" and self.spent + predicted >= self.budget:
                self._compiled = True

    def reset(self) -> None:
        """Forget the time spent and the decision to compile (for tests)."""
        with self._lock:
            self.spent = 0.0
            self._compiled = False


class TieredKernel:
    """A kernel that runs compiled or as Python as its :class:`Tier` decides.

    Called, it is the kernel; either way the same numbers (module docstring).
    ``python`` maps other kernels to what the Python twin calls in their
    place (e.g. other :class:`TieredKernel` s).
    """

    def __init__(self, kernel: Any, tier: Tier,
                 python: dict[Any, Callable[..., Any]] | None = None) -> None:
        self.kernel = kernel
        self.tier = tier
        self.twin = _jit.interpreted(kernel, compiled=(), python=python)

    def __repr__(self) -> str:
        return f"TieredKernel({getattr(self.kernel, '__name__', self.kernel)!r}, {self.tier!r})"

    def __call__(self, *args: Any) -> Any:
        compiled = self.tier.compiled()
        start = time.perf_counter()
        try:
            return self.kernel(*args) if compiled else self.twin(*args)
        finally:
            took = time.perf_counter() - start
            _INNER.seconds = inner_seconds() + took
            if not compiled:
                self.tier.charge(took, predicted=LOOKAHEAD * took)


_INNER = threading.local()


def inner_seconds() -> float:
    """Seconds this thread has spent inside :class:`TieredKernel` calls (a running total:
    a driver subtracts two readings to find its own share of a call)."""
    return float(getattr(_INNER, "seconds", 0.0))


def run_rows(tier: Tier, rows: int, compiled: Callable[[int, int], None],
             twin: Callable[[int, int], None], first: int = 8) -> None:
    """Do rows ``0 .. rows - 1`` of a job whose rows are independent.

    ``compiled(lo, hi)`` does rows ``lo .. hi - 1`` with the compiled kernel
    and ``twin(lo, hi)`` the same with its Python twin (the same numbers).
    While the tier is not compiled, rows run as Python in growing chunks
    (``first`` rows, then doubling); after each chunk the time per row
    predicts the rest, and when the rest would cost more than what is left of
    the tier's budget (or the budget is spent), the remaining rows run compiled.
    """
    lo = 0
    size = max(1, int(first))
    while lo < rows and not tier.compiled():
        hi = min(rows, lo + size)
        start = time.perf_counter()
        twin(lo, hi)
        took = time.perf_counter() - start
        tier.charge(took, predicted=took / (hi - lo) * (rows - hi))
        lo, size = hi, 2 * size
    if lo < rows:
        compiled(lo, rows)
