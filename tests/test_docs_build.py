"""The documentation builds without warnings, every cross-reference resolved (as CI requires).

The command is the README's: ``sphinx -W -n`` (``-n``: nitpicky, which
``docs/conf.py`` also sets).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("pydata_sphinx_theme")
    shutil.rmtree(ROOT / "docs" / "generated", ignore_errors=True)
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html",
                          str(ROOT / "docs"), str(tmp_path / "html")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    index = (tmp_path / "html" / "index.html").read_text()
    assert "Which test should I use?" in index and "plot-directive" in index
    for page in ("vctest.TestResult", "vctest.nulls.exact.ConfidenceInterval",
                 "vctest.model.doctor.ConvergenceReport", "vctest.api.power.PowerResult"):
        html = (tmp_path / "html" / "generated" / f"{page}.html").read_text()
        assert "summary" in html, page
    assert "\\|" not in (tmp_path / "html" / "errors.html").read_text()
    gallery = (tmp_path / "html" / "generated" / "gallery-sleepstudy.html").read_text()
    assert "Fixed effects" in gallery and "<img" in gallery      # executed, with outputs
    assert "plot-directive" in (tmp_path / "html" / "tutorial.html").read_text()
    # output made at build time by ``.. vctest-run::`` (lines <= 100 characters, or -W fails)
    glmm = (tmp_path / "html" / "glmm.html").read_text()
    assert "vctest-run-output" in glmm and "Fixed effects:" in glmm
    convergence = (tmp_path / "html" / "convergence.html").read_text()
    assert "Convergence check: CONVERGED" in convergence
    result_page = (tmp_path / "html" / "generated" / "vctest.TestResult.html").read_text()
    assert "_confint" not in result_page
    assert 'id="vctest.TestResult.confint"' in result_page
