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
    for heading in ("## lme4 fits", "## GLMM fits", "## Exact nulls against RLRsim",
                    "## Closed forms", "## GLMM bootstrap test under H0",
                    "## Size (effect 0) and power", "## Timings"):
        assert heading in text
    assert (tmp_path / "figures" / "qq_rlrsim.png").stat().st_size > 10_000
    # every mass-at-zero comparison and the bootstrap's size within 4 standard errors (the
    # naive chi-square and the 50:50 mixture are shown for contrast: they are off)
    lines = [line for line in text.splitlines()
             if "| naive |" not in line and "| mixture |" not in line]
    ratios = re.findall(r"\| ([+-]\d+\.\d) \|", "\n".join(lines))
    assert len(ratios) >= 10
    for ratio in ratios:
        assert abs(float(ratio)) < 4.0, ratio
    # GLMM fits: -2 logLik within 1e-8 of lme4 with tight tolerances
    rels = re.findall(r"\| (?:cbpp|grouseticks)\w* \| [\d.]+ \| ([+-][\d.e+-]+) \|", text)
    assert len(rels) >= 5
    for rel in rels:
        assert abs(float(rel)) < 1e-8, rel
