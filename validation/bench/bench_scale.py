"""Benchmark: large exact runs locally and on a Dask LocalCluster; memory; InstEval.

Run:  python validation/bench/bench_scale.py [--nsim 10000000] [--no-dask] [--no-insteval]

Reports, measured in this run:

* exact RLRT null draws per second for the Dyestuff design with ``nsim``
  draws and ``keep_null=False`` (flat memory): 1 thread, all threads, and a
  2-worker Dask LocalCluster (1 thread each) -- and that all three give the
  same p-value, mass at zero and quantiles;
* peak resident memory of a fresh process making ``nsim`` draws without
  keeping the sample -- through the low-level route (goal < 200 MB) and
  through ``vc_test`` (whose imports alone take about 300 MB) -- next to the
  process's memory after imports, so the run's own share is visible;
* the InstEval fit (73,421 rows; s, d, dept crossed) and an exact test of
  ``(1 | dept)`` among the three components (Greven et al. 2008), against
  lme4's stored fit time (validation/reference/insteval_fits.json, made by
  validation/r/insteval_fit.R on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import vctest

# compiled speed: no first calls run as Python (vctest.kernels.tiers)
os.environ.setdefault("VCTEST_JIT", "compile")

DYE = ("Yield ~ 1 + (1 | Batch)", "Dyestuff")
MEMORY_LEAN = r"""
import sys
import numpy as np
from vctest._rng import seed_sequence
from vctest.nulls.exact import SpectralDesign, SpectralTask, simulate_null
sd = SpectralDesign(n=30, p=1, mu=np.array([5.0] * 5 + [0.0]), xi=np.array([5.0] * 6))
task = SpectralTask(sd, True, seed_sequence(1))
simulate_null(task, 1000, 6.369, keep=False)
base = hwm()
_, sketch = simulate_null(task, int(sys.argv[1]), 6.369, keep=False)
peak = hwm()
print(base, peak, sketch.n)
"""
MEMORY_FULL = r"""
import sys, vctest
vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)", nsim=1000, seed=0)
base = hwm()
res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                     nsim=int(sys.argv[1]), seed=1, keep_null=False)
peak = hwm()
print(base, peak, res.nsim)
"""


#: Peak resident set of this process (MB) from /proc (ru_maxrss would include the
#: parent's resident set inherited at fork).
HWM = r"""
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def peak_memory(child: str, nsim: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", HWM + child, str(nsim)], capture_output=True,
                         text=True, check=True)
    base, peak, _ = map(float, out.stdout.split())
    return base, peak


def exact(nsim: int, **kw) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = vctest.vc_test(*DYE, term="(1 | Batch)", nsim=nsim, seed=1, keep_null=False, **kw)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=10_000_000)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--no-insteval", action="store_true")
    args = ap.parse_args()
    import numba

    exact(1000)  # compile or load the cache
    print(f"exact RLRT null, Dyestuff design, {args.nsim:,} draws, keep_null=False")
    runs = {}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        t, res = exact(args.nsim, threads=threads)
        runs[f"local, {threads} thread(s)"] = (t, res)
    if not args.no_dask:
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            exact(1000, backend="dask", client=client)  # workers load the kernels
            runs["Dask LocalCluster, 2 workers"] = exact(args.nsim, backend="dask",
                                                         client=client)
    ref = next(iter(runs.values()))[1]
    for label, (t, res) in runs.items():
        same = (res.pvalue == ref.pvalue and res.null_summary == ref.null_summary)
        print(f"  {label:<32} {t:7.2f} s  {args.nsim / t / 1e6:6.2f} M draws/s  "
              f"p = {res.pvalue:.6f}  identical: {same}")

    base, peak = peak_memory(MEMORY_LEAN, args.nsim)
    print(f"peak memory, fresh process, {args.nsim:,} draws not kept, low-level route "
          f"(vctest.nulls.exact.simulate_null): {peak:.0f} MB (after imports and warm-up "
          f"{base:.0f} MB); goal < 200 MB: {'met' if peak < 200 else 'NOT met'}")
    base, peak = peak_memory(MEMORY_FULL, args.nsim)
    print(f"peak memory, fresh process, same draws through vctest.vc_test (pandas, "
          f"formulaic, model kernels loaded): {peak:.0f} MB (baseline {base:.0f} MB; the run "
          f"adds {peak - base:.0f} MB)")

    if not args.no_insteval:
        ref_file = Path(__file__).parents[1] / "reference" / "insteval_fits.json"
        lme4 = json.loads(ref_file.read_text())["fits"][0]
        data = vctest.datasets.load("InstEval")
        formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"
        t0 = time.perf_counter()
        fit = vctest.fit(formula, data)
        t_fit = time.perf_counter() - t0
        print(f"InstEval REML fit: {t_fit:.1f} s ({fit.n_evals} evaluations; criterion "
              f"{fit.objective:.6f}, lme4 {lme4['criterion']:.6f}); lme4 (stored, this "
              f"machine): {lme4['elapsed_seconds']:.1f} s")
        t0 = time.perf_counter()
        res = vctest.vc_test(formula, data, term="(1 | dept)", nsim=100_000, seed=1)
        print(f"InstEval exact RLRT of (1 | dept) (three fits + 10^5 draws): "
              f"{time.perf_counter() - t0:.1f} s; statistic {res.statistic:.3f}, "
              f"p = {res.pvalue:.3g}")


if __name__ == "__main__":
    main()
