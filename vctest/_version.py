"""The version of vctest (one place; the package and the results read it)."""

__version__ = "0.1.0.dev0"
