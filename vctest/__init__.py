"""vctest: is this random effect needed?

Exact and simulated reference distributions for likelihood-ratio tests of
variance components in mixed models.

Main entry points
-----------------
fit        fit a linear mixed model written in lme4 syntax (REML or ML)
vc_test    test whether a random-effects term's variance is zero
compare    parametric bootstrap test of two nested models
check      can this fit be trusted? one verdict with the evidence
power      rejection rates of the tests under specified alternatives
power_curve  power along a sample-size axis, from a model made with make_model
make_model   a mixed model with known parameters on a design (design_frame, extend)
ranova     one test per random-effects term (lmerTest's ranova, with correct p-values)
anova      a table of nested models (lme4's anova), with boundary-aware p-values
reduce     backward elimination of random-effects terms (lmerTest's step)
from_statsmodels  a statsmodels MixedLM model or result as a vctest fit
rlrt_null  exact null sample of the RLRT from eigenvalues (Crainiceanu & Ruppert 2004)
lrt_null   exact null sample of the LRT from eigenvalues
exact_rlrt exact RLRT from design matrices y, X, Z (RLRsim's RLRTSim + exactRLRT)
exact_lrt  exact LRT from design matrices, optionally with restricted fixed effects
datasets   bundled example data with R's factor level order
warmup     compile (and cache on disk) every numerical kernel ahead of time
"""

import importlib
from typing import TYPE_CHECKING, Any

from vctest._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from vctest import datasets
    from vctest._table_result import TableResult
    from vctest.api import check, compare, fit, power, vc_test, warmup
    from vctest.api.anova import anova
    from vctest.api.exact_design import exact_lrt, exact_rlrt
    from vctest.api.power_curve import power_curve
    from vctest.api.ranova import ranova
    from vctest.api.reduce import reduce
    from vctest.api.statsmodels import from_statsmodels
    from vctest.api.study import StudyModel, design_frame, extend, make_model
    from vctest.model.fit import LmmFit
    from vctest.nulls.spectral import lrt_null, rlrt_null
    from vctest.results import TestResult, load_result

# Loaded on first use, so that ``from vctest.nulls.spectral import rlrt_null``
# in a lean worker does not import pandas, formulaic and the model kernels.
_LAZY = {
    "datasets": "vctest.datasets",
    "check": "vctest.api",
    "compare": "vctest.api",
    "fit": "vctest.api",
    "vc_test": "vctest.api",
    "warmup": "vctest.api",
    "power": "vctest.api",
    "power_curve": "vctest.api.power_curve",
    "make_model": "vctest.api.study",
    "design_frame": "vctest.api.study",
    "extend": "vctest.api.study",
    "StudyModel": "vctest.api.study",
    "from_statsmodels": "vctest.api.statsmodels",
    "ranova": "vctest.api.ranova",
    "anova": "vctest.api.anova",
    "exact_rlrt": "vctest.api.exact_design",
    "exact_lrt": "vctest.api.exact_design",
    "reduce": "vctest.api.reduce",
    "TableResult": "vctest._table_result",
    "LmmFit": "vctest.model.fit",
    "lrt_null": "vctest.nulls.spectral",
    "rlrt_null": "vctest.nulls.spectral",
    "load_result": "vctest.results",
    "TestResult": "vctest.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "datasets" else getattr(module, name)
        if name in ("load_result", "TestResult"):
            module.set_confint_rebuilder(_rebuild_confint)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vctest' has no attribute {name!r}")


def _rebuild_confint(result: Any, data: Any) -> Any:
    """``confint(data=...)`` of a loaded result; imports the API only when called."""
    from vctest.api.loaded import rebuild_confint

    return rebuild_confint(result, data)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))



__all__ = [
    "LmmFit",
    "StudyModel",
    "TableResult",
    "TestResult",
    "__version__",
    "anova",
    "check",
    "compare",
    "datasets",
    "design_frame",
    "exact_lrt",
    "exact_rlrt",
    "extend",
    "fit",
    "from_statsmodels",
    "load_result",
    "lrt_null",
    "make_model",
    "power",
    "power_curve",
    "ranova",
    "reduce",
    "rlrt_null",
    "vc_test",
    "warmup",
]
