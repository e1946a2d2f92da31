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
]
# Links to the Python/NumPy/pandas docs need the network; opt in with
# VCTEST_DOCS_INTERSPHINX=1 so that offline builds stay warning-free.
if os.environ.get("VCTEST_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
autosummary_generate = True
numpydoc_show_class_members = False
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
nitpicky = False
