"""SIGTERM treated like Ctrl-C while long work runs, so that finished work is kept.

Batch schedulers stop a job with SIGTERM (then SIGKILL after a grace period).
Inside :func:`interruptible`, SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``: the bootstrap, the exact test and ``power()`` catch
``KeyboardInterrupt`` between chunks and return what finished, marked as
interrupted.  The handler is installed only for the duration of the work, only
in the main thread, and only where SIGTERM has its default action (a handler
of the application's own, or an ignored SIGTERM, is left alone); the previous
handler is restored afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_last: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM received during long work (handled like Ctrl-C)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    _last.append(signum)
    raise Terminated(f"received signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``).

    Examples
    --------
    >>> import os, signal
    >>> try:
    ...     with interruptible():
    ...         os.kill(os.getpid(), signal.SIGTERM)
    ... except KeyboardInterrupt as exc:
    ...     print(type(exc).__name__, signal_name(exc))
    Terminated SIGTERM
    >>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    True
    """
    sigterm = getattr(signal, "SIGTERM", None)
    if sigterm is None or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(sigterm) is not signal.SIG_DFL:
        yield
        return
    previous = signal.signal(sigterm, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(sigterm, previous)


def signal_name(exc: BaseException) -> str:
    """``"SIGTERM"`` for :class:`Terminated`, else ``"SIGINT"`` (Ctrl-C)."""
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def exit_status(exc: BaseException | None = None) -> int:
    """The shell's exit status for an interrupted command: 128 + the signal number.

    130 after Ctrl-C (SIGINT), 143 after SIGTERM.  Without ``exc``, the last
    SIGTERM received in :func:`interruptible` decides (else SIGINT).
    """
    if exc is not None:
        term = isinstance(exc, Terminated)
    else:
        term = bool(_last)
    return 128 + int(signal.SIGTERM if term else signal.SIGINT)
