"""Plain text for messages: no terminal colour codes from third-party errors."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def plain(text: object) -> str:
    """``str(text)`` without ANSI escape sequences (colours, bold, cursor moves).

    Examples
    --------
    >>> plain("Days + Days\\x1b[1;31m::\\x1b[0m")
    'Days + Days::'
    """
    return _ANSI.sub("", str(text))
