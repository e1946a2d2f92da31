"""The kernel cache cannot go stale, and a cold cache is announced once.

Numba keys a cached function by its own file only; vctest's cache directory is
salted with a digest of every kernel source (vctest/kernels/_jit.py), so
editing a callee in another file must recompile its callers.  The scenario runs
in a copy of the package, with two tiny kernels written into the copy's
``vctest/kernels/`` (so it does not depend on the real kernels' names).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vctest.kernels import _jit

CALLEE = """
from vctest.kernels._jit import jit


@jit
def leaf(x):
    return x + LEAF
"""
CALLER = """
from vctest.kernels._jit import jit
from vctest.kernels._stale_callee import leaf


@jit
def caller(x):
    return 2.0 * leaf(x)
"""
SCRIPT = r"""
import json
from vctest.kernels import _jit
from vctest.kernels._stale_caller import caller
value = caller(2.0)
print(json.dumps({
    "value": value,
    "cache_dir": str(_jit.CACHE_DIR),
    "hits": sum(caller.stats.cache_hits.values()),
    "misses": sum(caller.stats.cache_misses.values()),
}))
"""
NOTICE = "vctest is compiling its numerical kernels"


def _package_copy(root: Path, leaf: float) -> Path:
    pkg = root / "pkg"
    if not pkg.exists():
        src = Path(_jit.__file__).resolve().parents[1]
        shutil.copytree(src, pkg / "vctest", ignore=shutil.ignore_patterns("__pycache__"))
        (pkg / "vctest" / "kernels" / "_stale_caller.py").write_text(CALLER)
    callee = CALLEE.replace("LEAF", repr(leaf))
    (pkg / "vctest" / "kernels" / "_stale_callee.py").write_text(callee)
    return pkg


def _run(pkg: Path, cache: Path) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"NUMBA_CACHE_DIR", "VCTEST_NUMBA_CACHE", "VCTEST_QUIET_COMPILE",
                        "NUMBA_DISABLE_JIT"}}
    env.update(PYTHONPATH=str(pkg), VCTEST_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, cwd=pkg)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def _files(cache: Path) -> dict[str, int]:
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns
            for p in cache.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_editing_a_callee_in_another_file_recompiles_the_caller(tmp_path):
    cache = tmp_path / "cache"
    pkg = _package_copy(tmp_path, 1.0)

    first, err1 = _run(pkg, cache)
    assert first["value"] == 6.0
    assert first["misses"] == 1 and first["hits"] == 0
    salted = Path(first["cache_dir"])
    assert salted.parent == cache and salted.name.startswith("vctest-")
    assert list(salted.rglob("_stale_caller.caller-*.nbi"))
    # the cold cache is announced, once, although two kernels compiled
    assert err1.count(NOTICE) == 1, err1

    before = _files(cache)
    second, err2 = _run(pkg, cache)
    assert second == {**first, "hits": 1, "misses": 0}
    assert NOTICE not in err2
    assert _files(cache) == before  # a pure cache hit writes nothing

    pkg = _package_copy(tmp_path, 10.0)  # only the callee's file changes
    third, err3 = _run(pkg, cache)
    assert third["value"] == 24.0
    assert third["misses"] == 1 and third["hits"] == 0
    assert third["cache_dir"] != first["cache_dir"]
    assert Path(third["cache_dir"]).parent == cache
    assert err3.count(NOTICE) == 1


def test_the_digest_covers_every_kernel_file(tmp_path):
    kernels = tmp_path / "kernels"
    shutil.copytree(_jit.KERNELS_DIR, kernels, ignore=shutil.ignore_patterns("__pycache__"))
    digest = _jit.source_digest(kernels)
    assert digest == _jit.SOURCE_DIGEST
    (kernels / "linalg.py").write_bytes((kernels / "linalg.py").read_bytes() + b"\n")
    assert _jit.source_digest(kernels) != digest
    (kernels / "linalg.py").unlink()
    assert _jit.source_digest(kernels) != digest


def test_the_locator_claims_vctest_kernels_only():
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    assert impl._locator_classes[0] is _jit.VctestCacheLocator
    if _jit.CACHE_DIR is None:
        pytest.skip("caching is off")

    def plain(x):
        return x

    assert _jit.VctestCacheLocator.from_function(plain, __file__) is None
    from vctest.kernels import linalg

    kernel = next(v for v in vars(linalg).values() if hasattr(v, "py_func"))
    locator = _jit.VctestCacheLocator.from_function(kernel.py_func, linalg.__file__)
    assert locator.get_source_stamp() == _jit.SOURCE_DIGEST
    assert Path(locator.get_cache_path()) == _jit.CACHE_DIR / "kernels"
    assert _jit.CACHE_DIR.name == f"vctest-{_jit.SOURCE_DIGEST[:16]}"


@pytest.mark.slow
def test_warmup_runs_every_stage_and_reports_it():
    import vctest
    from vctest.api.warming import STAGES, WarmupReport

    report = vctest.warmup(progress=False)
    assert isinstance(report, WarmupReport)
    assert [name for name, _ in report.stages] == [name for name, _ in STAGES]
    assert all(secs >= 0 for _, secs in report.stages)
    assert report.seconds == pytest.approx(sum(s for _, s in report.stages))
    assert report.cache_dir == (str(_jit.CACHE_DIR) if _jit.CACHE else None)
    text = report.summary()
    assert "GLMM bootstrap" in text and "total" in text
    assert repr(report).startswith("WarmupReport(6 stages")
    with pytest.raises(AttributeError):
        report.cache_dir = "elsewhere"  # frozen
    # warm now: a second warm-up only loads the cache
    assert vctest.warmup(progress=False).seconds < max(report.seconds, 30.0)


def test_cli_warmup_help(capsys):
    from vctest.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["warmup", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "VCTEST_CACHE_DIR" in out and "--quiet" in out


def test_cli_warmup_failure_is_one_line(capsys, monkeypatch):
    import vctest.api
    from vctest.cli import main

    def broken(progress=True):
        raise RuntimeError("disk full")

    monkeypatch.setattr(vctest.api, "warmup", broken)
    assert main(["warmup", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "vctest: error: warmup failed: RuntimeError: disk full"


def test_an_unusable_cache_dir_falls_back_to_the_next(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("VCTEST_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    with pytest.warns(_jit.VctestCacheWarning, match="cannot write its kernel cache in "
                      ".*a-file.*Not a directory.*caching in .*numba") as record:
        found = _jit._find_cache_dir()
    assert len(record) == 1  # said once
    assert found == tmp_path / "numba" / f"vctest-{_jit.SOURCE_DIGEST[:16]}"
    assert found.is_dir()


def test_the_locator_names_its_source_file():
    """Numba's warning for a function it cannot cache reads the locator's ``_py_file``
    (with ``NUMBA_OPT=0`` the cache's save failed with AttributeError without it)."""
    from vctest.kernels import objective

    path = objective.__file__
    locator = _jit.VctestCacheLocator.from_function(objective.evaluate_profiled.py_func, path)
    if locator is None:
        pytest.skip("no kernel cache in this process")
    assert locator._py_file == path
