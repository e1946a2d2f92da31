"""Progress bars: a widget in Jupyter when ipywidgets is there, text otherwise, no warnings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from vctest import _progress

ROOT = Path(__file__).parents[1]


def test_text_bar_outside_a_notebook():
    assert not _progress.in_notebook()
    bar = _progress.progress_bar(total=2, disable=True)
    assert type(bar).__module__ == "tqdm.std"
    bar.close()


def test_notebook_without_ipywidgets_gets_a_text_bar_and_no_warning(monkeypatch):
    # the suite turns every warning into an error, so tqdm.auto's "IProgress not
    # found" would fail this test
    monkeypatch.setattr(_progress, "in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert not _progress.has_widgets()
    assert _progress.interactive()
    bar = _progress.progress_bar(total=2, disable=True)
    assert type(bar).__module__ == "tqdm.std"
    bar.close()


def test_notebook_with_ipywidgets_gets_the_widget(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setattr(_progress, "in_notebook", lambda: True)
    bar = _progress.progress_bar(total=2, disable=True)
    assert type(bar).__module__ == "tqdm.notebook"
    bar.close()


CELL = """
import warnings
warnings.simplefilter("error")
import vctest
from vctest import _progress
res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                     method="bootstrap", nsim=40, seed=1, progress=True)
bar = _progress.progress_bar(total=1, disable=True)
print(_progress.in_notebook(), _progress.has_widgets(), type(bar).__module__, res.nsim)
"""


@pytest.mark.slow
def test_bootstrap_progress_in_a_real_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "IProgress" not in stderr and "Warning" not in stderr, stderr
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout").split()
    in_nb, widgets, module, nsim = printed
    assert in_nb == "True" and nsim == "40"
    assert module == ("tqdm.notebook" if widgets == "True" else "tqdm.std")
