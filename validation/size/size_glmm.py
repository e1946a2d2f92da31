"""Size study under H0 for the GLMM bootstrap test (issue 5).

Run:  python validation/size/size_glmm.py [--datasets 200] [--nsim 39]

Binomial (10 trials per row) and Poisson designs with 20 groups of 10 rows and
one covariate; data simulated from the GLM without the random intercept
(H0: its variance is zero).  Each data set is tested by
``vc_test(..., family=..., method="bootstrap", nsim=B)``; with B = 39 a Monte
Carlo test of a pivotal statistic rejects at 0.05 with probability exactly
2/40.  Written: size_glmm.json (rates, binomial SEs, naive chi2 and 50:50
mixture for comparison, settings and versions).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import vctest
from vctest.results import versions

ALPHA = 0.05


def run(family: str, n_data: int, nsim: int, root: np.random.SeedSequence) -> dict:
    g = np.repeat(np.arange(20), 10)
    rej = {"bootstrap": 0, "naive": 0, "mixture": 0}
    failed = 0
    pvalues = []
    for i, ss in enumerate(root.spawn(n_data)):
        rng = np.random.default_rng(ss)
        x = rng.normal(size=g.size)
        eta = (-0.5 if family == "binomial" else 1.0) + 0.5 * x
        if family == "binomial":
            k = rng.binomial(10, 1 / (1 + np.exp(-eta)))
            data = pd.DataFrame({"k": k, "f": 10 - k, "x": x, "g": [f"g{j}" for j in g]})
            formula = "cbind(k, f) ~ x + (1 | g)"
        else:
            data = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x,
                                 "g": [f"g{j}" for j in g]})
            formula = "y ~ x + (1 | g)"
        res = vctest.vc_test(formula, data, term="(1 | g)", family=family, method="bootstrap",
                             nsim=nsim, seed=i)
        failed += res.n_failed
        pvalues.append(res.pvalue)
        rej["bootstrap"] += res.pvalue <= ALPHA
        rej["naive"] += res.asymptotic["naive chi2(1)"] <= ALPHA
        rej["mixture"] += res.asymptotic["50:50 mixture chi2(0):chi2(1)"] <= ALPHA
    se = math.sqrt(ALPHA * (1 - ALPHA) / n_data)
    out = {name: {"rejection_rate": r / n_data, "mc_se": se, "n": n_data}
           for name, r in rej.items()}
    p = np.asarray(pvalues)
    # P(p <= 0.10) too: a second level of the same test (exact 4/40 with B = 39)
    out["bootstrap"]["rejection_rate_0.10"] = float(np.mean(p <= 0.10))
    out["bootstrap"]["failed_refits"] = failed
    out["bootstrap"]["replicates"] = n_data * nsim
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--nsim", type=int, default=39)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--out", default=str(Path(__file__).with_name("size_glmm.json")))
    args = ap.parse_args()
    t0 = time.perf_counter()
    sb, sp = np.random.SeedSequence(args.seed).spawn(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = {"alpha": ALPHA, "datasets": args.datasets, "nsim": args.nsim,
                  "seed": args.seed, "design": "20 groups x 10 rows, one covariate; H0 data",
                  "binomial": run("binomial", args.datasets, args.nsim, sb),
                  "poisson": run("poisson", args.datasets, args.nsim, sp)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["versions"] = versions()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for fam in ("binomial", "poisson"):
        print(fam, {k: round(v["rejection_rate"], 4) for k, v in result[fam].items()},
              f"(MC SE {result[fam]['bootstrap']['mc_se']:.4f})")
    print(f"{result['seconds']} s; written to {args.out}")


if __name__ == "__main__":
    main()
