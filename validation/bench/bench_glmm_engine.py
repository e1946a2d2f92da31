"""Benchmark of the Numba GLMM engine: one cbpp fit and 1,000 refits, vs glmer and statsmodels.

Run:  python validation/bench/bench_glmm_engine.py [--refits 1000] [--no-r] [--compile]

Model: ``cbind(incidence, size - incidence) ~ period + (1 | herd)`` (binomial,
Laplace).  Measured in this run, on one thread:

* vctest: the first fit (Numba cache load, or compilation with ``--compile``,
  which times a fresh process with ``VCTEST_NUMBA_CACHE=0``), a warm fit, and
  ``--refits`` refits on responses simulated from the fitted model, called
  through the jitted kernel :func:`vctest.kernels.engine.fit_model` (the
  path a ``prange`` bootstrap uses) and through ``GlmmFit.refit`` (Python
  objects around it); the GLM null refit (the same kernel, no random effects) too;
* lme4: ``glmer`` fit time (median of 20) and ``refit(m, newresp)`` per
  response (100 simulated responses) with Rscript when R and lme4 are
  installed; otherwise the elapsed seconds stored in
  validation/reference/glmm_fits.json, labelled as such;
* statsmodels: ``BinomialBayesMixedGLM.fit_vb`` on the same data as Bernoulli
  rows (a variational-Bayes fit, not the same estimator: a reference point for
  the only mixed GLM in statsmodels).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import vctest
from vctest.formula.design import build_design
from vctest.kernels.engine import fit_model
from vctest.model.glm import GeneralizedLinearModel
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmSettings, fit_glmm
from vctest.model.structure import make_start

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
ROOT = Path(__file__).parents[2]
R_SCRIPT = r"""
suppressMessages(library(lme4))
d <- read.csv("vctest/datasets/data/cbpp.csv")
d$herd <- factor(d$herd, levels = 1:15); d$period <- factor(d$period, levels = 1:4)
f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
m <- glmer(f, d, family = binomial)
t_fit <- median(replicate(20, system.time(glmer(f, d, family = binomial))[["elapsed"]]))
set.seed(1); sims <- simulate(m, 100)
t_refit <- system.time(for (s in sims) refit(m, s))[["elapsed"]] / length(sims)
cat(t_fit, t_refit, "\n")
"""
COMPILE = r"""
import time; t0 = time.perf_counter()
import numpy as np, vctest
from vctest.formula.design import build_design
from vctest.kernels.engine import fit_model
from vctest.model.glmm import GeneralizedLinearMixedModel, GlmmSettings, fit_glmm
from vctest.model.structure import make_start
m = GeneralizedLinearMixedModel.from_design(build_design(
    "cbind(incidence, size - incidence) ~ period + (1 | herd)", vctest.datasets.load("cbpp")),
    "binomial")
t1 = time.perf_counter(); f = fit_glmm(m); t2 = time.perf_counter()
fit_model(m.structure, m.data(), GlmmSettings().kernel(),
          make_start(m.layout, m.structure, f.theta, m.beta_to_engine(f.beta)))
print(t1 - t0, t2 - t1, time.perf_counter() - t2)
"""


def _bernoulli() -> object:
    cbpp = vctest.datasets.load("cbpp")
    rows = np.repeat(np.arange(len(cbpp)), cbpp["size"].astype(int))
    out = cbpp.iloc[rows][["herd", "period"]].reset_index(drop=True)
    out["y"] = np.concatenate([np.r_[np.ones(int(i)), np.zeros(int(s - i))]
                               for i, s in zip(cbpp.incidence, cbpp["size"], strict=True)])
    return out


def time_lme4(use_r: bool) -> tuple[float, float | None, str]:
    if use_r:
        try:
            out = subprocess.run(["Rscript", "-e", R_SCRIPT], capture_output=True, text=True,
                                 check=True, timeout=900, cwd=ROOT)
            t_fit, t_refit = map(float, out.stdout.split()[-2:])
            return t_fit, t_refit, "measured now with Rscript"
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    ref = json.loads((ROOT / "validation/reference/glmm_fits.json").read_text())
    cbpp = next(f for f in ref["fits"] if f["id"] == "cbpp")
    return cbpp["seconds"], None, (f"stored in validation/reference/glmm_fits.json "
                                   f"(lme4 {ref['env']['lme4']}, {ref['env']['date']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refits", type=int, default=1000)
    ap.add_argument("--no-r", action="store_true", help="use the stored lme4 timing")
    ap.add_argument("--compile", action="store_true",
                    help="also time compilation in a fresh process (VCTEST_NUMBA_CACHE=0)")
    args = ap.parse_args()

    design = build_design(FORMULA, vctest.datasets.load("cbpp"))
    model = GeneralizedLinearMixedModel.from_design(design, "binomial")
    t0 = time.perf_counter()
    fit = fit_glmm(model)
    t_first = time.perf_counter() - t0
    t_fits = []
    for _ in range(20):
        t0 = time.perf_counter()
        fit_glmm(model)
        t_fits.append(time.perf_counter() - t0)
    t_fit = float(np.median(t_fits))

    rng = np.random.default_rng(20261125)
    ys = [model.simulate(fit.theta, fit.beta, rng) for _ in range(args.refits)]
    ctl = GlmmSettings().kernel()
    start = make_start(model.layout, model.structure, fit.theta, model.beta_to_engine(fit.beta))
    datas = [model.with_response(y).data() for y in ys]
    fit_model(model.structure, datas[0], ctl, start)  # load the cache
    t0 = time.perf_counter()
    status = [fit_model(model.structure, d, ctl, start)[7] for d in datas]
    t_kernel = (time.perf_counter() - t0) / len(ys)
    n_obj = min(200, len(ys))
    t0 = time.perf_counter()
    for y in ys[:n_obj]:
        fit.refit(y)
    t_object = (time.perf_counter() - t0) / n_obj
    glm = GeneralizedLinearModel.from_design(design, "binomial")
    glm_start = make_start(None, glm.structure, np.zeros(0), glm.beta_to_engine(fit.beta))
    glm_datas = [glm.with_response(y).data() for y in ys]
    t0 = time.perf_counter()
    for d in glm_datas:
        fit_model(glm.structure, d, ctl, glm_start)
    t_glm = (time.perf_counter() - t0) / len(ys)

    print(f"cbpp {FORMULA}, binomial (Laplace), one thread")
    print(f"vctest first fit (cache load or compile): {t_first:.2f} s; warm fit "
          f"{1e3 * t_fit:.2f} ms (-2 logLik {fit.objective:.4f}, theta {fit.theta[0]:.5f})")
    print(f"vctest {len(ys):,} refits via fit_model: {1e3 * t_kernel:.3f} ms per refit "
          f"(status counts {np.bincount(status, minlength=6).tolist()}); via GlmmFit.refit "
          f"{1e3 * t_object:.3f} ms; GLM null refit {1e6 * t_glm:.1f} us")

    t_r_fit, t_r_refit, source = time_lme4(not args.no_r)
    print(f"lme4 glmer fit ({source}): {1e3 * t_r_fit:.1f} ms -> ratio glmer fit / vctest "
          f"refit {t_r_fit / t_kernel:.0f}x, / vctest fit {t_r_fit / t_fit:.0f}x")
    if t_r_refit is not None:
        print(f"lme4 refit(m, newresp): {1e3 * t_r_refit:.1f} ms per response -> ratio "
              f"{t_r_refit / t_kernel:.0f}x")

    try:
        from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

        bern = _bernoulli()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            BinomialBayesMixedGLM.from_formula("y ~ C(period)", {"herd": "0 + C(herd)"},
                                               bern).fit_vb()
            times.append(time.perf_counter() - t0)
        t_sm = float(np.median(times))
        print(f"statsmodels BinomialBayesMixedGLM.fit_vb (842 Bernoulli rows; variational "
              f"Bayes): {1e3 * t_sm:.1f} ms -> ratio {t_sm / t_kernel:.0f}x vs vctest refit")
    except ImportError:
        print("statsmodels not available: not measured")

    if args.compile:
        env = dict(os.environ, VCTEST_NUMBA_CACHE="0")
        out = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True,
                             env=env, check=True, cwd=ROOT)
        t_imp, t_fit_c, t_refit_c = map(float, out.stdout.split()[-3:])
        print(f"compilation (fresh process, VCTEST_NUMBA_CACHE=0): import {t_imp:.1f} s, "
              f"first fit_glmm {t_fit_c:.1f} s, first fit_model call {t_refit_c:.1f} s")


if __name__ == "__main__":
    main()
