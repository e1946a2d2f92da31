"""``.. vctest-run::`` (docs/_ext/vctest_run.py): pages' code runs at build time, and its
output fits the page at 1280 px (no line over 100 characters)."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

vctest_run = pytest.importorskip("vctest_run")   # needs Sphinx (the docs extra)


def test_run_code_prints_and_shows_the_last_expression():
    ns: dict = {}
    assert vctest_run.run_code("x = 2\nprint(x)\nx + 1", ns) == "2\n3\n"
    assert vctest_run.run_code("y = x * 10\nNone", ns) == ""   # one namespace per page
    assert ns["y"] == 20
    with pytest.raises(ZeroDivisionError):
        vctest_run.run_code("1 / 0", ns)


def test_too_wide_finds_lines_over_100_characters():
    assert vctest_run.too_wide("a" * 100 + "\n" + "b" * 101 + "\n") == ["b" * 101]
    assert vctest_run.MAX_WIDTH == 100


def _blocks(page):
    """The code of each vctest-run block of a page."""
    text = (ROOT / "docs" / page).read_text()
    out = []
    for m in re.finditer(r"\.\. vctest-run::\n\n((?:   .*\n|\n)+)", text):
        out.append("\n".join(line[3:] for line in m.group(1).rstrip().splitlines()))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("page", ["glmm.rst", "convergence.rst"])
def test_page_outputs_fit_1280_px(page):
    """What the page shows, run as Sphinx runs it: every line at most 100 characters."""
    blocks = _blocks(page)
    assert len(blocks) >= 3
    ns: dict = {}
    outputs = [vctest_run.run_code(code, ns) for code in blocks]
    assert all(out.strip() for out in outputs)
    wide = [line for out in outputs for line in vctest_run.too_wide(out)]
    assert not wide, wide
    if page == "glmm.rst":
        assert "Fixed effects:" in outputs[0] and "'converged'" in outputs[0]
        assert "statistic = 14.0058" in outputs[1]
    else:
        assert outputs[0].strip() == "'converged'" and outputs[1].strip() == "'boundary'"
        assert "Convergence check: CONVERGED" in outputs[4]


def test_summaries_are_at_most_100_characters_wide():
    import vctest

    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=2000, seed=1)
    text = res.summary() + "\n" + res.confint(nsim=2000).summary()
    assert "spectral representation" in text           # wrapped, not cut
    assert not vctest_run.too_wide(text), text
    report = vctest.check(vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff2"))
    assert not vctest_run.too_wide(report.summary())
