"""Benchmark: cold start (compiling the Numba kernels) and warm first call, vs a baseline commit.

Run:  python validation/bench/bench_coldstart.py [--baseline 3623bc7] [--no-baseline]
      [--stages lmm_fit,exact_test,lmm_bootstrap,glmm_fit,glmm_bootstrap] [--json]

For the current tree and for a baseline commit (extracted with ``git archive``
into a temporary directory), each copy without ``__pycache__``:

* cold: one fresh Python process with an EMPTY kernel cache (fresh temporary
  ``VCTEST_CACHE_DIR`` and ``NUMBA_CACHE_DIR``; the baseline, which predates
  ``VCTEST_CACHE_DIR``, caches under ``NUMBA_CACHE_DIR``) runs the stages one
  after the other through the public API and reports the CPU seconds of each
  (``time.process_time`` deltas: all threads of the process), the import, the
  total and the peak RSS (``ru_maxrss``);
* warm: a second process with the same (now filled) cache, giving the warm
  first call of each stage (wall and CPU seconds).

Stages (tiny jobs on bundled data, as ``vctest warmup`` runs them):
``lmm_fit`` sleepstudy ``Reaction ~ Days + (Days | Subject)``; ``exact_test``
Dyestuff ``(1 | Batch)``, 2,000 draws; ``lmm_bootstrap`` the same by
parametric bootstrap, 8 replicates; ``glmm_fit`` cbpp binomial; ``glmm_bootstrap``
cbpp ``(1 | herd)``, 4 replicates; not run by default: ``poisson_fit`` grouseticks,
``lmm_fit_large`` a simulated 40,000-row ``y ~ x + (x | g)`` (400 groups: large
enough for compiling to pay) and ``warmup`` (``vctest.warmup()``: compiles every
kernel, whatever the size of the jobs).

The goals of the issue are printed next to the figures: total ≤ 45 s CPU
(whole cold process, import included), LMM fit + exact test ≤ 12 s CPU, peak
RSS ≤ 500 MB, warm first call ≤ 2 s (wall, the first stage in a warm process).

Measured 2026-11-30 (2 shared cores, Numba 0.68.1), baseline 3623bc7 (two
stacks) vs the one engine, both in the same run: cold CPU s lmm_fit 27.6 / 44.2,
exact_test 6.4 / 6.8, lmm_bootstrap 26.6 / 43.6, glmm_fit 44.5 / 0.0 and
glmm_bootstrap 66.7 / 0.0 (the engine compiled them already), process total
174.1 / 96.7 (goal 45), lmm_fit + exact_test 34.0 / 51.0 (goal 12), peak RSS
815.1 / 539.4 MB (goal 500); warm first call (lmm_fit) 0.5 / 0.5 s wall.  An
earlier run of the same trees gave 163.0 / 84.6 s in all: runs differ by ~10%.

Measured 2026-11-30 (session 6), baseline 5957f15 (fit_model compiled by the first
fit) vs single fits run by :func:`vctest.kernels.engine.run_fit` (fit_model's source
interpreted, calling the compiled objective kernels): lmm_fit 65.8 / 23.4,
exact_test 7.2 / 7.0, lmm_bootstrap 59.5 / 129.3 (it now compiles fit_model),
process total 134.9 / 161.9, lmm_fit + exact_test 73.0 / 30.4, peak RSS 629 / 709
MB; warm first call 0.4 / 0.5 s.

Measured 2026-11-30 (session 7, quiet machine), baseline b13aa9c vs the engine's
kernels calling each other by address (:mod:`vctest.kernels.calls`: each kernel
compiled once, not again inside every caller and every ``prange`` layer):
lmm_fit 22.2 / 24.6, exact_test 6.5 / 5.9, lmm_bootstrap 119.6 / 31.0, glmm stages
0 / 0, process total 150.6 / 63.8 (goal 45), lmm_fit + exact_test 28.7 / 30.5
(goal 12), peak RSS 721 / 467 MB (goal 500, met); warm first call 0.3 / 0.5 s.

Measured 2026-11-30 (session 8; machine shared with three other jobs), baseline
d01a5e7 vs tiered execution (:mod:`vctest.kernels.tiers`: small jobs run the
kernels' source as Python, with the same numbers, until compiling pays):
lmm_fit 21.6 / 0.1, exact_test 6.2 / 0.2, lmm_bootstrap 31.5 / 0.0, glmm_fit
0.0 / 0.3, glmm_bootstrap 0.0 / 1.0, lmm_fit + exact_test 27.8 / 0.3 (goal 12),
process total 61.4 / 3.7 (goal 45), peak RSS 459 / 202 MB (goal 500); warm
first call 0.7 / 0.2 s.  What compiling costs when it does pay
(``--stages lmm_fit_large,warmup``): a 40,000-row ``y ~ x + (x | g)`` fit
25.4 / 21.9 s, then ``vctest.warmup()`` (everything else) 48.7 / 53.0 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
STAGES = ["lmm_fit", "exact_test", "lmm_bootstrap", "glmm_fit", "glmm_bootstrap"]
ALL_STAGES = [*STAGES, "poisson_fit", "lmm_fit_large", "warmup"]
GOALS = {"total_cpu": 45.0, "lmm_fit+exact_test": 12.0, "peak_rss_mb": 500.0,
         "warm_first_call": 2.0}

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
stages = sys.argv[1].split(",")
c0, w0 = time.process_time(), time.perf_counter()
import vctest
from vctest.api import fit, vc_test
out = {"import": {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}}
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
JOBS = {
    "lmm_fit": lambda: fit("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    "exact_test": lambda: vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                                  nsim=2000, seed=1, progress=False),
    "lmm_bootstrap": lambda: vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                                     method="bootstrap", nsim=8, seed=1, progress=False),
    "glmm_fit": lambda: fit(CBPP, "cbpp", family="binomial"),
    "glmm_bootstrap": lambda: vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial",
                                      nsim=4, seed=1, progress=False),
    "poisson_fit": lambda: fit("TICKS ~ YEAR + (1 | BROOD)", "grouseticks", family="poisson"),
    "lmm_fit_large": lambda: fit("y ~ x + (x | g)", _large()),
    "warmup": lambda: vctest.warmup(progress=False),
}
def _large():
    import numpy as np, pandas as pd
    rng = np.random.default_rng(1)
    n, groups = 40_000, 400
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    b = rng.normal(size=(groups, 2)) * [1.0, 0.5]
    y = 1.0 + 0.3 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
for name in stages:
    c, w = time.process_time(), time.perf_counter()
    JOBS[name]()
    out[name] = {"cpu": time.process_time() - c, "wall": time.perf_counter() - w}
out["total_cpu"] = time.process_time()
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def extract(rev: str | None, dest: Path) -> Path:
    """A copy of the package without ``__pycache__``: the working tree (rev None) or a commit."""
    dest.mkdir(parents=True)
    if rev is None:
        shutil.copytree(ROOT / "vctest", dest / "vctest",
                        ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "archive", rev, "vctest"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run(tree: Path, cache: Path, stages: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"VCTEST_NUMBA_CACHE", "NUMBA_DISABLE_JIT", "PYTHONPATH", "VCTEST_JIT"}}
    env.update(PYTHONPATH=str(tree), VCTEST_CACHE_DIR=str(cache / "vctest"),
               NUMBA_CACHE_DIR=str(cache / "numba"), VCTEST_QUIET_COMPILE="1")
    out = subprocess.run([sys.executable, "-c", CHILD, ",".join(stages)], env=env,
                         cwd=tree, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed in {tree}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rev: str | None, stages: list[str], work: Path) -> dict:
    label = rev or "current"
    tree = extract(rev, work / label / "src")
    cache = work / label / "cache"
    print(f"[{label}] cold run ...", file=sys.stderr, flush=True)
    cold = run(tree, cache, stages)
    print(f"[{label}] warm run ...", file=sys.stderr, flush=True)
    warm = run(tree, cache, stages)
    return {"rev": label, "cold": cold, "warm": warm}


def _fmt(x: float | None, spec: str = "8.1f") -> str:
    return format(x, spec) if x is not None else " " * (int(spec.split(".")[0]) - 1) + "–"


def table(results: list[dict], stages: list[str]) -> str:
    base = next((r for r in results if r["rev"] != "current"), None)
    cur = next(r for r in results if r["rev"] == "current")
    head = f"{'':<22}{'baseline':>10}{'current':>10}{'ratio':>8}   goal"
    rows = [f"cold start, CPU seconds (baseline {base['rev'] if base else 'not run'})", head]

    def row(name: str, key: str, run: str = "cold", field: str | None = "cpu",
            goal: str = "") -> None:
        def get(r: dict | None) -> float | None:
            if r is None or key not in r[run]:
                return None
            v = r[run][key]
            return v[field] if field else v
        b, c = get(base), get(cur)
        ratio = f"{c / b:8.2f}" if b and c is not None else f"{'–':>8}"
        rows.append(f"{name:<22}{_fmt(b, '10.1f')}{_fmt(c, '10.1f')}{ratio}   {goal}")

    row("import", "import")
    for s in stages:
        row(s, s)
    both = {"lmm_fit", "exact_test"} <= set(stages)
    if both:
        for r in results:
            r["cold"]["lmm_fit+exact_test"] = {
                "cpu": r["cold"]["lmm_fit"]["cpu"] + r["cold"]["exact_test"]["cpu"]}
        row("lmm_fit + exact_test", "lmm_fit+exact_test",
            goal=f"≤ {GOALS['lmm_fit+exact_test']:.0f} s")
    row("total (process)", "total_cpu", field=None, goal=f"≤ {GOALS['total_cpu']:.0f} s")
    row("peak RSS, MB", "peak_rss_mb", field=None, goal=f"≤ {GOALS['peak_rss_mb']:.0f} MB")
    rows += ["", "warm process (cache filled by the cold run), wall seconds", head]
    row("import", "import", run="warm", field="wall")
    for i, s in enumerate(stages):
        goal = f"≤ {GOALS['warm_first_call']:.0f} s (first call)" if i == 0 else ""
        row(s, s, run="warm", field="wall", goal=goal)
    row("total CPU (process)", "total_cpu", run="warm", field=None)
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="3623bc7", help="git revision to compare with")
    ap.add_argument("--no-baseline", action="store_true", help="measure the current tree only")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help=f"comma-separated, from {','.join(ALL_STAGES)}")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(ALL_STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}; choose from {ALL_STAGES}")

    with tempfile.TemporaryDirectory(prefix="vctest-coldstart-") as tmp:
        work = Path(tmp)
        results = [] if args.no_baseline else [measure(args.baseline, stages, work)]
        results.append(measure(None, stages, work))
    if args.json:
        print(json.dumps({"stages": stages, "goals": GOALS, "results": results}, indent=2))
    else:
        print(table(results, stages))


if __name__ == "__main__":
    main()
