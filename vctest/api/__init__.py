"""The public functions: validate once, then orchestrate the pipeline.

formula + data -> :func:`~vctest.formula.design.build_design` ->
:class:`~vctest.model.lmm.LinearMixedModel` -> :func:`~vctest.model.fit.fit_model`
-> a reference distribution from :mod:`vctest.nulls`.
"""

from vctest.api.checking import check
from vctest.api.comparing import compare
from vctest.api.fitting import fit
from vctest.api.power import power
from vctest.api.testing import vc_test
from vctest.api.warming import warmup

__all__ = ["check", "compare", "fit", "power", "vc_test", "warmup"]
