"""Benchmark: one fit and 1,000 refits of sleepstudy (Days | Subject), vs statsmodels.

Run:  python validation/bench/bench_lmm.py [--refits 1000] [--sm-refits 30]

Prints per-fit times for vctest (first call including Numba compilation or
cache load; a warm fit; refits reusing the workspace, with and without the
finite-difference diagnostics) and for statsmodels ``MixedLM`` on the same
data and the same simulated responses, measured in the same run, and their
ratios.  statsmodels has no refit path, so its "refit" is a new model on the
new response; fewer statsmodels refits are timed (``--sm-refits``) and the
per-fit time is compared.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

T_IMPORT = time.perf_counter()
import vctest
from vctest.kernels.engine import fit_model
from vctest.model.structure import make_start

FORMULA = "Reaction ~ Days + (Days | Subject)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refits", type=int, default=1000)
    ap.add_argument("--sm-refits", type=int, default=30)
    args = ap.parse_args()

    data = vctest.datasets.load("sleepstudy")
    t0 = time.perf_counter()
    first = vctest.fit(FORMULA, data)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = vctest.fit(FORMULA, data)
    t_warm = time.perf_counter() - t0

    rng = np.random.default_rng(20261125)
    ys = [fit.model.y + rng.normal(0, 25, fit.nobs) for _ in range(args.refits)]

    t0 = time.perf_counter()
    for y in ys:
        r = fit.refit(y)
    t_refit = (time.perf_counter() - t0) / args.refits

    t0 = time.perf_counter()
    for y in ys[: min(200, args.refits)]:
        r = fit.refit(y)
        _ = r.diagnostics
    t_refit_diag = (time.perf_counter() - t0) / min(200, args.refits)

    ctl = fit.settings.kernel()
    models = [fit.model.with_response(y) for y in ys]
    start = make_start(fit.model.layout, fit.model.structure, fit.theta, np.zeros(fit.model.p))
    t0 = time.perf_counter()
    for m in models:
        fit_model(m.structure, m.data(True), ctl, start)
    t_kernel = (time.perf_counter() - t0) / args.refits

    import statsmodels.formula.api as smf

    def sm_fit(frame):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return smf.mixedlm("Reaction ~ Days", frame, groups="Subject",
                               re_formula="~Days").fit(reml=True)

    t0 = time.perf_counter()
    sm = sm_fit(data)
    t_sm_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    for y in ys[: args.sm_refits]:
        sm_fit(data.assign(Reaction=y))
    t_sm_refit = (time.perf_counter() - t0) / args.sm_refits

    print(f"sleepstudy {FORMULA}, REML; n = {fit.nobs}")
    print(f"  REML criterion vctest {fit.objective:.6f}; statsmodels llf {sm.llf:.6f} "
          f"(vctest loglik {fit.loglik:.6f})")
    print(f"vctest first fit (import→fit, incl. JIT compile/cache load): {t_first:8.3f} s")
    print(f"vctest warm fit:                                 {t_warm * 1e3:8.3f} ms")
    print(f"vctest refit (workspace reused, lazy diagnostics): {t_refit * 1e3:8.3f} ms")
    print(f"vctest refit + full diagnostics:                 {t_refit_diag * 1e3:8.3f} ms")
    print(f"vctest kernel refit (new response + optimizer):  {t_kernel * 1e3:8.3f} ms")
    print(f"statsmodels MixedLM fit:                         {t_sm_fit * 1e3:8.3f} ms")
    print(f"statsmodels MixedLM fit on a new response:       {t_sm_refit * 1e3:8.3f} ms")
    print(f"ratio statsmodels fit / vctest warm fit:         {t_sm_fit / t_warm:8.1f}x")
    print(f"ratio statsmodels refit / vctest refit:          {t_sm_refit / t_refit:8.1f}x")
    print(f"1,000 refits: vctest {1000 * t_refit:.2f} s vs statsmodels ~{1000 * t_sm_refit:.1f} s")
    del first


if __name__ == "__main__":
    main()
