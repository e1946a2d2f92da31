"""The one place that sets Numba's jit options for vctest's kernels.

Every kernel module imports :func:`jit` (and :data:`prange`) from here, so the
compilation policy -- on-disk caching, fast-math off, the error model -- is
decided once.  Kernels are pure functions on arrays and scalars: they capture
no globals except other jitted kernels, which keeps the on-disk cache valid.

Environment
-----------
``VCTEST_NUMBA_CACHE=0``
    Turn off the on-disk cache (useful on read-only installs).
``NUMBA_DISABLE_JIT=1``
    Numba's own switch: every kernel then runs as plain Python, which must give
    the same numbers (tested on a fast subset).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

CACHE = os.environ.get("VCTEST_NUMBA_CACHE", "1") != "0"

_OPTIONS: dict[str, Any] = {
    "cache": CACHE,
    "fastmath": False,
    "error_model": "numpy",
    "nogil": True,
}

prange = numba.prange


def jit(func: F | None = None, *, parallel: bool = False) -> Any:
    """Compile ``func`` with vctest's jit options.

    Parameters
    ----------
    func : callable, optional
        The kernel.  When omitted, a decorator is returned.
    parallel : bool, default False
        Compile with ``parallel=True`` so that :data:`prange` loops run on
        Numba's thread pool.

    Returns
    -------
    numba dispatcher or decorator
    """

    def wrap(f: F) -> Any:
        return numba.njit(parallel=parallel, **_OPTIONS)(f)

    if func is None:
        return wrap
    return wrap(func)


def set_threads(n: int | None) -> int:
    """Set the number of Numba threads and return the previous setting.

    ``None`` means all available threads.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if n is None else int(n))
    return previous
