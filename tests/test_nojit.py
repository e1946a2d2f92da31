"""The pure-Python path (NUMBA_DISABLE_JIT=1) gives the same numbers as the kernels.

A fast subset of the public API runs in a subprocess with Numba's JIT off
(every kernel then runs as plain Python) and its numbers are compared with
the compiled ones from this process.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vctest

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CODE = r"""
import json, warnings
warnings.simplefilter("error")
import numpy as np, vctest
fit = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
exact = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                       nsim=300, seed=5)
boot = vctest.compare("Yield ~ 1 + (1 | Batch)", "Yield ~ 1", "Dyestuff", nsim=8, seed=6)
glmm = vctest.vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial", nsim=3, seed=6)
print(json.dumps({
    "theta": fit.theta.tolist(), "objective": fit.objective, "n_evals": fit.n_evals,
    "exact_null": exact.null_distribution.tolist(), "exact_p": exact.pvalue,
    "boot_obj": boot.replicates.objective.tolist(), "boot_p": boot.pvalue,
    "glmm_obj": glmm.replicates.objective.tolist(), "glmm_stat": glmm.statistic,
}))
""".replace("CBPP", repr(CBPP))


@pytest.mark.slow
def test_pure_python_path_gives_the_same_numbers():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    plain = json.loads(out.stdout.strip().splitlines()[-1])
    fit = vctest.fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    exact = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                           nsim=300, seed=5)
    boot = vctest.compare("Yield ~ 1 + (1 | Batch)", "Yield ~ 1", "Dyestuff", nsim=8, seed=6)
    # random draws are bit-identical; optimiser paths agree to rounding
    assert np.array_equal(plain["exact_null"], exact.null_distribution)
    assert plain["exact_p"] == exact.pvalue
    np.testing.assert_allclose(plain["theta"], fit.theta, rtol=1e-7, atol=1e-9)
    assert plain["objective"] == pytest.approx(fit.objective, rel=1e-12)
    np.testing.assert_allclose(plain["boot_obj"], boot.replicates.objective, rtol=1e-10)
    assert plain["boot_p"] == boot.pvalue
    glmm = vctest.vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial", nsim=3, seed=6)
    # the GLMM bootstrap: same simulated responses (exact samplers), same refits
    np.testing.assert_allclose(plain["glmm_obj"], glmm.replicates.objective, rtol=1e-10)
    assert plain["glmm_stat"] == pytest.approx(glmm.statistic, rel=1e-12)
