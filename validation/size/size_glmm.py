"""Size study under H0 for the GLMM bootstrap test (issue 5).

Run:  python validation/size/size_glmm.py [--datasets 200] [--nsim 39]

Binomial (10 trials per row) and Poisson designs with 20 groups of 10 rows and
one covariate; data simulated from the GLM without the random intercept
(H0: its variance is zero).  Each data set is tested by
``vc_test(..., family=..., method="bootstrap", nsim=B)``; with B = 39 a Monte
Carlo test of a pivotal statistic rejects at 0.05 with probability exactly
2/40.  Written: size_glmm.json (rates, binomial SEs, naive chi2 and 50:50
mixture for comparison, settings and versions; and each data set's statistic
and bootstrap p-value, which tests/test_size_glmm.py recomputes for a few).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import vctest
from vctest.results import versions

ALPHA = 0.05
FAMILIES = ("binomial", "poisson")


def dataset_seeds(seed: int, family: str, n_data: int) -> list[np.random.SeedSequence]:
    """The seeds of the data sets of one family (data set i of a run with any n_data)."""
    root = np.random.SeedSequence(seed).spawn(2)[FAMILIES.index(family)]
    return root.spawn(n_data)


def one_dataset(family: str, ss: np.random.SeedSequence, i: int, nsim: int):
    """Simulate data set ``i`` under H0 and test it; the result of ``vc_test``."""
    g = np.repeat(np.arange(20), 10)
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
    return vctest.vc_test(formula, data, term="(1 | g)", family=family, method="bootstrap",
                          nsim=nsim, seed=i)


def run(family: str, n_data: int, nsim: int, seed: int) -> tuple[dict, dict]:
    """Rates of one family, and the per-data-set statistics and p-values."""
    rej = {"bootstrap": 0, "naive": 0, "mixture": 0}
    failed = 0
    per: dict[str, list[float]] = {"statistic": [], "pvalue": []}
    for i, ss in enumerate(dataset_seeds(seed, family, n_data)):
        res = one_dataset(family, ss, i, nsim)
        failed += res.n_failed
        per["statistic"].append(res.statistic)
        per["pvalue"].append(res.pvalue)
        rej["bootstrap"] += res.pvalue <= ALPHA
        rej["naive"] += res.asymptotic["naive chi2(1)"] <= ALPHA
        rej["mixture"] += res.asymptotic["50:50 mixture chi2(0):chi2(1)"] <= ALPHA
    se = math.sqrt(ALPHA * (1 - ALPHA) / n_data)
    out = {name: {"rejection_rate": r / n_data, "mc_se": se, "n": n_data}
           for name, r in rej.items()}
    p = np.asarray(per["pvalue"])
    # P(p <= 0.10) too: a second level of the same test (exact 4/40 with B = 39)
    out["bootstrap"]["rejection_rate_0.10"] = float(np.mean(p <= 0.10))
    out["bootstrap"]["failed_refits"] = failed
    out["bootstrap"]["replicates"] = n_data * nsim
    return out, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--nsim", type=int, default=39)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--out", default=str(Path(__file__).with_name("size_glmm.json")))
    args = ap.parse_args()
    t0 = time.perf_counter()
    result: dict = {"alpha": ALPHA, "datasets": args.datasets, "nsim": args.nsim,
                    "seed": args.seed, "design": "20 groups x 10 rows, one covariate; H0 data"}
    per_dataset = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for fam in FAMILIES:
            result[fam], per_dataset[fam] = run(fam, args.datasets, args.nsim, args.seed)
    result["per_dataset"] = per_dataset
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["versions"] = versions()
    text = json.dumps(result, indent=1)
    # the per-data-set lists on one line each
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]",
                  text)
    Path(args.out).write_text(text + "\n")
    for fam in ("binomial", "poisson"):
        print(fam, {k: round(v["rejection_rate"], 4) for k, v in result[fam].items()},
              f"(MC SE {result[fam]['bootstrap']['mc_se']:.4f})")
    print(f"{result['seconds']} s; written to {args.out}")


if __name__ == "__main__":
    main()
