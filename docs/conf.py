"""Sphinx configuration for vctest's documentation."""

import os
import sys

import vctest

project = "vctest"
author = "vctest developers"
copyright = "2026, vctest developers"
release = vctest.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    # Figures are drawn when the docs are built, by running the code on the page:
    # matplotlib's own plot directive needs nothing beyond matplotlib (already a docs
    # dependency), runs plain Python, and is maintained with matplotlib itself.
    "matplotlib.sphinxext.plot_directive",
    # Text output is made at build time too: ``.. vctest-run::`` (docs/_ext/vctest_run.py)
    # runs a page's code and shows what it prints, and warns (an error with -W) when an
    # output line is too wide for the page at 1280 px.
    "vctest_run",
]
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.figsize": (6.4, 4.2)}
plot_pre_code = "import matplotlib\nmatplotlib.use('Agg')\n"
templates_path = ["_templates"]
# Links to the Python/NumPy/pandas docs need the network; opt in with
# VCTEST_DOCS_INTERSPHINX=1 so that offline builds stay warning-free.
if os.environ.get("VCTEST_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
autosummary_generate = True
# Class pages document their methods and properties themselves
# (docs/_templates/autosummary/class.rst), so numpydoc adds no member tables.
numpydoc_show_class_members = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_validation_checks: set[str] = set()
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
}
intersphinx_disabled_reftypes = ["*"]
html_theme = "pydata_sphinx_theme"
# no empty left sidebar: the page text gets the width (code fits at 1280 px)
html_sidebars = {"**": []}
html_title = "vctest"
exclude_patterns = ["_build"]
# Every cross-reference must resolve (-W turns a broken one into an error).  Offline,
# links into NumPy, pandas, SciPy, Dask and Python cannot resolve: they are let through
# as plain text then, and checked for real with VCTEST_DOCS_INTERSPHINX=1.
nitpicky = True
if "sphinx.ext.intersphinx" not in extensions:
    nitpick_ignore_regex = [(r"py:.*", r"(numpy|pandas|scipy|dask|matplotlib|python)\..*")]


# -- the gallery notebook, executed and rendered with its outputs at build time ------------
# (nbclient runs it in a Jupyter kernel, as tests/test_gallery.py does; the page is
# written as reStructuredText: code, text output, the HTML views and the figures).

def _render_gallery(app):  # pragma: no cover - runs inside Sphinx
    import base64
    import pathlib
    import sys

    here = pathlib.Path(app.srcdir)
    out = here / "generated" / "gallery"
    out.mkdir(parents=True, exist_ok=True)
    source = here / "gallery" / "sleepstudy.ipynb"
    page = here / "generated" / "gallery-sleepstudy.rst"
    try:
        import nbclient
        import nbformat
    except ImportError:
        page.write_text("Sleepstudy notebook\n===================\n\nRendering the notebook "
                        "needs nbclient and nbformat (the ``docs`` extra).\n")
        return
    root = str(here.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    nb = nbformat.read(source, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": root}}).execute()

    def indent(text):
        return "\n".join("   " + line if line.strip() else "" for line in text.splitlines())

    parts = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            if lines and lines[0].startswith("# "):
                title = lines[0][2:].strip()
                lines = [title, "=" * len(title), *lines[1:]]
            parts.append("\n".join(lines).replace("`", "``"))
            continue
        parts.append(".. code-block:: python\n\n" + indent(cell.source))
        for j, o in enumerate(cell.get("outputs", [])):
            data = o.get("data", {})
            if o.get("output_type") == "stream":
                parts.append(".. code-block:: text\n\n" + indent(o["text"]))
            elif "image/png" in data:
                name = f"cell{i}-{j}.png"
                (out / name).write_bytes(base64.b64decode(data["image/png"]))
                parts.append(f".. image:: gallery/{name}\n   :alt: figure of cell {i}")
            elif "text/html" in data:
                parts.append(".. raw:: html\n\n" + indent(data["text/html"]))
            elif "text/plain" in data:
                parts.append(".. code-block:: text\n\n" + indent(data["text/plain"]))
    page.write_text("\n\n".join(parts) + "\n")
    print(f"rendered {source.name} ({len(nb.cells)} cells)", file=sys.stderr)


def setup(app):
    app.connect("builder-inited", _render_gallery)
