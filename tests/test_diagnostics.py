"""Boundary-aware convergence diagnostics against closed-form objectives."""

import numpy as np
import pytest

import vctest
from vctest.diagnostics import diagnose


def _guarded(f, lower):
    """Wrap ``f`` so that evaluating below ``lower`` fails the test."""

    def g(t):
        assert np.all(t >= lower), f"evaluated outside the domain at {t}"
        return f(t)

    return g


def test_interior_quadratic_exact_derivatives():
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    c = np.array([0.5, -1.0])
    f = lambda t: 0.5 * (t - c) @ a @ (t - c) + 10.0  # noqa: E731
    at = np.array([0.7, -0.8])
    d = diagnose(f, at, [-np.inf, -np.inf])
    np.testing.assert_allclose(d.gradient, a @ (at - c), atol=1e-8)
    np.testing.assert_allclose(d.hessian, a, atol=1e-5)
    np.testing.assert_allclose(d.newton_step, at - c, atol=1e-6)
    # lme4's scaled gradient with H = R'R
    r = np.linalg.cholesky(a).T
    g = a @ (at - c)
    expected = np.max(np.minimum(np.abs(g), np.abs(np.linalg.solve(r, g))))
    assert d.scaled_gradient == pytest.approx(expected, rel=1e-5)
    assert not d.converged
    assert "failed to converge" in d.messages[0]


def test_interior_minimum_converges():
    f = lambda t: (t[0] - 1.0) ** 2 + 3 * (t[1] + 2.0) ** 2 + t[0] * t[1]  # noqa: E731
    # exact minimiser of the quadratic
    xmin = np.linalg.solve([[2.0, 1.0], [1.0, 6.0]], [2.0, -12.0])
    d = diagnose(f, xmin, [-np.inf, -np.inf])
    assert d.converged and not d.singular and d.messages == ()
    assert d.scaled_gradient < 1e-6


def test_boundary_minimum_is_converged_and_never_leaves_domain():
    lower = np.array([0.0, -np.inf])
    f = _guarded(lambda t: (t[0] + 1.0) ** 2 + (t[1] - 2.0) ** 2, lower)
    d = diagnose(f, [0.0, 2.0], lower, names=["sd", "b"])
    assert d.converged and d.singular and d.kkt_ok
    assert d.at_bound.tolist() == [True, False]
    assert d.boundary_derivatives[0] == pytest.approx(2.0, abs=1e-7)
    # the unconstrained gradient is large, but only the free coordinate counts
    assert abs(d.gradient[0]) > 1.0 and d.scaled_gradient < 1e-6


def test_bound_with_descent_into_interior_fails():
    lower = np.array([0.0])
    f = _guarded(lambda t: (t[0] - 1.0) ** 2, lower)
    d = diagnose(f, [0.0], lower, names=["Subject.(Intercept)"])
    assert not d.converged and not d.kkt_ok
    assert "Subject.(Intercept)" in d.messages[0]


def test_flat_bound_with_negative_curvature_fails():
    # depends on theta only through theta^2, maximum at the bound
    lower = np.array([0.0])
    f = _guarded(lambda t: -t[0] ** 2 + t[0] ** 4, lower)
    d = diagnose(f, [0.0], lower)
    assert abs(d.boundary_derivatives[0]) < 1e-3
    assert not d.converged


def test_flat_bound_with_positive_curvature_passes():
    lower = np.array([0.0])
    d = diagnose(_guarded(lambda t: t[0] ** 2, lower), [0.0], lower)
    assert d.converged and d.singular


def test_saddle_is_degenerate():
    d = diagnose(lambda t: t[0] ** 2 - t[1] ** 2, [0.0, 0.0], [-np.inf, -np.inf])
    assert not d.converged
    assert any("negative eigenvalue" in m for m in d.messages)


def test_non_finite_objective_is_reported_not_nan_silently():
    d = diagnose(lambda t: np.nan if t[0] > 0.5 else t[0] ** 2, [0.5], [-np.inf])
    assert not d.converged
    assert "not finite" in d.messages[0]


def test_input_checks():
    with pytest.raises(ValueError, match="below `lower`"):
        diagnose(lambda t: 0.0, [-1.0], [0.0])
    with pytest.raises(ValueError, match="`names`"):
        diagnose(lambda t: 0.0, [1.0, 2.0], [0.0, 0.0], names=["a"])


def test_to_dict_is_json_ready():
    import json

    d = diagnose(lambda t: (t[0] + 1.0) ** 2, [0.0], [0.0])
    out = json.loads(json.dumps(d.to_dict()))
    assert out["singular"] is True and out["converged"] is True


def test_lmm_fits():
    m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert m.converged and m.diagnostics.scaled_gradient < 1e-4
    assert np.all(m.diagnostics.reduced_hessian_eigenvalues > 0)
    m2 = vctest.fit("Yield ~ 1 + (1 | Batch)", "Dyestuff2")
    assert m2.singular and m2.converged and m2.diagnostics.messages == ()


def test_lmm_off_optimum_is_flagged():
    m = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    lay = m.model.layout
    bad = m.theta * 1.3
    d = diagnose(lambda t: m.model.objective(t, True), bad, lay.lower, names=lay.names)
    assert not d.converged
