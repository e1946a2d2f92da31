"""Benchmark: a power curve with the exact test, against a loop of lme4 refits and RLRsim in R.

Run:  python validation/bench/bench_power_curve.py [--nsim 500] [--r-nsim 500] [--no-r]
                                                    [--threads 1]

The workload (issue 20): a sleepstudy-like design (10 days per subject), the model
``Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)`` with sleepstudy-like
parameters (intercept 251.4, slope 10.47, sd of the subject intercepts 24.74, of the
subject slopes 3, residual sd 25.59), the random slope tested by the exact RLRT (the
pseudo-model null of Greven et al. 2008, 10,000 null draws at most per data set), at 5
numbers of subjects with ``--nsim`` data sets each.

vctest runs it twice: with its default sequential stopping (a data set's null draws stop
once its decision at 0.05 is settled with error 1e-3) and with all 10,000 draws per data
set (``sequential=False``, the same work as R).  R runs the same loop in one ``Rscript``
in the same run: simulate a response, refit the three models with ``lmer`` (REML), and
``RLRsim::exactRLRT(mA, m, m0, nsim = 10000)``.  With ``--r-nsim`` below ``--nsim`` R
runs fewer data sets per size and its time is scaled up per data set (said in the output).
Both curves are printed: they estimate the same power, so they must agree within Monte
Carlo error.  The machine's figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import warnings

import numpy as np

import vctest

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

SIZES = (6, 10, 14, 18, 24)
FORMULA = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
TERM = "(0 + Days | Subject)"
BETA = {"(Intercept)": 251.4, "Days": 10.47}
SD_INTERCEPT, SD_SLOPE, SIGMA = 24.74, 3.0, 25.59

R_SCRIPT = r"""
suppressMessages({library(lme4); library(RLRsim); library(jsonlite)})
args <- commandArgs(TRUE)
nsim <- as.integer(args[1]); sizes <- as.integer(strsplit(args[2], ",")[[1]])
b0 <- 251.4; b1 <- 10.47; sd0 <- 24.74; sd1 <- 3.0; sigma <- 25.59
set.seed(20)
out <- list()
t_all <- system.time({
for (K in sizes) {
  d <- data.frame(Subject = factor(rep(seq_len(K), each = 10)), Days = rep(0:9, K))
  rej <- 0
  t <- system.time(for (i in seq_len(nsim)) {
    d$Reaction <- b0 + b1 * d$Days + rep(rnorm(K, 0, sd0), each = 10) +
      d$Days * rep(rnorm(K, 0, sd1), each = 10) + rnorm(nrow(d), 0, sigma)
    m <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), d)
    m0 <- lmer(Reaction ~ Days + (1 | Subject), d)
    mA <- lmer(Reaction ~ Days + (0 + Days | Subject), d)
    p <- suppressWarnings(exactRLRT(mA, m, m0, nsim = 10000)$p.value)
    rej <- rej + (p <= 0.05)
  })[["elapsed"]]
  out[[length(out) + 1]] <- list(size = K, rejections = rej, datasets = nsim, seconds = t)
}
})[["elapsed"]]
cat(toJSON(list(rows = out, seconds = t_all), auto_unbox = TRUE, digits = NA))
"""


def model() -> vctest.StudyModel:
    """The sleepstudy-like model on 18 subjects (extended to each size by power_curve)."""
    design = vctest.design_frame({"Subject": 18, "Days": range(10)})
    return vctest.make_model(FORMULA, design, fixef=BETA,
                             varcorr={"(1 | Subject)": SD_INTERCEPT**2,
                                      "(0 + Days | Subject)": SD_SLOPE**2},
                             sigma=SIGMA)


def run_vctest(nsim: int, sequential: bool, threads: int | None) -> tuple[float, object]:
    """Seconds and the curve of the exact test at the 5 sizes."""
    t0 = time.perf_counter()
    pc = vctest.power_curve(model(), term=TERM, along="Subject", sizes=SIZES, nsim=nsim,
                            methods=("exact",), nsim_exact=10_000, sequential=sequential,
                            seed=20, threads=threads, progress=False)
    return time.perf_counter() - t0, pc


def run_r(nsim: int) -> dict | None:
    """R's loop (seconds and rejections per size), or None without Rscript."""
    if shutil.which("Rscript") is None:
        print("Rscript not found: skipping the R comparison.")
        return None
    res = subprocess.run(["Rscript", "-e", R_SCRIPT, str(nsim),
                          ",".join(map(str, SIZES))], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        print(f"R failed (skipping the comparison):\n{res.stderr[-2000:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=500)
    ap.add_argument("--r-nsim", type=int, default=None,
                    help="data sets per size in R (default: --nsim)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    run_vctest(5, True, args.threads)  # compile / load the kernels
    total = args.nsim * len(SIZES)
    print(f"workload: {len(SIZES)} sizes x {args.nsim} data sets, exact RLRT of {TERM}")
    results = {}
    for label, seq in (("sequential", True), ("all 10,000 draws", False)):
        sec, pc = run_vctest(args.nsim, seq, args.threads)
        results[label] = sec
        draws = pc.table["mean_draws"].mean()
        print(f"vctest ({label}): {sec:.2f} s ({1e3 * sec / total:.2f} ms per data set, "
              f"{draws:.0f} null draws per data set on average)")
        print("  rate by size: " + ", ".join(
            f"{s}: {r:.3f}" for s, r in pc.rate("exact").items()))
    if args.no_r:
        return
    r_nsim = args.r_nsim or args.nsim
    r = run_r(r_nsim)
    if r is None:
        return
    # the loops' time (the one-off start-up of the first lmer call excluded, as vctest's
    # compilation is by its warm-up run)
    r_sec = sum(float(row["seconds"]) for row in r["rows"]) * args.nsim / r_nsim
    scaled = "" if r_nsim == args.nsim else f" (ran {r_nsim} per size, scaled to {args.nsim})"
    print(f"R lme4 + RLRsim::exactRLRT: {r_sec:.1f} s{scaled}")
    print("  rate by size: " + ", ".join(
        f"{row['size']}: {row['rejections'] / row['datasets']:.3f}" for row in r["rows"]))
    for label, sec in results.items():
        print(f"ratio R / vctest ({label}): {r_sec / sec:.0f}x")
    se = np.sqrt(0.25 / args.nsim)
    print(f"(a rate's Monte Carlo standard error is at most {se:.3f} with vctest's "
          f"{args.nsim} data sets per size)")


if __name__ == "__main__":
    main()
