"""The gallery notebook runs end to end."""

from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_gallery_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(ROOT / "docs" / "gallery" / "sleepstudy.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("Fixed effects" in h for h in html)
    assert any("Convergence check" in h for h in html)
    # the plot is drawn inline (no forced backend) and is the sleepstudy slope test's
    assert any("image/png" in o.get("data", {}) for o in outputs)
    sources = " ".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "matplotlib.use" not in sources and "Dyestuff" not in sources
