"""Every code block of the README runs, and prints what the README says it prints.

Python blocks run in order in one namespace (they build on each other, as a
reader typing them would); a ```` ```text ```` block right after a code block
is that block's printed output and must match it line by line.  Shell blocks:
each ``vctest ...`` command runs through the CLI's ``main`` (optional
``[--flag]`` parts dropped) and must exit 0, with its output checked the same
way when a text block follows; ``pip`` and ``pytest`` lines are the install and
test steps and are what this suite itself is run by.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)


def blocks() -> list[tuple[str, str, str | None]]:
    """(language, code, expected output or None) for each code block of the README."""
    text = README.read_text()
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, code, _, end) in enumerate(found):
        if lang == "text":
            continue
        expected = None
        nxt = found[i + 1] if i + 1 < len(found) else None
        if nxt is not None and nxt[0] == "text" and not text[end:nxt[2]].strip():
            expected = nxt[1]
        out.append((lang, code, expected))
    return out


def _lines(s: str) -> list[str]:
    return [line.rstrip() for line in s.strip("\n").splitlines()]


def shell_commands(code: str) -> list[list[str]]:
    """The ``vctest`` commands of a shell block, as argument lists (without ``vctest``)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    cmds = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0] if not line.lstrip().startswith("vctest") else line
        for part in line.split("&&"):
            part = re.sub(r"\s#\s.*$", "", part).strip()
            if part.startswith("vctest "):
                part = re.sub(r"\[[^\]]*\]", "", part)  # optional flags in brackets
                cmds.append(shlex.split(part)[1:])
    return cmds


def test_readme_has_checked_examples():
    found = blocks()
    assert sum(lang == "python" for lang, _, _ in found) >= 4
    # every python block that prints has its output written under it
    assert all(exp is not None for lang, _, exp in found if lang == "python"
               and "print(" in _), "a python block prints but shows no output"
    assert any(cmds for lang, code, _ in found if lang == "bash"
               for cmds in shell_commands(code))


@pytest.mark.slow
def test_readme_python_blocks_print_what_they_say():
    namespace: dict = {"__name__": "__readme__"}
    checked = 0
    for lang, code, expected in blocks():
        if lang != "python":
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, str(README), "exec"), namespace)
        printed = buf.getvalue()
        if expected is None:
            assert printed == "", f"this block prints but the README shows no output:\n{code}"
        else:
            assert _lines(printed) == _lines(expected), code
            checked += 1
    assert checked >= 4


@pytest.mark.slow
def test_readme_shell_commands_run(capsys):
    from vctest.cli import main

    ran = 0
    for lang, code, expected in blocks():
        if lang != "bash":
            continue
        cmds = shell_commands(code)
        capsys.readouterr()
        for argv in cmds:
            assert main(argv) == 0, argv
            ran += 1
        if expected is not None:
            assert _lines(capsys.readouterr().out) == _lines(expected), code
    assert ran >= 6


@pytest.mark.slow
def test_docs_landing_page_example_prints_what_it_says():
    import doctest

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    page = Path(__file__).parents[1] / "docs" / "index.rst"
    result = doctest.testfile(str(page), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0
    matplotlib.pyplot.close("all")
