"""vctest: is this random effect needed?

Exact and simulated reference distributions for likelihood-ratio tests of
variance components in mixed models.

Main entry points
-----------------
fit        fit a linear mixed model written in lme4 syntax (REML or ML)
vc_test    test whether a random-effects term's variance is zero
compare    parametric bootstrap test of two nested models
check      can this fit be trusted? one verdict with the evidence
rlrt_null  exact null sample of the RLRT from eigenvalues (Crainiceanu & Ruppert 2004)
lrt_null   exact null sample of the LRT from eigenvalues
datasets   bundled example data with R's factor level order
"""

from vctest import datasets
from vctest.api import check, compare, fit, vc_test
from vctest.model.fit import LmmFit
from vctest.nulls.spectral import lrt_null, rlrt_null
from vctest.report.serialize import load_result
from vctest.results import TestResult

__version__ = "0.1.0.dev0"

__all__ = [
    "LmmFit",
    "TestResult",
    "__version__",
    "check",
    "compare",
    "datasets",
    "fit",
    "load_result",
    "lrt_null",
    "rlrt_null",
    "vc_test",
]
