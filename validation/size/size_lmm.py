"""Size study under H0 for the LMM bootstrap test (issue 4).

Run:  python validation/size/size_lmm.py [--datasets 1000] [--nsim 199] [--out size_lmm.json]

Two designs, data simulated under the null hypothesis:

A. balanced one-way, K = 6 groups of J = 5 (Dyestuff's design), y = 1 + e:
   RLRT of ``(1 | g)`` -- bootstrap, exact (spectral), naive chi2(1), 50:50
   chi2(0):chi2(1) mixture;
B. sleepstudy's design, y simulated from the ML fit of
   ``Reaction ~ Days + (1 | Subject)``: LRT of the correlated slope
   ``(0 + Days | Subject)`` in ``(Days | Subject)`` -- bootstrap, naive
   chi2(2), 50:50 chi2(1):chi2(2) mixture.

Each data set gets its own seed from one SeedSequence; the bootstrap of data
set i uses seed i.  The empirical type-I error at alpha = 0.05 and its
binomial standard error are written to ``--out`` with the settings and
versions.  With B = 199 replicates, a bootstrap test of a pivotal statistic
rejects with probability exactly 10/200 = 0.05.
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


def rate(pvalues: list[float]) -> dict[str, float]:
    p = np.asarray(pvalues)
    r = float(np.mean(p <= ALPHA))
    return {"rejection_rate": r, "mc_se": math.sqrt(ALPHA * (1 - ALPHA) / p.size),
            "n": int(p.size)}


def design_a(n_data: int, nsim: int, root: np.random.SeedSequence) -> dict:
    k, j = 6, 5
    g = pd.Categorical([f"g{i}" for i in np.repeat(np.arange(k), j)])
    out: dict[str, list[float]] = {"bootstrap": [], "exact": [], "naive": [], "mixture": []}
    for i, ss in enumerate(root.spawn(n_data)):
        y = 1.0 + np.random.default_rng(ss).normal(size=k * j)
        data = pd.DataFrame({"y": y, "g": g})
        boot = vctest.vc_test("y ~ 1 + (1 | g)", data, term="(1 | g)", method="bootstrap",
                              nsim=nsim, seed=i, progress=False)
        exact = vctest.vc_test("y ~ 1 + (1 | g)", data, term="(1 | g)", nsim=10_000, seed=i)
        out["bootstrap"].append(boot.pvalue)
        out["exact"].append(exact.pvalue)
        out["naive"].append(boot.asymptotic["naive chi2(1)"])
        out["mixture"].append(boot.asymptotic["50:50 mixture chi2(0):chi2(1)"])
    return {"design": "balanced one-way K=6, J=5; H0: y = 1 + e; RLRT of (1 | g)",
            **{name: rate(p) for name, p in out.items()}}


def design_b(n_data: int, nsim: int, root: np.random.SeedSequence) -> dict:
    data = vctest.datasets.load("sleepstudy")
    null = vctest.fit("Reaction ~ Days + (1 | Subject)", data, reml=False)
    x = null.model.design.X
    groups = data["Subject"].cat.codes.to_numpy()
    sd_subject = float(null.theta[0] * null.sigma)
    out: dict[str, list[float]] = {"bootstrap": [], "naive": [], "mixture": []}
    for i, ss in enumerate(root.spawn(n_data)):
        rng = np.random.default_rng(ss)
        y = (x @ null.beta.to_numpy() + rng.normal(0, sd_subject, 18)[groups]
             + rng.normal(0, null.sigma, len(data)))
        res = vctest.vc_test("Reaction ~ Days + (Days | Subject)", data.assign(Reaction=y),
                             term="(0 + Days | Subject)", method="bootstrap", nsim=nsim,
                             seed=i, reml=False, progress=False)
        out["bootstrap"].append(res.pvalue)
        out["naive"].append(res.asymptotic["naive chi2(2)"])
        out["mixture"].append(res.asymptotic["50:50 mixture chi2(1):chi2(2)"])
    return {"design": "sleepstudy, H0 from the ML fit of Reaction ~ Days + (1 | Subject); "
                      "LRT of (0 + Days | Subject) in (Days | Subject)",
            **{name: rate(p) for name, p in out.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=1000)
    ap.add_argument("--nsim", type=int, default=199)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--out", default=str(Path(__file__).with_name("size_lmm.json")))
    args = ap.parse_args()
    t0 = time.perf_counter()
    root = np.random.SeedSequence(args.seed)
    seq_a, seq_b = root.spawn(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # boundary notes are expected under H0
        result = {
            "alpha": ALPHA, "datasets": args.datasets, "nsim": args.nsim, "seed": args.seed,
            "A": design_a(args.datasets, args.nsim, seq_a),
            "B": design_b(args.datasets, args.nsim, seq_b),
        }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["versions"] = versions()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for key in ("A", "B"):
        print(result[key]["design"])
        for name, r in result[key].items():
            if isinstance(r, dict):
                print(f"  {name:<10} {r['rejection_rate']:.4f}  (MC SE {r['mc_se']:.4f})")
    print(f"{result['seconds']} s; written to {args.out}")


if __name__ == "__main__":
    main()
