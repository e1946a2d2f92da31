"""Every example in a docstring runs and prints what it says."""

import doctest
import importlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parents[1] / "vctest"
MODULES = sorted(
    "vctest." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name.removesuffix("."))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
