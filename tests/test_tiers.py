"""Tiered execution (:mod:`vctest.kernels.tiers`): the same numbers, whichever tier runs.

A kernel's source runs as Python until compiling it pays.  These tests check
that the interpreted and the compiled kernels agree bit for bit (fits of
every family, the exact test's draws, bootstraps), that a switch in the
middle of a fit or of a loop over replicates changes nothing, that the
switch happens when the rent-or-buy rule says (a fake clock), and that a
fresh process with an empty cache does small jobs without compiling.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numba
import numpy as np
import pytest

import vctest
from vctest.kernels import _jit, bootstrap, engine, spectral, tiers
from vctest.kernels.linalg import LAPACK_MIN_ORDER
from vctest.nulls.spectral import rlrt_null

FITS = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {"reml": False}),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {}),
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", {"family": "binomial"}),
    ("TICKS ~ YEAR + (1 | BROOD)", "grouseticks", {"family": "poisson"}),
]
LMM = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _numbers(model):
    return np.r_[model.objective, np.asarray(model.theta, float), np.asarray(model.beta, float)]


class FakeClock:
    """``time.perf_counter`` advancing one second per reading: a timed call
    with no timed call inside it takes one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def fresh_tiers(monkeypatch):
    """Tiers that decide by their budget only (kernels count as not compiled), and a
    fake clock: every interpreted call or chunk takes one second."""
    monkeypatch.setattr(tiers, "is_cached", lambda kernel: False)
    monkeypatch.setattr(tiers.time, "perf_counter", FakeClock())
    all_tiers = (engine.LMM_TIER, engine.GLMM_TIER, engine._SCRATCH_TIER, engine.DRIVER_TIER,
                 spectral.EXACT_TIER, bootstrap.BOOTSTRAP_TIER)
    for tier in all_tiers:
        tier.reset()
    yield
    for tier in all_tiers:
        tier.reset()


@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "erfc", "sqrt", "lgamma"])
def test_the_interpreted_math_is_the_compiled_math(name):
    """Every math function the kernels call gives the compiled kernels' bits as Python."""
    x = np.random.default_rng(1).normal(0.0, 30.0, 20_000)
    x = np.abs(x) + 1e-3 if name in ("log", "sqrt", "lgamma") else np.clip(x, -0.999, 700.0)
    namespace = {"math": math}
    exec(f"def f(x, out):\n    for i in range(x.size):\n        out[i] = math.{name}(x[i])\n",
         namespace)
    compiled = np.empty_like(x)
    numba.njit(namespace["f"])(x, compiled)
    python = np.array([getattr(_jit.MATH, name)(float(v)) for v in x])
    np.testing.assert_array_equal(python, compiled)


@pytest.mark.parametrize(("formula", "data", "kwargs"), FITS)
def test_interpreted_and_compiled_fits_are_identical(formula, data, kwargs):
    with tiers.forced("interpret"):
        python = vctest.fit(formula, data, **kwargs)
    with tiers.forced("compile"):
        compiled = vctest.fit(formula, data, **kwargs)
    np.testing.assert_array_equal(_numbers(python), _numbers(compiled))


@pytest.mark.parametrize("lambda0", [0.0, 0.3])
def test_interpreted_and_compiled_exact_draws_are_identical(lambda0):
    args = ([5.0, 5.0, 3.0, 1.0, 0.2], 40, 2)
    with tiers.forced("interpret"):
        python = rlrt_null(*args, lambda0=lambda0, nsim=600, seed=7)
    with tiers.forced("compile"):
        compiled = rlrt_null(*args, lambda0=lambda0, nsim=600, seed=7)
    np.testing.assert_array_equal(python, compiled)


@pytest.mark.parametrize(("formula", "data", "term", "kwargs"), [
    (LMM, "sleepstudy", "(0 + Days | Subject)", {}),
    (CBPP, "cbpp", "(1 | herd)", {"family": "binomial"}),
])
def test_interpreted_and_compiled_bootstraps_are_identical(formula, data, term, kwargs):
    run = dict(term=term, method="bootstrap", nsim=5, seed=11, progress=False, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiers.forced("interpret"):
            python = vctest.vc_test(formula, data, **run)
        with tiers.forced("compile"):
            compiled = vctest.vc_test(formula, data, **run)
    assert python.pvalue == compiled.pvalue
    np.testing.assert_array_equal(python.null_distribution, compiled.null_distribution)


def test_a_fit_switches_to_compiled_kernels_midway_with_the_same_numbers(fresh_tiers,
                                                                          monkeypatch):
    """Budget 23 s, one fake second per call, a lookahead of 20 calls: the third
    evaluation's charge decides to compile, and the fit goes on compiled."""
    monkeypatch.setattr(engine.LMM_TIER, "budget", 23.0)
    with tiers.forced("compile"):
        reference = _numbers(vctest.fit(LMM, "sleepstudy"))
    seen = []
    real = tiers.TieredKernel.__call__

    def spy(self, *args):
        seen.append((self.kernel.__name__, self.tier.compiled()))
        return real(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiers.TieredKernel, "__call__", spy)
        switched = _numbers(vctest.fit(LMM, "sleepstudy"))
    np.testing.assert_array_equal(switched, reference)
    lmm = [compiled for name, compiled in seen if name != "scratch"]
    assert lmm[:3] == [False, False, False] and all(lmm[3:]), seen
    assert engine.LMM_TIER.spent == 3.0


def test_a_small_job_stays_interpreted(fresh_tiers, monkeypatch):
    monkeypatch.setattr(engine.LMM_TIER, "budget", 1e9)
    with tiers.forced("compile"):
        reference = _numbers(vctest.fit(LMM, "sleepstudy"))
    assert np.array_equal(_numbers(vctest.fit(LMM, "sleepstudy")), reference)
    assert not engine.LMM_TIER.compiled()
    assert engine.LMM_TIER.spent > 0.0


def test_exact_draws_switch_after_the_first_chunk(fresh_tiers):
    """600 draws, a first chunk of 64 taking one (fake) second: the 536 left
    would take 8.4 s, more than the 6 s budget, so they are drawn compiled."""
    with tiers.forced("compile"):
        reference = rlrt_null([5.0, 3.0, 1.0], 30, 1, nsim=600, seed=5)
    chunks = []
    real_twin = spectral._SPECTRAL_NULL_PY

    def twin(seeds, *rest):
        chunks.append(seeds.size)
        return real_twin(seeds, *rest)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spectral, "_SPECTRAL_NULL_PY", twin)
        switched = rlrt_null([5.0, 3.0, 1.0], 30, 1, nsim=600, seed=5)
    np.testing.assert_array_equal(switched, reference)
    assert chunks == [64] and spectral.EXACT_TIER.compiled()


def test_bootstrap_replicates_switch_with_the_same_numbers(fresh_tiers, monkeypatch):
    """The first chunk (two replicates, each dozens of timed kernel calls) costs
    more than its share of a 10 s budget: the other four replicates run compiled."""
    monkeypatch.setattr(bootstrap.BOOTSTRAP_TIER, "budget", 10.0)
    monkeypatch.setattr(engine.LMM_TIER, "budget", 1e9)  # the refits stay interpreted
    monkeypatch.setattr(engine._SCRATCH_TIER, "budget", 1e9)
    run = {"term": "(0 + Days | Subject)", "method": "bootstrap", "nsim": 6, "seed": 3,
           "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiers.forced("compile"):
            reference = vctest.vc_test(LMM, "sleepstudy", **run)
        compiled_rows = []
        real = bootstrap.bootstrap

        def spy(seeds, *rest):
            compiled_rows.append(seeds.size)
            return real(seeds, *rest)

        monkeypatch.setattr(bootstrap, "bootstrap", spy)
        switched = vctest.vc_test(LMM, "sleepstudy", **run)
    np.testing.assert_array_equal(switched.null_distribution, reference.null_distribution)
    assert compiled_rows == [4]
    assert bootstrap.BOOTSTRAP_TIER.compiled()


@pytest.mark.parametrize(("budget", "interpreted"), [(1e9, [3, 6, 12, 24, 48, 7]), (30.0, [3])])
def test_run_rows_does_every_row_once(fresh_tiers, budget, interpreted):
    """Chunks of 3, 6, 12, ... rows as Python; with a budget of 30 s, the first
    chunk's second predicts 97 / 3 s more: the rest in one compiled call."""
    tier = tiers.Tier("test", budget, (engine.fit_model,))
    done = np.zeros(100, int)
    chunks: dict[str, list[int]] = {"python": [], "compiled": []}

    def work(kind):
        def rows(lo, hi):
            done[lo:hi] += 1
            chunks[kind].append(hi - lo)
        return rows

    with tiers.forced("auto"):
        tiers.run_rows(tier, 100, compiled=work("compiled"), twin=work("python"), first=3)
    assert (done == 1).all()
    assert chunks["python"] == interpreted
    assert chunks["compiled"] == ([] if sum(interpreted) == 100 else [100 - sum(interpreted)])
    assert tier.spent == len(interpreted)


def test_lapack_sized_models_call_compiled_objectives(fresh_tiers, monkeypatch):
    """NumPy's LAPACK is not the compiled kernels': a dense block of order
    ``lapack_min`` or more is never factored by interpreted source."""
    calls = []
    monkeypatch.setattr(engine, "_FIT_TIERED", lambda *a: calls.append("tiered"))
    monkeypatch.setattr(engine, "_FIT_INTERPRETED", lambda *a: calls.append("compiled"))
    ctl = SimpleNamespace(lapack_min=LAPACK_MIN_ORDER)
    engine.run_fit(SimpleNamespace(m_re=LAPACK_MIN_ORDER - 3, p=2), None, ctl, None)
    engine.run_fit(SimpleNamespace(m_re=LAPACK_MIN_ORDER - 2, p=2), None, ctl, None)
    assert calls == ["tiered", "compiled"]


def test_the_policy_is_validated(monkeypatch):
    monkeypatch.setenv("VCTEST_JIT", "fast")
    with pytest.raises(ValueError, match="VCTEST_JIT='fast'"):
        tiers.mode()
    monkeypatch.setenv("VCTEST_JIT", "compile")
    assert tiers.mode() == "compile"
    with tiers.forced("interpret"):
        assert tiers.mode() == "interpret"
    with pytest.raises(ValueError, match="policy='later'"), tiers.forced("later"):
        pass


@pytest.mark.slow
def test_a_cold_process_does_small_jobs_without_compiling(tmp_path):
    """An empty cache, the first calls of a new user: nothing compiles, no notice,
    and the numbers are those of the compiled kernels."""
    script = (
        "import json, warnings, numba\n"
        "import vctest\n"
        "from vctest.kernels import _jit\n"
        f"m = vctest.fit({LMM!r}, 'sleepstudy')\n"
        "g = vctest.fit('cbind(incidence, size - incidence) ~ period + (1 | herd)', 'cbpp',"
        " family='binomial')\n"
        "e = vctest.vc_test('Yield ~ 1 + (1 | Batch)', 'Dyestuff', term='(1 | Batch)',"
        " nsim=2000, seed=1, progress=False)\n"
        "compiled = sorted(name for mod in ('engine', 'objective', 'gradient', 'pwls',"
        " 'spectral', 'families') for name, obj in vars(__import__('vctest.kernels.' + mod,"
        " fromlist=['x'])).items() if isinstance(obj, numba.core.dispatcher.Dispatcher)"
        " and obj.signatures)\n"
        "print(json.dumps({'lmm': [m.objective, *map(float, m.theta)],"
        " 'glmm': [g.objective, *map(float, g.theta)], 'exact': e.pvalue,"
        " 'compiled': compiled}))\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in {"VCTEST_QUIET_COMPILE", "VCTEST_JIT", "NUMBA_DISABLE_JIT",
                        "VCTEST_NUMBA_CACHE"}}
    env["VCTEST_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["compiled"] == []
    assert "compiling" not in out.stderr
    with tiers.forced("compile"):
        m = vctest.fit(LMM, "sleepstudy")
        g = vctest.fit(CBPP, "cbpp", family="binomial")
        e = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                           nsim=2000, seed=1, progress=False)
    assert got["lmm"] == [m.objective, *map(float, m.theta)]
    assert got["glmm"] == [g.objective, *map(float, g.theta)]
    assert got["exact"] == e.pvalue


def test_many_small_fits_compile_the_driver(fresh_tiers, monkeypatch):
    """The optimiser's own Python time is charged to the driver's tier: once it
    reaches the budget, fit_model itself runs compiled -- with the same numbers."""
    monkeypatch.setattr(engine.LMM_TIER, "budget", 1e9)
    monkeypatch.setattr(engine._SCRATCH_TIER, "budget", 1e9)
    monkeypatch.setattr(engine.DRIVER_TIER, "budget", 5.0)
    compiled_fits = []
    real = engine.fit_compiled

    def spy(*args):
        compiled_fits.append(1)
        return real(*args)

    monkeypatch.setattr(engine, "fit_compiled", spy)
    first = _numbers(vctest.fit(LMM, "sleepstudy"))
    assert not compiled_fits and engine.DRIVER_TIER.spent >= 5.0
    second = _numbers(vctest.fit(LMM, "sleepstudy"))
    assert compiled_fits
    np.testing.assert_array_equal(first, second)


def test_the_compile_policy_compiles_the_driver(monkeypatch):
    compiled_fits = []
    real = engine.fit_compiled
    monkeypatch.setattr(engine, "fit_compiled", lambda *a: compiled_fits.append(1) or real(*a))
    with tiers.forced("compile"):
        vctest.fit(LMM, "sleepstudy")
    assert compiled_fits


@pytest.mark.parametrize("runner", ["_FIT_TIERED", "_FIT_INTERPRETED"])
def test_a_fit_runs_only_the_driver_and_small_leaves_as_python(runner):
    """Every kernel a fit's interpreted source reaches is the driver's own, an
    inlined leaf, or a tiered kernel: a heavy kernel (one looping over the data)
    left out of ``engine.TIERED`` would run as Python even once compiled."""
    driver = set(engine.DRIVER_TIER.kernels)
    for kernel in getattr(engine, runner).interpreted_kernels:
        inline = kernel.targetoptions.get("inline") == "always"
        assert kernel in driver or inline, kernel.py_func.__qualname__
