"""The engine's two paths from Python give the same numbers, bit for bit.

:func:`vctest.kernels.engine.run_fit` runs :func:`~vctest.kernels.engine.fit_model`
compiled when the process has it and otherwise interpreted (its source run by
Python, calling the compiled objective kernels).  A fit's result must not
depend on which one ran, so every call a public fit makes is replayed through
both and compared exactly.
"""

import numpy as np
import pytest

import vctest
from vctest.formula.design import build_design
from vctest.kernels import engine
from vctest.model.glm import GeneralizedLinearModel, fit_glm

CASES = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {"reml": False}),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {}),
    ("strength ~ 1 + (1 | batch) + (1 | batch:cask)", "Pastes", {}),
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", {"family": "binomial"}),
    ("TICKS ~ YEAR + (1 | BROOD)", "grouseticks", {"family": "poisson"}),
    ("cbind(incidence, size - incidence) ~ period", "cbpp", {"family": "binomial"}),
]


def _recorded_calls(monkeypatch, formula, data, kwargs):
    calls = []
    real = engine.run_fit

    def record(*args):
        calls.append(args)
        return real(*args)

    for mod in ("lmm", "glm", "glmm"):
        monkeypatch.setattr(f"vctest.model.{mod}.run_fit", record)
    if "|" in formula:
        vctest.fit(formula, data, **kwargs)
    else:  # a GLM (the null model of a GLMM's only random effect)
        design = build_design(formula, vctest.datasets.load(data))
        fit_glm(GeneralizedLinearModel.from_design(design, kwargs["family"]))
    monkeypatch.undo()
    return calls


@pytest.mark.parametrize(("formula", "data", "kwargs"), CASES)
def test_interpreted_and_compiled_fits_are_identical(monkeypatch, formula, data, kwargs):
    calls = _recorded_calls(monkeypatch, formula, data, kwargs)
    assert calls, "the fit made no engine call"
    for args in calls:
        a = engine._FIT_INTERPRETED(*args)
        b = engine.fit_compiled(*args)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_run_fit_uses_the_compiled_kernel_once_the_process_has_it(monkeypatch):
    calls = _recorded_calls(monkeypatch, *CASES[0])
    engine.fit_compiled(*calls[0])  # compiled (or loaded) in this process
    seen = []
    monkeypatch.setattr(engine, "_FIT_INTERPRETED", lambda *a: seen.append(a))
    engine.run_fit(*calls[0])
    assert not seen
