"""``.. vctest-run::`` -- run a page's code when the docs are built and show what it prints.

The directive's content is Python.  It runs in one namespace per page (so a
later block uses the names of an earlier one), with its printed output
captured; a final bare expression is shown as at the interactive prompt
(its ``repr``, ``None`` omitted).  The page then shows the code and, below it,
the output -- both as they are when the page is built, never pasted by hand.

Readable at 1280 px: an output line longer than :data:`MAX_WIDTH` characters
(wider than the page's text column at 1280 px with the left sidebar off)
is a Sphinx warning, so ``sphinx -W`` fails the build instead of shipping
a table that scrolls sideways.  An exception in the code fails the build too.

Why a small directive of our own: matplotlib's plot directive (used for the
figures) shows no text output, and the notebook tools (myst-nb, nbsphinx)
would make every page a notebook; this one needs only docutils and Sphinx.
"""

from __future__ import annotations

import ast
import contextlib
import io
from typing import Any

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

#: Longest output line (characters) that fits the text column at 1280 px.
MAX_WIDTH = 100

logger = logging.getLogger(__name__)


def run_code(code: str, namespace: dict[str, Any]) -> str:
    """Execute ``code`` in ``namespace``; return what it printed (and the last expression).

    Examples
    --------
    >>> run_code("x = 2\\nprint(x)\\nx + 1", {})
    '2\\n3\\n'
    """
    tree = ast.parse(code)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(tree, "<vctest-run>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<vctest-run>", "eval"), namespace)
            if value is not None:
                print(repr(value))
    return out.getvalue()


def too_wide(text: str, width: int = MAX_WIDTH) -> list[str]:
    """The lines of ``text`` longer than ``width`` characters."""
    return [line for line in text.splitlines() if len(line.rstrip()) > width]


class VctestRun(SphinxDirective):
    """Run the content; show the code, then its output."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        code = "\n".join(self.content)
        namespace = self.env.temp_data.setdefault("vctest_run_namespace", {})
        try:
            output = run_code(code, namespace)
        except Exception as exc:
            raise self.error(f"vctest-run: the code failed: {type(exc).__name__}: {exc}") from exc
        source = nodes.literal_block(code, code, language="python")
        shown: list[nodes.Node] = [source]
        if output.strip():
            for line in too_wide(output):
                logger.warning("vctest-run: an output line has %d characters (more than %d "
                               "do not fit the page at 1280 px): %r", len(line.rstrip()),
                               MAX_WIDTH, line[:60] + "...", location=self.get_location())
            text = output.rstrip("\n")
            block = nodes.literal_block(text, text, language="text")
            block["classes"].append("vctest-run-output")
            shown.append(block)
        return shown


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("vctest-run", VctestRun)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
