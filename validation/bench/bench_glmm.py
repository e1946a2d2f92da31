"""Benchmark: one cbpp GLMM fit and 1,000 bootstrap replicates of the herd test, vs lme4.

Run:  python validation/bench/bench_glmm.py [--nsim 1000] [--r-replicates 100] [--no-r]

Model ``cbind(incidence, size - incidence) ~ period + (1 | herd)`` (binomial,
Laplace), test of ``(1 | herd)`` against the GLM.  Measured in this run:

* vctest: a warm ``vctest.fit`` (median of 20); ``vctest.vc_test(...,
  family="binomial", nsim=1000)`` end to end on one thread and on all threads
  (each replicate: simulate, refit the GLM null and the GLMM);
* lme4 (Rscript, when R and lme4 are installed): ``glmer`` fit (median of 20)
  and the same bootstrap replicate done the lme4 way -- ``simulate`` from the
  fitted GLM, ``refit(glmer_fit, y)`` and ``glm`` on it -- timed over
  ``--r-replicates`` replicates.

Printed: times and the ratios glmer fit / vctest time per replicate (the
issue's goal: at least 20x per refit) and lme4 replicate / vctest replicate.
The first ``vctest`` call (Numba cache load, or compilation on a cold cache)
is reported separately.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import numpy as np

import vctest

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
R_SCRIPT = r"""
suppressMessages(library(lme4)); data(cbpp)
f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
m <- glmer(f, cbpp, family = binomial)
t_fit <- median(replicate(20, system.time(glmer(f, cbpp, family = binomial))[["elapsed"]]))
g <- glm(cbind(incidence, size - incidence) ~ period, cbpp, family = binomial)
set.seed(1)
sims <- simulate(g, nsim = NREP)
t_rep <- system.time(for (s in sims) {
  y <- s
  suppressMessages(refit(m, y))
  glm(y ~ period, cbpp, family = binomial)
})[["elapsed"]] / NREP
cat(t_fit, t_rep, "\n")
"""


def time_r(n_rep: int) -> tuple[float, float] | None:
    """(glmer fit, lme4 bootstrap replicate) in seconds, or None without R."""
    try:
        out = subprocess.run(["Rscript", "-e", R_SCRIPT.replace("NREP", str(n_rep))],
                             capture_output=True, text=True, check=True, timeout=1800)
        t_fit, t_rep = map(float, out.stdout.split()[-2:])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return t_fit, t_rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=1000)
    ap.add_argument("--r-replicates", type=int, default=100)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    kw = {"term": "(1 | herd)", "family": "binomial", "seed": 1, "progress": False}

    t0 = time.perf_counter()
    vctest.vc_test(FORMULA, "cbpp", nsim=10, **kw)
    t_first = time.perf_counter() - t0
    fits = []
    for _ in range(20):
        t0 = time.perf_counter()
        fit = vctest.fit(FORMULA, "cbpp", family="binomial")
        fits.append(time.perf_counter() - t0)
    t_fit = float(np.median(fits))
    runs = {}
    for threads in (1, None):
        t0 = time.perf_counter()
        res = vctest.vc_test(FORMULA, "cbpp", nsim=args.nsim, threads=threads, **kw)
        runs[threads] = (time.perf_counter() - t0, res)
    wall1, res = runs[1]
    wall_all, res_all = runs[None]
    assert np.array_equal(res.null_distribution, res_all.null_distribution)
    per_rep = wall1 / args.nsim
    print(f"cbpp {FORMULA}, binomial (Laplace)")
    print(f"vctest first call (cache load or compile): {t_first:.2f} s")
    print(f"vctest fit: {1e3 * t_fit:.2f} ms (-2 logLik {fit.objective:.4f}, "
          f"theta {fit.theta[0]:.5f})")
    print(f"vctest vc_test, {args.nsim:,} replicates: {wall1:.2f} s on 1 thread "
          f"({1e3 * per_rep:.3f} ms per replicate = GLM + GLMM refit), {wall_all:.2f} s on "
          f"{res_all.settings['threads']} threads; statistic {res.statistic:.4f}, "
          f"p = {res.pvalue:.4g}, failed {res.n_failed}")
    if args.no_r:
        return
    r = time_r(args.r_replicates)
    if r is None:
        print("R/lme4 not available: not measured")
        return
    t_r_fit, t_r_rep = r
    ratio = t_r_fit / per_rep
    print(f"lme4 glmer fit (measured now): {1e3 * t_r_fit:.1f} ms; lme4 replicate "
          f"(refit + glm, {args.r_replicates} timed): {1e3 * t_r_rep:.1f} ms")
    print(f"ratio glmer fit / vctest replicate (1 thread): {ratio:.0f}x (goal >= 20x per "
          f"refit: {'met' if ratio >= 20 else 'NOT met'}); lme4 replicate / vctest replicate: "
          f"{t_r_rep / per_rep:.0f}x on 1 thread, "
          f"{t_r_rep / (wall_all / args.nsim):.0f}x on all threads")


if __name__ == "__main__":
    main()
