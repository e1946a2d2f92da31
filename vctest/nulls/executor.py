"""Run chunks of replicates locally or on a Dask cluster, with the same numbers.

A *task* is a picklable callable ``task(start, stop)`` that simulates
replicates ``start .. stop - 1``; replicate ``i`` depends only on the seed and
``i`` (:func:`vctest._rng.replicate_seeds`), so how replicates are split into
chunks and where they run never changes a number.  On Dask the task (with the
model workspace inside it) is scattered to every worker once, and chunks are
submitted as small futures; a worker that dies has its chunks recomputed by
the scheduler with the same seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BACKENDS = ("local", "dask")


def chunk_ranges(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Consecutive half-open ranges of at most ``size`` covering [start, stop).

    Examples
    --------
    >>> chunk_ranges(0, 10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    return [(a, min(a + size, stop)) for a in range(start, stop, max(int(size), 1))]


def resolve_client(client: Any) -> Any:
    """The Dask client to use: the one given, or the current default client."""
    try:
        from dask.distributed import default_client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("backend='dask' needs dask.distributed: "
                          "pip install 'vctest[dask]'") from None
    if client is not None:
        return client
    try:
        return default_client()
    except ValueError:
        raise ValueError("backend='dask' needs a running client: pass `client=` or create "
                         "one first (dask.distributed.Client()).") from None


def _call(task: Callable[[int, int], Any], start: int, stop: int) -> Any:
    return task(start, stop)


def run_chunks(
    task: Callable[[int, int], Any],
    ranges: Iterable[tuple[int, int]],
    on_result: Callable[[int, int, Any], None],
    *,
    backend: str = "local",
    client: Any = None,
) -> None:
    """Run ``task`` on every range and hand each result to ``on_result(start, stop, r)``.

    With ``backend="dask"`` results arrive in completion order; consumers
    place them by range, so the order does not matter.
    """
    ranges = list(ranges)
    if backend == "local":
        for a, b in ranges:
            on_result(a, b, task(a, b))
        return
    if backend != "dask":
        raise ValueError(f"`backend` must be one of {BACKENDS}; got {backend!r}.")
    from dask.distributed import as_completed

    c = resolve_client(client)
    remote = c.scatter(task, broadcast=True, hash=False)
    futures = {c.submit(_call, remote, a, b, pure=False): (a, b) for a, b in ranges}
    for future, result in as_completed(futures, with_results=True):
        a, b = futures[future]
        on_result(a, b, result)

