"""Seeds: one :class:`numpy.random.SeedSequence` per call, one 64-bit seed per replicate.

Replicate ``i`` of a simulation always receives the same 64-bit seed for a given
user seed, however the replicates are split into chunks, threads or Dask tasks.
The seeds are generated block by block: block ``b`` (replicates
``b*BLOCK .. (b+1)*BLOCK - 1``) draws its seeds from the child sequence with
spawn key ``(..., b)``, so any range of replicates can be seeded without
generating the seeds of the others.  Kernels turn a replicate's seed into the
state of their own counter-free generator (``kernels.random``), so the numbers
never depend on Numba's thread-local generator or on the thread count.
"""

from __future__ import annotations

import numpy as np

SeedLike = int | np.integer | np.random.SeedSequence | np.random.Generator | None

#: Replicates per seed block.  Part of the reproducibility contract: changing it
#: changes every simulated number, so it is fixed.
BLOCK = 4096


def seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """Normalise a user seed to a :class:`numpy.random.SeedSequence`.

    Parameters
    ----------
    seed : int, SeedSequence, numpy.random.Generator or None
        ``None`` draws fresh entropy from the operating system; the entropy is
        kept on the sequence so that results can record it and be re-run.  A
        Generator gives 128 bits of entropy from its stream (so it advances,
        and two calls with one Generator draw differently); the entropy is
        recorded the same way, and ``seed=<that entropy>`` repeats the call.

    Returns
    -------
    numpy.random.SeedSequence

    Raises
    ------
    TypeError
        If ``seed`` is not an integer, a SeedSequence, a Generator or None.
    ValueError
        If ``seed`` is a negative integer.

    Examples
    --------
    >>> import numpy as np
    >>> ss = seed_sequence(np.random.default_rng(7))
    >>> again = seed_sequence(ss.entropy)
    >>> bool((ss.generate_state(4) == again.generate_state(4)).all())
    True
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int.from_bytes(seed.bytes(16), "little"))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"`seed` must be a non-negative integer, a numpy SeedSequence or Generator, or "
            f"None; got {type(seed).__name__}."
        )
    if int(seed) < 0:
        raise ValueError(f"`seed` must be non-negative; got {seed}.")
    return np.random.SeedSequence(int(seed))


def child_sequence(ss: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    """The child of ``ss`` with spawn key ``ss.spawn_key + keys`` (its own stream).

    Used where a simulation nests others (``power``: one stream per data set
    and one per inner test of it), so every stream depends on the user's seed
    and on its position only.

    Examples
    --------
    >>> ss = seed_sequence(1)
    >>> child_sequence(ss, 2, 3).spawn_key
    (2, 3)
    >>> a = child_sequence(ss, 0).generate_state(2)
    >>> b = child_sequence(seed_sequence(2), 0).generate_state(2)
    >>> bool((a != b).any())
    True
    """
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, *map(int, keys)))


def replicate_seeds(ss: np.random.SeedSequence, start: int, stop: int) -> np.ndarray:
    """Return the 64-bit seeds of replicates ``start`` to ``stop - 1``.

    Parameters
    ----------
    ss : numpy.random.SeedSequence
        The call's root sequence.
    start, stop : int
        Half-open range of replicate indices, ``0 <= start <= stop``.

    Returns
    -------
    numpy.ndarray of uint64, shape (stop - start,)

    Examples
    --------
    >>> import numpy as np
    >>> ss = seed_sequence(1)
    >>> whole = replicate_seeds(ss, 0, 10)
    >>> parts = np.concatenate([replicate_seeds(ss, 0, 3), replicate_seeds(ss, 3, 10)])
    >>> bool((whole == parts).all())
    True
    """
    if start < 0 or stop < start:
        raise ValueError(f"invalid replicate range [{start}, {stop}).")
    out = np.empty(stop - start, dtype=np.uint64)
    pos = 0
    first_block, last_block = start // BLOCK, (stop - 1) // BLOCK if stop > start else -1
    for block in range(first_block, last_block + 1):
        lo = max(start, block * BLOCK) - block * BLOCK
        hi = min(stop, (block + 1) * BLOCK) - block * BLOCK
        out[pos : pos + hi - lo] = _block_seeds(ss, block, lo, hi)
        pos += hi - lo
    return out


def _block_seeds(ss: np.random.SeedSequence, block: int, lo: int, hi: int) -> np.ndarray:
    """Seeds ``lo..hi-1`` of a block: splitmix64 over a counter keyed by the block.

    The block key is one 64-bit word of the child sequence with spawn key
    ``(..., block)``; splitmix64 (a bijective 64-bit mixer) of key + i * golden
    gives distinct, well-mixed seeds at a few ns each -- generating one word per
    replicate with ``SeedSequence.generate_state`` cost more than a draw.
    """
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, block))
    key = child.generate_state(1, dtype=np.uint64)[0]
    i = np.arange(lo + 1, hi + 1, dtype=np.uint64)
    z = key + i * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def entropy_of(ss: np.random.SeedSequence) -> int | list[int]:
    """The entropy of ``ss`` in a JSON-friendly form (for result provenance)."""
    ent = ss.entropy
    if isinstance(ent, int | np.integer):
        return int(ent)
    return [int(e) for e in np.atleast_1d(ent)]
