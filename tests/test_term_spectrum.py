"""The structured eigenvalues of one scalar term (``vctest.nulls.term_spectrum``).

Oracles: ``numpy.linalg.eigvalsh`` of Z'P0Z built densely from an explicit Z
(small designs); closed forms for balanced layouts (also at sizes where a
K x K matrix could not be allocated); the null sample and p-value of the
previous dense method with the same seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest._pvalue import monte_carlo_pvalue
from vctest._rng import seed_sequence
from vctest.formula.design import build_design
from vctest.nulls import term_spectrum
from vctest.nulls.exact import SpectralDesign, SpectralTask, spectral_design
from vctest.nulls.spectral import _merge_groups, group_eigenvalues
from vctest.nulls.term_spectrum import dense_bytes, scalar_term_spectrum


def dense_eigenvalues(x, z, codes, k):
    """Eigenvalues of Z'Z - Z'X (X'X)^-1 X'Z and of Z'Z from an explicit n x K matrix Z."""
    n = codes.size
    zmat = np.zeros((n, k))
    zmat[np.arange(n), codes] = z
    ztz = zmat.T @ zmat
    m = ztz
    if x.shape[1]:
        zx = zmat.T @ x
        m = ztz - zx @ np.linalg.solve(x.T @ x, zx.T)
    return np.linalg.eigvalsh(m), np.linalg.eigvalsh(ztz)


def random_design(rng, k, p, sizes, slope=False, group_covariate=False):
    codes = np.repeat(np.arange(k), sizes)
    rng.shuffle(codes)  # levels need not be contiguous rows
    n = codes.size
    cols = [np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)]
    if group_covariate and p >= 3:
        cols[2] = rng.normal(size=k)[codes]  # constant within a level
    x = np.column_stack(cols) if p else np.empty((n, 0))
    z = rng.normal(size=n) if slope else np.ones(n)
    return x, z, codes


CASES = [
    # (K, p, group sizes drawn from, slope, group-level covariate)
    (60, 1, (1, 5), False, False),    # many ties
    (80, 2, (1, 4), False, False),    # ties, with a covariate
    (120, 3, (2, 7), False, True),    # ties, a covariate constant within groups
    (50, 5, (1, 3), False, False),    # p larger than several tie sets
    (40, 2, None, False, False),      # no ties: sizes 1..K, every set of size 1 <= p
    (70, 4, (1, 90), False, False),   # few ties
    (30, 0, (1, 6), False, False),    # no fixed effects
    (45, 2, (2, 5), True, False),     # a slope on a continuous covariate (no ties)
]


@pytest.mark.parametrize(("k", "p", "size_range", "slope", "group_cov"), CASES)
def test_structured_equals_dense_eigenvalues(k, p, size_range, slope, group_cov):
    rng = np.random.default_rng(1000 * k + p)
    sizes = (rng.permutation(np.arange(1, k + 1)) if size_range is None
             else rng.integers(size_range[0], size_range[1] + 1, size=k))
    x, z, codes = random_design(rng, k, p, sizes, slope, group_cov)
    values, counts, xi = scalar_term_spectrum(x, z, codes, k)
    assert counts.sum() == k and (counts >= 1).all()
    mu = np.sort(np.repeat(values, counts))
    dense_mu, dense_xi = dense_eigenvalues(x, z, codes, k)
    top = dense_mu.max()
    np.testing.assert_allclose(mu, np.clip(dense_mu, 0, None), rtol=0, atol=1e-10 * top)
    np.testing.assert_allclose(np.sort(xi), dense_xi, rtol=1e-12, atol=0)
    # the groups the null simulation uses are the same
    sv, sm = group_eigenvalues(mu)
    dv, dm = group_eigenvalues(np.clip(dense_mu, 0, None))
    assert sm.tolist() == dm.tolist()
    np.testing.assert_allclose(sv, dv, rtol=1e-10)


def test_ties_reduce_the_problem():
    """A random intercept: R = p * (distinct sizes), so the eigenvalue d has
    multiplicity m_d - p (counted as one value)."""
    rng = np.random.default_rng(5)
    k, p = 3000, 2
    sizes = rng.integers(2, 6, size=k)
    x, z, codes = random_design(rng, k, p, sizes)
    values, counts, _ = scalar_term_spectrum(x, z, codes, k)
    assert values.size == p * 4 + 4  # 4 distinct sizes: 2 reduced values each + the size
    for d in (2, 3, 4, 5):
        assert counts[values == d].tolist() == [int(np.sum(sizes == d)) - p]


@pytest.mark.parametrize("k", [7, 200_000])
def test_balanced_closed_forms(k):
    """J per group: X = 1 gives J (K - 1 times) and 0; a covariate centred within
    groups adds nothing (Z'x = 0); a group-level covariate removes one more J.
    At K = 200,000 the dense K x K matrix would need 320 GB."""
    j = 3
    codes = np.repeat(np.arange(k), j)
    n = codes.size
    one = np.ones(n)
    rng = np.random.default_rng(k)
    within = rng.normal(size=n)
    within -= (np.bincount(codes, weights=within) / j)[codes]
    between = rng.normal(size=k)[codes]
    expected = {
        "intercept": np.r_[np.zeros(1), np.full(k - 1, j)],
        "centred covariate": np.r_[np.zeros(1), np.full(k - 1, j)],
        "group covariate": np.r_[np.zeros(2), np.full(k - 2, j)],
    }
    designs = {
        "intercept": one[:, None],
        "centred covariate": np.column_stack([one, within]),
        "group covariate": np.column_stack([one, between]),
    }
    for name, x in designs.items():
        values, counts, xi = scalar_term_spectrum(x, one, codes, k)
        mu = np.sort(np.repeat(values, counts))
        np.testing.assert_allclose(mu, expected[name], rtol=0, atol=1e-10 * j, err_msg=name)
        assert np.all(xi == j)


def test_dense_problem_refused_with_its_memory():
    rng = np.random.default_rng(3)
    k = 300
    x, z, codes = random_design(rng, k, 2, rng.integers(2, 5, size=k), slope=True)
    need = dense_bytes(k) / 2**30
    with pytest.raises(ValueError, match=r"\(0 \+ x \| g\).*300 x 300.*bootstrap") as err:
        scalar_term_spectrum(x, z, codes, k, label="(0 + x | g)", limit_bytes=10**6)
    assert f"{need:.1f} GiB" in str(err.value)
    # the same design under the limit is solved
    assert scalar_term_spectrum(x, z, codes, k, limit_bytes=10**7)[1].sum() == k


def test_refusal_reaches_the_public_api_as_a_value_error(monkeypatch):
    """A random slope on a continuous covariate with many levels: the exact test
    refuses before allocating (not a MemoryError), and says what to do."""
    rng = np.random.default_rng(4)
    k = 400
    g = np.repeat(np.arange(k), 3)
    x = rng.normal(size=g.size)
    data = pd.DataFrame({"y": x + rng.normal(size=g.size) + rng.normal(size=k)[g] * x,
                         "x": x, "g": g})
    monkeypatch.setattr(term_spectrum, "DENSE_LIMIT_BYTES", dense_bytes(k) - 1)
    with pytest.raises(ValueError, match=r"\(0 \+ x \| g\).*GiB.*method='bootstrap'"):
        vctest.vc_test("y ~ x + (0 + x | g)", data, term="(0 + x | g)", method="exact",
                       nsim=100, seed=1)
    monkeypatch.setattr(term_spectrum, "DENSE_LIMIT_BYTES", dense_bytes(k))
    res = vctest.vc_test("y ~ x + (0 + x | g)", data, term="(0 + x | g)", method="exact",
                         nsim=100, seed=1)
    assert 0 < res.pvalue <= 1


def _dense_design(design, block):
    """The previous method: the K x K matrix Z'P0Z and eigvalsh."""
    blk = design.blocks[block]
    x = np.asarray(design.X, dtype=float)
    n, p = x.shape
    z, codes = blk.columns[:, 0], blk.codes
    ztz = np.bincount(codes, weights=z * z, minlength=blk.n_levels)
    q, _ = np.linalg.qr(x)
    qtz = np.stack([np.bincount(codes, weights=q[:, i] * z, minlength=blk.n_levels)
                    for i in range(p)])
    m = np.diag(ztz) - qtz.T @ qtz
    mu = np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)[::-1]
    return SpectralDesign(n=n, p=p, mu=mu, xi=np.sort(ztz)[::-1])


@pytest.mark.parametrize("reml", [True, False])
def test_pvalues_equal_the_dense_method(reml):
    """Same seed, same groups of eigenvalues: the same null sample (to rounding)
    and the same p-value as the dense method, through vc_test."""
    rng = np.random.default_rng(9)
    k = 400
    sizes = rng.integers(1, 6, size=k)
    g = np.repeat(np.arange(k), sizes)
    x = rng.normal(size=g.size)
    w = rng.normal(size=k)[g]
    y = 1 + x + 0.3 * w + rng.normal(scale=0.15, size=k)[g] + rng.normal(size=g.size)
    data = pd.DataFrame({"y": y, "x": x, "w": w, "g": g})
    formula = "y ~ x + w + (1 | g)"
    res = vctest.vc_test(formula, data, term="(1 | g)", method="exact", nsim=20_000, seed=17,
                         reml=reml)
    assert 0.001 < res.pvalue < 0.999  # an informative p-value, not a boundary one
    design = build_design(formula, data)
    new, old = spectral_design(design, 0), _dense_design(design, 0)
    np.testing.assert_allclose(new.mu, old.mu, rtol=0, atol=1e-10 * old.mu.max())
    assert np.array_equal(new.xi, old.xi)
    a = SpectralTask(new, reml, seed_sequence(17))(0, 20_000)
    b = SpectralTask(old, reml, seed_sequence(17))(0, 20_000)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert np.array_equal(a, res.null_distribution)
    assert monte_carlo_pvalue(res.statistic, b).pvalue == res.pvalue


def _groups_reference(values, rtol=1e-9, zero_tol=1e-10):
    """The grouping rule written value by value (the previous implementation)."""
    arr = np.asarray(values, dtype=float)
    kept = np.sort(arr[arr > zero_tol * arr.max()])[::-1]
    distinct, counts, i = [], [], 0
    while i < kept.size:
        head, j = kept[i], i + 1
        while j < kept.size and head - kept[j] <= rtol * head:
            j += 1
        distinct.append(float(kept[i:j].mean()))
        counts.append(j - i)
        i = j
    return np.asarray(distinct[::-1]), np.asarray(counts[::-1])


def test_grouping_by_runs_equals_the_value_by_value_rule():
    rng = np.random.default_rng(11)
    for trial in range(200):
        base = rng.choice([1.0, 2.0, 3.0, 5.5, 1e-3], size=int(rng.integers(1, 60)))
        noise = rng.normal(size=base.size) * 10 ** rng.uniform(-12, -7, size=base.size)
        values = np.r_[base * (1 + noise), np.zeros(trial % 3)]
        ref_v, ref_m = _groups_reference(values)
        v, m = group_eigenvalues(values)
        assert np.array_equal(v, ref_v) and np.array_equal(m, ref_m), values
    # a chain of values each within rtol of the next but not of the head: split greedily
    chain = 1.0 - np.arange(5) * 0.6e-9
    assert group_eigenvalues(chain)[1].tolist() == _groups_reference(chain)[1].tolist() == [
        1, 2, 2]
    va, wa, wb = _merge_groups(np.array([1.0, 2.0]), np.array([3, 1]),
                               np.array([2.0 * (1 + 1e-12), 4.0]), np.array([1, 2]), 1e-9)
    np.testing.assert_allclose(va, [1.0, 2.0, 4.0])
    assert wa.tolist() == [3.0, 1.0, 0.0] and wb.tolist() == [0.0, 1.0, 2.0]


def test_a_million_tied_eigenvalues():
    mu = np.r_[np.full(2_000_000, 3.0) * (1 + 1e-13 * np.sin(np.arange(2_000_000))), 1.5, 0.0]
    v, m = group_eigenvalues(mu)
    assert m.tolist() == [1, 2_000_000] and v[1] == pytest.approx(3.0, rel=1e-12)
