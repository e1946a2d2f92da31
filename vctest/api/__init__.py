"""The public functions: validate once, then run the one test pipeline.

formula + data -> :func:`~vctest.formula.design.build_design` -> the pair of
designs -> their fits (:mod:`vctest.model`) -> a reference distribution from
:mod:`vctest.nulls` -> :class:`~vctest.results.TestResult`; the stages are in
:mod:`vctest.api._pipeline`, shared by ``vc_test``, ``compare`` and ``power``.
"""

from vctest.api import loaded as _loaded  # noqa: F401  (confint(data=...) of loaded results)
from vctest.api.checking import check
from vctest.api.comparing import compare
from vctest.api.fitting import fit
from vctest.api.power import power
from vctest.api.testing import vc_test
from vctest.api.warming import warmup

__all__ = ["check", "compare", "fit", "power", "vc_test", "warmup"]
