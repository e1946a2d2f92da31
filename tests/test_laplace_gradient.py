"""The analytic gradient of the Laplace objectives (vctest.kernels.gradient.laplace_gradient)
against central differences of the objective, at lme4's evaluation points of the stored
reference fits (validation/reference/glmm_fits.json): binomial with prior weights and
Bernoulli, Poisson with an offset, crossed terms, a correlated slope; nAGQ = 1 (theta and
beta) and lme4's nAGQ = 0 objective (theta, with u and beta modes too)."""

from __future__ import annotations

import numpy as np
import pytest

from vctest.kernels.gradient import laplace_and_gradient

from .test_glmm import CASES, _model, _values

NO_LAPACK = 10**9
CANONICAL = [c for c in CASES if CASES[c]["family"] == "poisson" or CASES[c]["link"] == "logit"]


def _points(case_id):
    model = _model(CASES[case_id])
    for point in CASES[case_id]["laplace_points"]:
        theta = np.maximum(_values(point["theta"]), model.layout.lower)
        yield model, theta, model.beta_to_engine(_values(point["beta"]))


def _check(case_id, joint, lapack_min):
    checked = 0
    for model, theta, beta in _points(case_id):
        st, data, sat = model.structure, model.data(), model.saturated

        def f(th, be, st=st, data=data, sat=sat):
            return laplace_and_gradient(st, data, th, be, joint, sat, lapack_min)[0]

        value, grad, ok = laplace_and_gradient(st, data, theta, beta, joint, sat, lapack_min)
        if not np.isfinite(value):
            continue
        assert ok
        if not joint:  # the kernel's objective is the engine's
            assert value == pytest.approx(model.objective(theta, model.beta_to_user(beta)),
                                          rel=1e-10)
        d = theta.size
        n = d if joint else d + beta.size  # nAGQ = 0: beta is a mode, not a parameter
        for i in range(n):
            x = theta[i] if i < d else beta[i - d]
            h = 1e-5 * max(1.0, abs(x))
            if i < d and model.layout.lower[i] == 0.0 and x - h < 0.0:
                continue  # a variance parameter on its bound: no central difference
            tp, tm, bp, bm = theta.copy(), theta.copy(), beta.copy(), beta.copy()
            if i < d:
                tp[i] += h
                tm[i] -= h
            else:
                bp[i - d] += h
                bm[i - d] -= h
            fd = (f(tp, bp) - f(tm, bm)) / (2.0 * h)
            # central differences of an objective ~1e3 with h = 1e-5: ~1e-7 relative
            assert abs(grad[i] - fd) <= 2e-6 * (1.0 + abs(fd)), (case_id, joint, i, grad[i], fd)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("case_id", CANONICAL)
def test_laplace_gradient_equals_central_differences(case_id):
    _check(case_id, False, NO_LAPACK)


# grouseticks with HEIGHT unscaled: the joint PIRLS cannot reach 1e-12 (it hits its
# iteration limit; 1e-11 takes 18 iterations), so its nAGQ = 0 differences are not exact
@pytest.mark.parametrize("case_id", [c for c in CANONICAL if c != "grouseticks"])
def test_nagq0_gradient_equals_central_differences(case_id):
    _check(case_id, True, NO_LAPACK)


@pytest.mark.parametrize("case_id", ["grouseticks_scaled", "grouseticks_slope"])
def test_a_rest_block_factored_by_lapack_is_left_to_finite_differences(case_id):
    # the gradient's inverse of the rest block is by loops; where the engine factors that
    # block by LAPACK (order >= lapack_min) finite differences are cheaper
    model, theta, beta = next(_points(case_id))
    st, data = model.structure, model.data()
    value, grad, ok = laplace_and_gradient(st, data, theta, beta, False, model.saturated,
                                           st.m_re)
    assert np.isfinite(value) and not ok and np.all(np.isnan(grad))
    assert laplace_and_gradient(st, data, theta, beta, False, model.saturated, st.m_re + 1)[2]


@pytest.mark.parametrize("case_id", ["cbpp_probit", "cbpp_cloglog"])
def test_non_canonical_links_are_left_to_finite_differences(case_id):
    model, theta, beta = next(_points(case_id))
    value, grad, ok = laplace_and_gradient(model.structure, model.data(), theta, beta, False,
                                           model.saturated, NO_LAPACK)
    assert np.isfinite(value) and not ok and np.all(np.isnan(grad))
