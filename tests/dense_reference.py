"""A dense NumPy reference for the profiled LMM objective (test oracle only).

Straight from the definition (Bates et al. 2015, eqs. 34 and 41): for a given
theta, r^2(theta) = min over (u, beta) of ||y - X beta - Z Lambda u||^2 + ||u||^2,
found by least squares on the augmented system, and

    ML:   log|Lambda'Z'Z Lambda + I| + n (1 + log(2 pi r^2 / n))
    REML: ML's log-det + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

with R_X from X'V^{-1}X (V = Z Lambda Lambda'Z' + I).  O(n^3); tiny designs only.
"""

from __future__ import annotations

import numpy as np


def dense_z_lambda(model, theta):
    """Dense Z and Lambda of a vctest model at theta."""
    st = model.structure
    factors = model.layout.factors(theta)
    zs, lams = [], []
    for j, t in enumerate(factors):
        kj = t.shape[0]
        nl = int(st.nlev[j])
        z = np.zeros((st.n, nl * kj))
        cols = st.zcols[:, st.zoff[j]:st.zoff[j] + kj]
        for c in range(kj):
            z[np.arange(st.n), st.codes[j] * kj + c] = cols[:, c]
        zs.append(z)
        lams.append(np.kron(np.eye(nl), t))
    z = np.hstack(zs)
    lam = np.zeros((z.shape[1], z.shape[1]))
    pos = 0
    for blk in lams:
        lam[pos:pos + blk.shape[0], pos:pos + blk.shape[0]] = blk
        pos += blk.shape[0]
    return z, lam


def dense_objective(model, theta, reml):
    """Profiled deviance / REML criterion computed densely."""
    x = np.asarray(model.design.X, float)
    y = np.asarray(model.y, float)
    n, p = x.shape
    z, lam = dense_z_lambda(model, np.asarray(theta, float))
    zl = z @ lam
    q = zl.shape[1]
    a = np.block([[zl, x], [np.eye(q), np.zeros((q, p))]])
    rhs = np.concatenate([y, np.zeros(q)])
    coef, *_ = np.linalg.lstsq(a, rhs, rcond=None)
    r2 = float(np.sum((rhs - a @ coef) ** 2))
    _, logdet_l = np.linalg.slogdet(zl.T @ zl + np.eye(q))
    if not reml:
        return logdet_l + n * (1 + np.log(2 * np.pi * r2 / n))
    v = zl @ zl.T + np.eye(n)
    _, logdet_rx = np.linalg.slogdet(x.T @ np.linalg.solve(v, x))
    return logdet_l + logdet_rx + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
