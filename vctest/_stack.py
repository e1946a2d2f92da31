"""Where a warning raised inside vctest should point: the first caller outside it."""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = str(Path(__file__).parent)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside vctest.

    Call it in the function that calls :func:`warnings.warn`.

    Examples
    --------
    >>> user_stacklevel() >= 1
    True
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level
