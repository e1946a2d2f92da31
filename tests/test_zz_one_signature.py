"""Runs last (file order): after the whole suite, every kernel has compiled at most one
specialisation.

A second signature means a call site passed another layout, dtype, a read-only
array (pandas' copy-on-write) or a literal: another full compile, cached
separately.  The model layer converts once at the boundary (``f64``/``i64``).
"""

import importlib
import pkgutil

import numba
import pytest

import vctest.kernels


def _dispatchers():
    for info in pkgutil.iter_modules(vctest.kernels.__path__):
        module = importlib.import_module(f"vctest.kernels.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, numba.core.dispatcher.Dispatcher) and obj.__module__ == (
                    module.__name__):
                yield f"{module.__name__}.{name}", obj


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no dispatchers without the JIT")
def test_every_kernel_has_at_most_one_signature():
    seen = dict(_dispatchers())
    assert "vctest.kernels.engine.fit_model" in seen
    many = {name: [str(s) for s in d.signatures] for name, d in seen.items()
            if len(d.signatures) > 1}
    assert not many, many
