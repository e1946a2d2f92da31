"""The analytic gradient of the profiled criterion (vctest.kernels.gradient) against
central differences of the criterion, on every kind of structure the engine blocks:
one term with slopes, two terms on one factor, crossed, nested, crossed with slopes,
and prior weights; REML and ML; random interior points."""

import numpy as np
import pytest

import vctest
from vctest.formula.design import build_design
from vctest.kernels.gradient import criterion_and_gradient
from vctest.model.lmm import LinearMixedModel

NO_LAPACK = 10**9


def _sleep_extra():
    d = vctest.datasets.load("sleepstudy")
    d["grp"] = (np.arange(len(d)) % 7).astype(str)
    d["w"] = 1.0 + d["Days"] % 3
    return d


CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", None),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", None),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)", None),
    ("Orthodont", "distance ~ age + Sex + (age | Subject)", None),
    ("extra", "Reaction ~ Days + (Days | Subject) + (Days | grp)", None),
    ("extra", "Reaction ~ Days + (Days | Subject) + (1 | grp)", "w"),
]


def _model(name, formula, weights):
    data = _sleep_extra() if name == "extra" else vctest.datasets.load(name)
    return LinearMixedModel.from_design(build_design(formula, data, weights=weights))


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name, formula, weights", CASES)
def test_gradient_equals_central_differences(name, formula, weights, reml):
    _check_against_differences(name, formula, weights, reml, NO_LAPACK)


@pytest.mark.parametrize("name, formula, weights", CASES[2:4] + CASES[5:])
def test_gradient_by_lapack_equals_central_differences(name, formula, weights):
    # the dense inverse of the rest block by LAPACK/BLAS (large models) as by loops
    _check_against_differences(name, formula, weights, True, 1)


def _check_against_differences(name, formula, weights, reml, lapack_min):
    model = _model(name, formula, weights)
    data = model.data(reml)
    rng = np.random.default_rng(abs(hash((formula, reml))) % 2**32)
    variance = np.isfinite(model.layout.lower)
    for _ in range(3):
        theta = np.where(variance, rng.uniform(0.1, 1.5, variance.size),
                         rng.normal(0.0, 0.3, variance.size))
        f, grad = criterion_and_gradient(model.structure, data, theta, lapack_min)
        assert np.isfinite(f)
        fd = np.empty_like(grad)
        for i in range(theta.size):
            h = 1e-5 * max(1.0, abs(theta[i]))
            up, down = theta.copy(), theta.copy()
            up[i] += h
            down[i] -= h
            fd[i] = (criterion_and_gradient(model.structure, data, up, lapack_min)[0]
                     - criterion_and_gradient(model.structure, data, down, lapack_min)[0]) / (2 * h)
        # central differences are accurate to O(h^2 f''') + O(eps f / h): ~1e-7 here
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * (1 + abs(f)) / 100)


def test_gradient_is_zero_at_lme4s_optimum():
    model = _model("sleepstudy", "Reaction ~ Days + (Days | Subject)", None)
    fit = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    _, grad = criterion_and_gradient(model.structure, model.data(True), np.asarray(fit.theta),
                                     NO_LAPACK)
    assert np.max(np.abs(grad)) < 1e-3
    assert fit.n_evals < 40  # central differences took 73 evaluations
