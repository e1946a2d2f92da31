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

import contextlib
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
    remote = _ship(c, task)
    pending = {c.submit(_call, remote, a, b, pure=False): (a, b) for a, b in ranges}
    tries: dict[tuple[int, int], int] = {}
    queue = as_completed(list(pending))
    for future in queue:
        a, b = pending.pop(future)
        try:
            result = future.result()
        except Exception:  # a worker died, or the shipped task was lost with it
            tries[a, b] = tries.get((a, b), 0) + 1
            if tries[a, b] > MAX_RETRIES:
                raise
            if remote.status != "finished":
                remote = _ship(c, task)
            retry = c.submit(_call, remote, a, b, pure=False)
            pending[retry] = (a, b)
            queue.add(retry)
            continue
        on_result(a, b, result)


#: Times a chunk is resubmitted after its worker died.
MAX_RETRIES = 3


def _identity(x: Any) -> Any:
    return x


def _ship(client: Any, task: Any) -> Any:
    """A future holding ``task``, copied to every worker (recomputable if lost)."""
    remote = client.submit(_identity, task, pure=False)
    with contextlib.suppress(Exception):  # replication is an optimisation only
        client.replicate([remote])
    return remote


def threadsafe_layer() -> bool:
    """Whether Numba's threading layer lets several Python threads launch parallel kernels.

    ``omp`` and ``tbb`` do; ``workqueue`` (Numba's fallback when neither
    OpenMP nor TBB is available) does not, and would abort the process.
    """
    import numba

    try:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
        return numba.threading_layer() in ("omp", "tbb")
    except Exception:  # pragma: no cover - an unusual Numba build: stay serial
        return False


def run_rows(
    work: Callable[[int, int | None], Any],
    n_rows: int,
    threads: int | None,
) -> list[Any]:
    """``[work(i, row_threads) for i in range(n_rows)]``, rows run side by side.

    ``threads`` (default: all of Numba's) is the budget: up to ``threads``
    rows run at once in Python threads (the kernels release the GIL), each
    with ``threads // workers`` Numba threads of its own (Numba's thread count
    is per thread).  A row's numbers depend only on its seed, so they are the
    same whatever the number of workers; with a threading layer that is not
    thread-safe the rows run one after another.  The first row to fail raises
    its exception (the rows not yet started are cancelled).

    Examples
    --------
    >>> run_rows(lambda i, t: i * i, 4, threads=2)
    [0, 1, 4, 9]
    """
    import numba

    total = int(numba.config.NUMBA_NUM_THREADS if threads is None else threads)
    workers = max(1, min(n_rows, total))
    if workers == 1 or not threadsafe_layer():
        return [work(i, threads) for i in range(n_rows)]
    from concurrent.futures import ThreadPoolExecutor

    per_row = max(1, total // workers)

    def row(i: int) -> Any:
        numba.set_num_threads(per_row)  # per thread: this row's share
        return work(i, per_row)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vctest-row") as pool:
        futures = [pool.submit(row, i) for i in range(n_rows)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
