"""The profiled criterion and its analytic gradient (vctest.kernels.gradient) against a
dense NumPy reference built from the design (Z, X, Lambda as full matrices), on small
crossed designs, with the rest block's inverse by loops and by the blocked BLAS path
(vctest.kernels.linalg.cholesky_inverse, several blocks and a partial last one); and
that blocked inverse against numpy.linalg.inv."""

import numba
import numpy as np
import pytest

import vctest
from vctest.formula.design import build_design
from vctest.kernels.gradient import criterion_and_gradient
from vctest.kernels.linalg import cholesky_inverse
from vctest.model.lmm import LinearMixedModel

from .dense_reference import dense_z_lambda

NO_LAPACK = 10**9


@numba.njit
def _inverse(low, m, nb):
    return cholesky_inverse(low, m, nb)


@pytest.mark.parametrize("m, nb", [(1, 1), (7, 3), (12, 4), (12, 12), (40, 7), (130, 64)])
def test_cholesky_inverse_equals_numpy(m, nb):
    rng = np.random.default_rng(m * 100 + nb)
    a = rng.normal(size=(m, m))
    s = a @ a.T + np.eye(m)
    low = np.full((m + 3, m + 3), 99.0)  # upper triangle and the rows past m are ignored
    low[:m, :m] = np.tril(np.linalg.cholesky(s)) + np.triu(np.full((m, m), 99.0), 1)
    z = _inverse(low, m, nb)
    ref = np.linalg.inv(s)
    np.testing.assert_allclose(z, ref, rtol=0, atol=1e-12 * np.abs(ref).max() * np.linalg.cond(s))
    np.testing.assert_array_equal(z, z.T)


def _sleep_crossed():
    d = vctest.datasets.load("sleepstudy")
    d["grp"] = (np.arange(len(d)) % 7).astype(str)
    return d


CASES = [
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("crossed", "Reaction ~ Days + (Days | Subject) + (Days | grp)"),
    ("crossed", "Reaction ~ Days + (1 | grp) + (Days | Subject) + (1 | Subject:grp)"),
]


def _dense(model, data, theta, reml):
    """(f, grad) of the profiled criterion from full matrices, in the engine's units
    (Z and Lambda from :func:`dense_z_lambda`; Lambda is linear in theta)."""
    st = model.structure
    n, p = st.n, st.p
    assert not np.any(data.offset)
    w, y = data.wt, data.y
    z, lam = dense_z_lambda(model, theta)
    q = z.shape[1]

    def tilde(block):  # diag(block, I_p) or diag(block, 0_p)
        out = np.zeros((q + p, q + p))
        out[:q, :q] = block
        return out

    lt = tilde(lam)
    lt[q:, q:] = np.eye(p)
    m = np.hstack([z, st.x])
    g = m.T @ (w[:, None] * m)
    a = lt.T @ g @ lt
    a[np.arange(q), np.arange(q)] += 1.0
    sol = np.linalg.solve(a, lt.T @ (m.T @ (w * y)))
    resid = y - m @ lt @ sol
    r2 = np.sum(w * resid**2) + np.sum(sol[:q] ** 2)
    keep, nr = (q + p, n - p) if reml else (q, n)
    ainv = np.linalg.inv(a[:keep, :keep])
    f = np.linalg.slogdet(a[:keep, :keep])[1] + nr * (1 + np.log(2 * np.pi * r2 / nr))
    grad = np.empty(theta.size)
    for i in range(theta.size):
        e = tilde(dense_z_lambda(model, np.eye(theta.size)[i])[1])  # d Lambda~ / d theta_i
        da = (e.T @ g @ lt + lt.T @ g @ e)[:keep, :keep]
        dr2 = -2.0 * (w * resid) @ m @ e @ sol  # envelope theorem
        grad[i] = np.sum(ainv * da.T) + nr * dr2 / r2
    return f, grad


@pytest.mark.parametrize("lapack_min", [NO_LAPACK, 1, 3])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name, formula", CASES)
def test_criterion_and_gradient_equal_dense_reference(name, formula, reml, lapack_min):
    data_frame = _sleep_crossed() if name == "crossed" else vctest.datasets.load(name)
    model = LinearMixedModel.from_design(build_design(formula, data_frame))
    st, data = model.structure, model.data(reml)
    rng = np.random.default_rng(7)
    variance = np.isfinite(model.layout.lower)
    for _ in range(2):
        theta = np.where(variance, rng.uniform(0.2, 1.5, variance.size),
                         rng.normal(0.0, 0.3, variance.size))
        f, grad = criterion_and_gradient(st, data, theta, lapack_min)
        f_ref, grad_ref = _dense(model, data, theta, reml)
        assert abs(f - f_ref) <= 1e-10 * abs(f_ref)
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-10 * abs(f_ref))
