"""Run a snippet of Python in a fresh interpreter on this tree (for tests of signals and
caches, which need a process of their own)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without vctest's and Numba's switches, on this tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_DISABLE_JIT", "VCTEST_NUMBA_CACHE", "VCTEST_TRACEBACK")}
    env.update(PYTHONPATH=str(ROOT), VCTEST_QUIET_COMPILE="1", **extra)
    return env


def run_python(code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -c code *args`` from the repository root; output captured as text."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
