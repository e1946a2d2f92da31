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


#: Widest line of a plain-text summary: it fits a terminal, a notebook cell and the
#: documentation's text column at 1280 px without scrolling sideways.
SUMMARY_WIDTH = 100


def wrap_lines(lines: list[str], width: int = SUMMARY_WIDTH) -> str:
    """Join ``lines``, wrapping any longer than ``width`` at spaces.

    An element may hold several lines (a table's text); each is wrapped on its
    own.  A wrapped line continues on lines indented two spaces more than it.

    Examples
    --------
    >>> print(wrap_lines(["  note: " + "word " * 5], width=20))
      note: word word
        word word word
    """
    import textwrap

    out = []
    for line in (part for element in lines for part in element.split("\n")):
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        out.append(textwrap.fill(line, width=width, subsequent_indent=indent,
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)
