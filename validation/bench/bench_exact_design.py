"""Benchmark: 10^5 exact RLRT null draws for a spline basis with n = 1,000, vctest vs RLRsim.

Run:  python validation/bench/bench_exact_design.py [--n 1000] [--knots 35] [--nsim 100000]
                                                      [--repeats 3] [--json out.json]

Design: x_i = (i - 0.5)/n, K knots at the type-7 quantiles of x, truncated-linear
basis (x - knot)_+, X = [1, x] (the basis of prior-art E4, scaled up).  Measured in
this run:

* ``vctest.exact_rlrt(y, X, Z, nsim)``: the whole public call (validation, the
  REML fit from one SVD, the exact null, the result), with ``threads=1`` and
  with all threads (best of ``--repeats``); the REML fit alone (QR, SVD and the
  profile) and the null alone (``vctest.rlrt_null`` on the design's eigenvalues);
* R's ``RLRsim::RLRTSim(X, Z, qr(X), diag(K), nsim)`` on the same design (built
  in R the same way), timed with ``system.time`` around the call only, one
  thread; skipped with a message when ``Rscript`` or RLRsim is missing;
* P(T = 0) and q95 of both samples.  They differ by more than Monte Carlo
  error on spline bases: RLRTSim stops at the first decrease of the profile
  and so misses the global maximum of a bimodal one
  (tests/test_exact_design.py reproduces its rule).

On a machine whose cores are busy with other work, OpenBLAS's threads can make
the QR and SVD of the 1000 x 35 design take seconds instead of milliseconds
(spin-waiting); ``OPENBLAS_NUM_THREADS=1`` avoids it.  Say which you ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import numba
import numpy as np
from _timing import best_of

import vctest
from vctest.model.one_component import OneComponentModel

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

R_SCRIPT = r"""
suppressMessages(library(RLRsim))
n <- NOBS; K <- KNOTS; x <- ((1:n) - 0.5) / n
knots <- quantile(x, seq(0, 1, length = K + 2)[-c(1, K + 2)], type = 7, names = FALSE)
Z <- outer(x, knots, function(a, b) pmax(a - b, 0)); X <- cbind(1, x)
set.seed(1)
t <- system.time(s <- RLRTSim(X, Z, qr(X), diag(K), nsim = NSIM))["elapsed"]
cat(sprintf("%.4f %.5f %.5f\n", t, mean(s == 0), quantile(s, 0.95)))
"""


def spline_design(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, X = [1, x] and the truncated-linear basis with ``k`` knots."""
    x = (np.arange(1, n + 1) - 0.5) / n
    knots = np.quantile(x, np.linspace(0, 1, k + 2)[1:-1])
    return x, np.column_stack([np.ones(n), x]), np.maximum(x[:, None] - knots, 0)


def measure_rlrsim(n: int, k: int, nsim: int) -> tuple[float, float, float] | str:
    """RLRTSim seconds, P(0) and q95, or why it could not run."""
    script = (R_SCRIPT.replace("NOBS", str(n)).replace("KNOTS", str(k))
              .replace("NSIM", f"{nsim:d}"))
    try:
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                             timeout=1200, check=True)
        seconds, p0, q95 = map(float, out.stdout.split())
    except FileNotFoundError:
        return "Rscript not found"
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"RLRsim did not run ({type(exc).__name__})"
    return seconds, p0, q95


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--knots", type=int, default=35)
    ap.add_argument("--nsim", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    n, k, nsim = args.n, args.knots, args.nsim
    x, X, Z = spline_design(n, k)
    y = 1 + 2 * x + np.random.default_rng(1).normal(size=n)
    all_threads = numba.config.NUMBA_NUM_THREADS
    print(f"design: truncated-linear spline, n = {n}, K = {k}, X = [1, x]; nsim = {nsim}")

    vctest.exact_rlrt(y, X, Z, nsim=10, seed=1)  # compile / load the kernels
    res: dict[str, float] = {}
    sample = None
    for label, th in (("1thread", 1), (f"{all_threads}threads", all_threads)):
        res[f"exact_rlrt_{label}_s"], out = best_of(
            lambda th=th: vctest.exact_rlrt(y, X, Z, nsim=nsim, seed=2, threads=th),
            args.repeats)
        sample = out.null_distribution
    res["fit_reml_s"], _ = best_of(lambda: OneComponentModel.from_arrays(y, X, Z).fit(True),
                                   args.repeats)
    m = OneComponentModel.from_arrays(y, X, Z)
    res["rlrt_null_1thread_s"], _ = best_of(
        lambda: vctest.rlrt_null(m.mu, n, 2, nsim=nsim, seed=2, threads=1), args.repeats)
    res["vctest_p0"] = float(np.mean(sample == 0))
    res["vctest_q95"] = float(np.quantile(sample, 0.95))
    for key, v in res.items():
        print(f"  {key:<26} {v:.4f}")

    r = measure_rlrsim(n, k, nsim)
    if isinstance(r, str):
        print(f"RLRsim: skipped ({r}); no ratio.")
    else:
        res["rlrsim_RLRTSim_s"], res["rlrsim_p0"], res["rlrsim_q95"] = r
        print(f"  RLRsim RLRTSim (1 thread)  {r[0]:.4f} s; P(0) = {r[1]:.4f}, q95 = {r[2]:.4f}")
        for label in ("1thread", f"{all_threads}threads"):
            ratio = r[0] / res[f"exact_rlrt_{label}_s"]
            res[f"ratio_rlrsim_over_exact_rlrt_{label}"] = ratio
            print(f"  RLRTSim / exact_rlrt ({label}): {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": n, "knots": k, "nsim": nsim, **res}, fh, indent=1)


if __name__ == "__main__":
    main()
