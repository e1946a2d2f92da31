"""Benchmark: ``vctest.ranova`` of a model with three random terms against lmerTest + pbkrtest.

Run:  python validation/bench/bench_ranova.py [--nsim 1000] [--r-nsim 1000] [--no-r]

Data (simulated once, seed 19, written to a temporary CSV both sides read):
20 subjects in 5 sites, 8 items crossed with subjects, one row per subject x
item, ``y = 1 + 0.5 x + subject intercept and x-slope + item + site + noise``.
Model ``y ~ x + (x | subj) + (1 | item) + (1 | site)``, REML.  Rows of the table:
``x in (x | subj)`` (bootstrap, ``nsim`` replicates), ``(1 | item)`` and ``(1 |
site)`` (exact, 100,000 draws each).

In the same run, R: ``lmerTest::ranova`` (naive chi-square only) plus one
``pbkrtest::PBmodcomp(full, reduced, nsim)`` per row (the parametric
bootstrap R users add to get a p-value that respects the boundary), single
process.  ``--r-nsim`` below ``--nsim`` times PBmodcomp on fewer replicates and
scales its time linearly to ``nsim`` (its cost is one pair of refits per
replicate); the JSON says which.  Written: bench_ranova.json (seconds, load
average, LRTs and p-values of both, and the ratio of R's time to vctest's).
vctest's rows simulate side by side on its threads (``vctest_threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import pandas as pd

import vctest
from vctest.results import versions

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

FORMULA = "y ~ x + (x | subj) + (1 | item) + (1 | site)"
REDUCED = {
    "x in (x | subj)": "y ~ x + (1 | subj) + (1 | item) + (1 | site)",
    "(1 | item)": "y ~ x + (x | subj) + (1 | site)",
    "(1 | site)": "y ~ x + (x | subj) + (1 | item)",
}

R_SCRIPT = r"""
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
d <- read.csv("CSV"); d$subj <- factor(d$subj); d$item <- factor(d$item); d$site <- factor(d$site)
t0 <- proc.time()[["elapsed"]]
full <- lmer(FORMULA, d)
tab <- ranova(full)
t_ranova <- proc.time()[["elapsed"]] - t0
reduced <- list(REDUCED)
set.seed(1)
pb <- list()
t1 <- proc.time()[["elapsed"]]
for (nm in names(reduced)) {
  m0 <- lmer(as.formula(reduced[[nm]]), d)
  r <- suppressWarnings(suppressMessages(PBmodcomp(full, m0, nsim = NSIM, cl = NULL)))
  pb[[nm]] <- list(LRT = r$test["LRT", "stat"], p_naive = r$test["LRT", "p.value"],
                   p_pb = r$test["PBtest", "p.value"])
}
t_pb <- proc.time()[["elapsed"]] - t1
cat(toJSON(list(ranova_seconds = t_ranova, pbmodcomp_seconds = t_pb,
                ranova = list(rows = rownames(tab), LRT = unname(tab$LRT),
                              p = unname(tab[["Pr(>Chisq)"]])), pbmodcomp = pb),
           auto_unbox = TRUE, digits = NA))
"""


def simulate_data(seed: int = 19) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(20), 8)
    item = np.tile(np.arange(8), 20)
    site = subj // 4
    x = rng.normal(size=subj.size)
    b0, b1 = rng.normal(0, 1.0, 20), rng.normal(0, 0.4, 20)
    y = (1 + 0.5 * x + b0[subj] + b1[subj] * x + rng.normal(0, 0.6, 8)[item]
         + rng.normal(0, 0.5, 5)[site] + rng.normal(0, 1.0, subj.size))
    return pd.DataFrame({"y": y, "x": x, "subj": [f"s{i:02d}" for i in subj],
                         "item": [f"i{i}" for i in item], "site": [f"t{i}" for i in site]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nsim", type=int, default=1000)
    parser.add_argument("--r-nsim", type=int, default=None)
    parser.add_argument("--no-r", action="store_true")
    args = parser.parse_args()
    data = simulate_data()
    load = os.getloadavg()[0]
    r_nsim = args.nsim if args.r_nsim is None else args.r_nsim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vctest.ranova(FORMULA, data, nsim=20, nsim_exact=1000, seed=0)   # warm: compile/load
        start = time.perf_counter()
        tab = vctest.ranova(FORMULA, data, nsim=args.nsim, seed=1)
        seconds = time.perf_counter() - start
    frame = tab.to_frame()
    record = {
        "formula": FORMULA, "n": len(data), "nsim": args.nsim, "vctest_seconds": seconds,
        "vctest_threads": numba.get_num_threads(),
        "load_average_1min_before": load,
        "vctest": {str(k): {c: (None if pd.isna(v) else v) for c, v in row.items()}
                   for k, row in frame.iterrows()},
        "versions": versions(),
    }
    print(tab.summary())
    print(f"vctest.ranova: {seconds:.2f} s")
    if not args.no_r:
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "bench_ranova.csv"
            data.to_csv(csv, index=False)
            reduced = ", ".join(f'"{k}" = "{v}"' for k, v in REDUCED.items())
            script = (R_SCRIPT.replace("CSV", str(csv)).replace("FORMULA", FORMULA)
                      .replace("REDUCED", reduced).replace("NSIM", str(r_nsim)))
            start = time.perf_counter()
            out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                                 check=True)
            record["r_wall_seconds"] = time.perf_counter() - start
            record["r"] = json.loads(out.stdout.strip().splitlines()[-1])
        r = record["r"]
        record["r_nsim"] = r_nsim
        record["pbmodcomp_seconds_at_nsim"] = r["pbmodcomp_seconds"] * args.nsim / r_nsim
        print(f"lmerTest::ranova {r['ranova_seconds']:.2f} s + PBmodcomp per row "
              f"{r['pbmodcomp_seconds']:.1f} s with B = {r_nsim} (scaled to B = {args.nsim}: "
              f"{record['pbmodcomp_seconds_at_nsim']:.0f} s; R wall "
              f"{record['r_wall_seconds']:.1f} s)")
        r_total = r["ranova_seconds"] + record["pbmodcomp_seconds_at_nsim"]
        record["ratio_r_over_vctest"] = r_total / seconds
        print(f"ratio (lmerTest::ranova + PBmodcomp per row) / vctest.ranova: "
              f"{r_total:.0f} s / {seconds:.1f} s = {record['ratio_r_over_vctest']:.0f}x")
        for name, row in r["pbmodcomp"].items():
            print(f"  {name:<18} R LRT(ML) {row['LRT']:.4f}  PB p {row['p_pb']:.4g}  "
                  f"vctest Pr(ref) {record['vctest'][name]['Pr(ref)']:.4g}")
    Path(__file__).with_name("bench_ranova.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
