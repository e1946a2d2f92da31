"""Sphinx configuration for vctest's documentation."""

import os

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
]
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
html_title = "vctest"
exclude_patterns = ["_build"]
# Every cross-reference must resolve (-W turns a broken one into an error).  Offline,
# links into NumPy, pandas, SciPy, Dask and Python cannot resolve: they are let through
# as plain text then, and checked for real with VCTEST_DOCS_INTERSPHINX=1.
nitpicky = True
if "sphinx.ext.intersphinx" not in extensions:
    nitpick_ignore_regex = [(r"py:.*", r"(numpy|pandas|scipy|dask|matplotlib|python)\..*")]
