"""Calls between compiled kernels through an address (vctest.kernels.calls)."""

import numba
import numpy as np
import pytest

from vctest.kernels.calls import address_of, call_at, signature_tag

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="needs the JIT")


@numba.njit
def _scaled_sum(x, k):
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = k * x[i]
    return out, out.sum()


@numba.njit
def _fails(x):
    if x[0] < 0:
        raise ValueError("negative first entry")
    return x[0]


@numba.njit
def _caller(table, x, k):
    return call_at(_scaled_sum, table, 0, (x, k))


@numba.njit(parallel=True)
def _caller_in_prange(table, x, out):
    for b in numba.prange(out.size):
        out[b] = call_at(_scaled_sum, table, 0, (x, float(b)))[1]


@numba.njit
def _calls_failing(table, x):
    return call_at(_fails, table, 0, (x,))


def _table(*rows):
    return np.array(rows, dtype=np.int64).reshape(len(rows), 2)


def test_a_call_through_the_address_equals_the_direct_call():
    x = np.linspace(-1.0, 2.0, 7)
    table = _table(address_of(_scaled_sum, x, 1.5))
    out, total = _caller(table, x, 1.5)
    ref_out, ref_total = _scaled_sum(x, 1.5)
    np.testing.assert_array_equal(out, ref_out)
    assert total == ref_total
    assert call_at(_scaled_sum, table, 0, (x, 1.5))[1] == ref_total  # the Python path


def test_calls_from_prange_replicates():
    x = np.arange(5.0)
    table = _table(address_of(_scaled_sum, x, 0.0))
    out = np.empty(16)
    _caller_in_prange(table, x, out)
    np.testing.assert_array_equal(out, [_scaled_sum(x, float(b))[1] for b in range(16)])


def test_an_exception_in_the_callee_reaches_python():
    x = np.array([-1.0])
    table = _table(address_of(_fails, x))
    assert _calls_failing(table, np.array([2.0])) == 2.0
    with pytest.raises(ValueError, match="negative first entry"):
        _calls_failing(table, x)


def test_a_wrong_or_missing_address_raises_instead_of_calling():
    x = np.arange(3.0)
    address, tag = address_of(_scaled_sum, x, 1.0)
    assert tag == signature_tag((numba.typeof(x), numba.float64))
    with pytest.raises(RuntimeError, match="other argument types"):
        _caller(_table((0, 0)), x, 1.0)  # an empty table: never called
    with pytest.raises(RuntimeError, match="other argument types"):
        _caller(_table((address, tag ^ 1)), x, 1.0)


def test_address_of_refuses_a_kernel_with_two_specialisations():
    @numba.njit
    def twice(x):
        return x + 1

    twice(1.0)
    twice(np.arange(2.0))
    with pytest.raises(RuntimeError, match="2 compiled specialisations"):
        address_of(twice, 1.0)


def test_signature_tags_are_stable_and_distinguish_layouts():
    c = numba.typeof(np.zeros(3))
    a = numba.typeof(np.zeros((3, 3))[:, 0])  # a non-contiguous view
    assert signature_tag((c,)) == signature_tag((numba.typeof(np.ones(5)),))
    assert signature_tag((c,)) != signature_tag((a,))
    assert 0 < signature_tag((c,)) < 2**62
