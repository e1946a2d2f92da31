"""Benchmark: ``fit.confint(method="profile")`` against lme4's ``confint(m, method = "profile")``.

Run:  python validation/bench/bench_profile.py [--reps 3] [--no-r]

Cases: sleepstudy ``Reaction ~ Days + (Days | Subject)`` (6 intervals: 3 variance
parameters, sigma, 2 fixed effects) and Dyestuff ``Yield ~ 1 + (1 | Batch)`` (3
intervals), both REML fits, profiled by ML as lme4 does.  vctest runs each case once to
warm up, then ``--reps`` times; R runs ``confint`` ``--reps`` times in one ``Rscript``
in the same run (the fit is outside the timing on both sides).  Medians, the load
average before the run, the largest difference between the two sets of intervals and
the ratio vctest / lme4 are printed and written to bench_profile.json.  Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

import vctest
from vctest.results import versions

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    "Dyestuff": ("Yield ~ 1 + (1 | Batch)", "Dyestuff"),
}

R_SCRIPT = r"""
suppressMessages({library(lme4); library(jsonlite)})
reps <- as.integer(commandArgs(TRUE)[1])
out <- list()
run <- function(m) {
  ci <- NULL
  t <- replicate(reps, system.time(ci <<- suppressMessages(confint(m, method = "profile")))[
    "elapsed"])
  list(seconds = median(t), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}
out$sleepstudy <- run(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))
out$Dyestuff <- run(lmer(Yield ~ 1 + (1 | Batch), Dyestuff))
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-r", action="store_true")
    args = parser.parse_args()
    record: dict = {"reps": args.reps, "load_average_1min_before": os.getloadavg()[0],
                    "versions": versions(), "cases": {}}
    for name, (formula, data) in CASES.items():
        fit = vctest.fit(formula, data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = fit.confint(method="profile")   # warm
            times = []
            for _ in range(args.reps):
                start = time.perf_counter()
                ci = fit.confint(method="profile")
                times.append(time.perf_counter() - start)
        record["cases"][name] = {"formula": formula, "vctest_seconds": statistics.median(times),
                                 "lower": ci.iloc[:, 0].tolist(),
                                 "upper": ci.iloc[:, 1].tolist()}
        print(f"{name:<11} vctest confint(profile): {statistics.median(times):.3f} s")
    if not args.no_r:
        out = subprocess.run(["Rscript", "-e", R_SCRIPT, str(args.reps)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        for name, case in record["cases"].items():
            ours = np.array([case["lower"], case["upper"]])
            theirs = np.array([r[name]["lower"], r[name]["upper"]])
            case["lme4_seconds"] = r[name]["seconds"]
            case["ratio_vctest_over_lme4"] = case["vctest_seconds"] / r[name]["seconds"]
            case["max_abs_diff_vs_lme4"] = float(np.max(np.abs(ours - theirs)))
            print(f"{name:<11} lme4 confint(profile): {r[name]['seconds']:.3f} s; vctest / lme4 "
                  f"= {case['ratio_vctest_over_lme4']:.2f}; max |difference| of the "
                  f"intervals {case['max_abs_diff_vs_lme4']:.2e}")
    Path(__file__).with_name("bench_profile.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
