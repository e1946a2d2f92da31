"""The validation report regenerates (quick subset, as CI runs it) and says what it should."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_quick_report(tmp_path):
    pytest.importorskip("matplotlib")
    out = subprocess.run([sys.executable, str(ROOT / "validation" / "make_report.py"),
                          "--quick", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "report.md").read_text()
    for heading in ("## lme4 fits", "## Exact nulls against RLRsim", "## Closed forms",
                    "## Size (effect 0) and power", "## Timings"):
        assert heading in text
    assert (tmp_path / "figures" / "qq_rlrsim.png").stat().st_size > 10_000
    # every mass-at-zero comparison within 4 standard errors
    for ratio in re.findall(r"\| ([+-]\d+\.\d) \|", text):
        assert abs(float(ratio)) < 4.0, ratio
