"""Size study under H0 for ``vctest.ranova``'s rows (issue 19).

Run:  python validation/size/size_ranova.py [--datasets 400] [--nsim 39] [--nsim-exact 4000]

Two designs where lmerTest's naive chi-square column is conservative:

* ``pastes``: the Pastes layout (10 batches x 3 casks x 2 samples), responses
  simulated from ``strength ~ 1 + (1 | cask:batch)`` fitted to Pastes (the
  batch variance is 0).  Row ``(1 | batch)`` of ``ranova(strength ~ 1 + (1 |
  batch/cask))`` is an exact row (REML, pseudo-model of Greven et al. 2008).
* ``sleep_slope``: the sleepstudy layout (18 subjects x 10 days), responses
  simulated from ``Reaction ~ Days + (1 | Subject)`` fitted to sleepstudy (no
  slope variance).  Row ``Days in (Days | Subject)`` is a bootstrap row; with
  B = 39 replicates a Monte Carlo test of a pivotal statistic rejects at 0.05
  with probability exactly 2/40.

For each data set the row's naive chi-square, chi-bar-square and reference
(exact or bootstrap) p-values are recorded; written: size_ranova.json (rejection
rates at 0.05 with binomial standard errors, settings, versions).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

import vctest
from vctest.results import versions

ALPHA = 0.05
DESIGNS = {
    "pastes": ("Pastes", "strength", "strength ~ 1 + (1 | cask:batch)",
               "strength ~ 1 + (1 | batch/cask)", "(1 | batch)"),
    "sleep_slope": ("sleepstudy", "Reaction", "Reaction ~ Days + (1 | Subject)",
                    "Reaction ~ Days + (Days | Subject)", "Days in (Days | Subject)"),
}


def run(name: str, n_data: int, nsim: int, nsim_exact: int,
        root: np.random.SeedSequence) -> dict:
    data_name, response, null_formula, formula, row = DESIGNS[name]
    data = vctest.datasets.load(data_name)
    null = vctest.fit(null_formula, data)
    sims = null.simulate(n_data, seed=root.spawn(1)[0])
    cols = {"naive": "Pr(>Chisq)", "chibar": "Pr(chibar)", "reference": "Pr(ref)"}
    pvals = {k: [] for k in cols}
    kinds = set()
    start = time.time()
    for i, ss in enumerate(root.spawn(n_data)):
        d = data.copy()
        d[response] = sims[:, i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tab = vctest.ranova(formula, d, nsim=nsim, nsim_exact=nsim_exact, seed=ss)
        frame = tab.to_frame()
        kinds.add(str(frame.loc[row, "reference"]))
        for k, col in cols.items():
            pvals[k].append(float(frame.loc[row, col]))
    out = {"design": name, "formula": formula, "simulated_from": null_formula, "row": row,
           "reference_kind": sorted(kinds), "n_datasets": n_data, "seconds":
           round(time.time() - start, 1)}
    for k, values in pvals.items():
        rate = float(np.mean(np.asarray(values) <= ALPHA))
        out[f"rate_{k}"] = rate
        out[f"se_{k}"] = math.sqrt(ALPHA * (1 - ALPHA) / n_data)
    if "bootstrap" in kinds:
        out["expected_reference_rate"] = math.floor(ALPHA * (nsim + 1)) / (nsim + 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--nsim", type=int, default=39)
    parser.add_argument("--nsim-exact", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    root = np.random.SeedSequence(args.seed)
    results = [run(name, args.datasets, args.nsim, args.nsim_exact, child)
               for name, child in zip(DESIGNS, root.spawn(len(DESIGNS)), strict=True)]
    record = {"alpha": ALPHA, "nsim": args.nsim, "nsim_exact": args.nsim_exact,
              "seed": args.seed, "results": results, "versions": versions()}
    path = Path(__file__).with_name("size_ranova.json")
    path.write_text(json.dumps(record, indent=2))
    for r in results:
        print(f"{r['design']:<12} naive {r['rate_naive']:.3f}  chibar {r['rate_chibar']:.3f}  "
              f"reference ({'/'.join(r['reference_kind'])}) {r['rate_reference']:.3f}  "
              f"(SE {r['se_reference']:.3f}, {r['seconds']} s)")


if __name__ == "__main__":
    main()
