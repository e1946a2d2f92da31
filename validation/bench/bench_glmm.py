"""Benchmark: one cbpp GLMM fit and bootstrap replicates of the herd test, vs lme4's glmer.

Run:  python validation/bench/bench_glmm.py [--nsim 1000] [--no-r]

Measured in this run: vctest's cbpp fit (Laplace), the time per refit, and
``vc_test(..., family="binomial", method="bootstrap", nsim)``; lme4's glmer
fit of the same model timed with Rscript (median of 20) when R is installed.
Goal (issue 5): at least 20x faster per refit than glmer.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np

import vctest

FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
R_SCRIPT = r"""
suppressMessages(library(lme4)); data(cbpp)
f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
glmer(f, cbpp, family = binomial)
t <- replicate(20, system.time(glmer(f, cbpp, family = binomial))["elapsed"])
cat(median(t), "\n")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=1000)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    vctest.fit(FORMULA, "cbpp", family="binomial")  # compile / load the cache
    t0 = time.perf_counter()
    fit = vctest.fit(FORMULA, "cbpp", family="binomial")
    t_fit = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    n = fit.model.weights
    mu = 1 / (1 + np.exp(-(np.asarray(fit.model.design.X) @ fit.beta.to_numpy())))
    ys = [rng.binomial(n.astype(int), mu) / n for _ in range(100)]
    t0 = time.perf_counter()
    for y in ys:
        fit.refit(y)
    t_refit = (time.perf_counter() - t0) / len(ys)
    t0 = time.perf_counter()
    res = vctest.vc_test(FORMULA, "cbpp", term="(1 | herd)", family="binomial",
                         method="bootstrap", nsim=args.nsim, seed=1)
    t_boot = time.perf_counter() - t0
    print(f"vctest cbpp fit: {1e3 * t_fit:.1f} ms; refit {1e3 * t_refit:.1f} ms; "
          f"bootstrap {args.nsim:,} replicates {t_boot:.1f} s "
          f"(p = {res.pvalue:.4g}, failed {res.n_failed})")
    if not args.no_r:
        try:
            out = subprocess.run(["Rscript", "-e", R_SCRIPT], capture_output=True, text=True,
                                 check=True, timeout=600)
            t_r = float(out.stdout.split()[-1])
        except (OSError, subprocess.SubprocessError, ValueError):
            print("lme4 not available: not measured")
            return
        print(f"lme4 glmer fit (measured now): {1e3 * t_r:.1f} ms; ratio glmer / vctest "
              f"refit: {t_r / t_refit:.1f}x (goal 20x: "
              f"{'met' if t_r / t_refit >= 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
