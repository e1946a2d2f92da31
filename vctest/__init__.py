"""vctest: is this random effect needed?

Exact and parametric-bootstrap likelihood-ratio tests of variance components
in linear and generalised linear mixed models.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
