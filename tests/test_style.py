"""Code style and architecture checks that run with the suite."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "vctest"

# The layers, and which layers each may import (its own included).  Imports
# only point down: cli -> api -> nulls -> model -> formula -> kernels.
# ``results`` and ``report`` present results: they import each other and the
# leaves only, never the engine (a report helper takes plain data).  The
# leaves (``_*`` modules, ``datasets``, ``diagnostics``) may be imported by
# every layer and import only leaves.  ``vctest`` itself is the lazy facade.
_ENGINE = ("kernels", "formula", "model", "nulls")
ALLOWED: dict[str, frozenset[str]] = {
    "leaf": frozenset({"leaf"}),
    "kernels": frozenset({"leaf", "kernels"}),
    "formula": frozenset({"leaf", "kernels", "formula"}),
    "model": frozenset({"leaf", "kernels", "formula", "model"}),
    "nulls": frozenset({"leaf", *_ENGINE}),
    "output": frozenset({"leaf", "output"}),
    "api": frozenset({"leaf", *_ENGINE, "output", "api"}),
    "cli": frozenset({"leaf", *_ENGINE, "output", "api", "cli"}),
    "facade": frozenset({"leaf", *_ENGINE, "output", "api", "cli", "facade"}),
}

# Imports that break the rule today: do not add to this set.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

# Edges that close an import cycle today, in the engine's files; each is
# removed from the graph before the cycle check.  Do not add to this set.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str | None:
    """The layer of a vctest module, or None when the rule does not know it."""
    parts = module.split(".")
    if parts == ["vctest"]:
        return "facade"
    top = parts[1]
    if top == "__main__":  # `python -m vctest`: the command line's other door
        return "cli"
    if top.startswith("_") or top in ("datasets", "diagnostics"):
        return "leaf"
    if top in ("results", "report"):
        return "output"
    if top in (*_ENGINE, "api", "cli"):
        return top
    return None


def _resolve(importer: str, node: ast.ImportFrom) -> str | None:
    """The absolute module a ``from ... import`` names (relative ones resolved)."""
    if node.level == 0:
        return node.module
    package = importer.split(".")
    if MODULES[importer].name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every vctest module ``module`` imports, at module level or in a function.

    ``from vctest.a import b`` counts as importing ``vctest.a.b`` when that is
    a module, else ``vctest.a``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            if base is None:
                continue
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name == "vctest" or name.startswith("vctest."):
                while name not in MODULES:  # `import vctest.a.b` of a name in vctest.a
                    name = name.rsplit(".", 1)[0]
                if name != module:
                    found.add(name)
    return frozenset(found)


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is part of the `test` extra)")
    out = subprocess.run([ruff, "check", "vctest", "tests", "validation"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"assign these modules a layer in tests/test_style.py: {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module):
    own = layer_of(module)
    bad = sorted(
        f"{module} ({own}) imports {target} ({layer_of(target)})"
        for target in imports_of(module)
        if layer_of(target) not in ALLOWED[own] and (module, target) not in KNOWN_VIOLATIONS
    )
    assert not bad, "\n".join(bad)


def test_known_violations_are_still_real():
    gone = {(a, b) for a, b in KNOWN_VIOLATIONS | KNOWN_CYCLE_EDGES
            if a not in MODULES or b not in imports_of(a)}
    assert not gone, f"remove these from tests/test_style.py, they are fixed: {gone}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a list of modules, first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    graph = {m: {t for t in imports_of(m) if (m, t) not in KNOWN_CYCLE_EDGES}
             for m in MODULES}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_function_level_and_plain_imports_are_seen():
    assert "vctest._tables" in imports_of("vctest.results")  # inside methods
    assert layer_of("vctest._pvalue") == "leaf" and layer_of("vctest.report.plot") == "output"


def test_loading_a_result_does_not_import_numba(tmp_path):
    """Reading a saved result needs neither the engine nor Numba."""
    from vctest._replicates import ReplicateRecord
    from vctest.results import TestResult

    n = 3
    rec = ReplicateRecord(
        statistic=np.array([0.0, 1.5, np.nan]), objective=np.zeros((n, 2)),
        theta_null=np.zeros((n, 1)), theta_full=np.ones((n, 2)),
        n_evals=np.ones((n, 2), dtype=np.int64), status=np.zeros((n, 2), dtype=np.int64),
        failure=np.array([0, 0, 1], dtype=np.int8), full_singular=np.zeros(n, dtype=bool),
        null_singular=np.zeros(n, dtype=bool))
    result = TestResult(
        statistic=1.0, pvalue=2 / 3, pvalue_mc_se=0.1, pvalue_ci=(0.3, 0.7),
        method="bootstrap", test="LRT", term="(1 | g)",
        reference="parametric bootstrap", null_distribution=np.array([0.0, 1.5]),
        asymptotic={"naive chi2(1)": 0.3}, settings={"nsim": 3}, seed=1, seed_entropy=1,
        n_failed=1, replicates=rec, replicate_summary=rec.summary(1.0),
        failures=rec.failure_counts(), versions={"vctest": "test"})
    path = result.to_json(tmp_path / "r.json")
    code = textwrap.dedent(f"""
        import sys
        import vctest
        back = vctest.load_result({str(path)!r})
        assert back.replicates.failure_counts() == {{'null refit not converged': 1}}
        from vctest.report.serialize import read_result
        read_result({str(path)!r})
        bad = sorted(m for m in sys.modules if m.split('.')[0] == 'numba'
                     or m.startswith(('vctest.nulls', 'vctest.model', 'vctest.kernels')))
        assert not bad, bad
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr


def test_files_stay_small():
    big = [p for p in PACKAGE.rglob("*.py") if len(p.read_text().splitlines()) > 600]
    assert not big, f"split these modules by job: {big}"


def test_kernels_use_the_one_jit_policy():
    for path in (PACKAGE / "kernels").glob("*.py"):
        text = path.read_text()
        if path.name == "_jit.py":
            continue
        assert "numba.njit" not in text and "@njit" not in text, path.name


def test_python_version_supported():
    assert sys.version_info >= (3, 10)
