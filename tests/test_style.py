"""Code style and architecture checks that run with the suite."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "vctest"

# lower layers must not import higher ones: kernels <- model <- nulls <- api <- cli
LAYERS = ["kernels", "formula", "model", "nulls", "api", "cli"]


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is part of the `test` extra)")
    out = subprocess.run([ruff, "check", "vctest", "tests", "validation"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "vctest" or len(parts) < 2:
        return None
    name = parts[1]
    return LAYERS.index(name) if name in LAYERS else None


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_imports_flow_one_way(path):
    own = _layer("vctest." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    if own is None:
        return
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            target = _layer(node.module)
            assert target is None or target <= own, f"{path.name} imports {node.module}"


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
