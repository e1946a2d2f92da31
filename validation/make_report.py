"""Regenerate the validation report: references, QQ plots, size and power, timings.

Run:  python validation/make_report.py            (full: about 10 minutes, 2 cores)
      python validation/make_report.py --quick    (a small subset, as CI runs it)

Writes ``report.md`` and ``figures/*.png`` next to this script (or under
``--out``), and the same content as ``docs/validation.rst`` for the docs site
(full runs only).  Inputs: the stored R references in ``validation/reference``
(made by the scripts in ``validation/r``); everything else is computed here
with fixed seeds.

Sections
--------
1. lme4 fits (``fits.json``): vctest's criterion, theta and beta against lme4.
2. Exact nulls against RLRsim (``rlrsim_quantiles.json``): QQ plots of 10^5
   vctest draws against RLRsim's 999 quantiles, mass at zero side by side;
   the bootstrap null against pbkrtest's ``PBrefdist`` (``pbkrtest_reference.json``).
3. Closed forms (balanced one-way, prior-art table E1).
4. Size and power of the exact, bootstrap, 50:50-mixture and naive chi-square
   tests: few vs many groups, balanced vs unbalanced, one vs several
   components (``vctest.power``).
5. Timings of the main operations.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import vctest
from vctest.results import versions

HERE = Path(__file__).parent
REF = HERE / "reference"


def _designs() -> list[dict]:
    """The size/power designs: data with a placeholder response."""
    def oneway(sizes, name):
        g = np.repeat(np.arange(len(sizes)), sizes)
        return pd.DataFrame({"y": np.random.default_rng(0).normal(size=g.size),
                             "g": pd.Categorical([f"{name}{i}" for i in g])})

    sleep = vctest.datasets.load("sleepstudy")
    return [
        {"id": "few groups (5 x 4, balanced)", "data": oneway([4] * 5, "g"),
         "formula": "y ~ 1 + (1 | g)", "term": "(1 | g)", "effects": [0.0, 0.5, 1.0]},
        {"id": "many groups (50 x 4, balanced)", "data": oneway([4] * 50, "g"),
         "formula": "y ~ 1 + (1 | g)", "term": "(1 | g)", "effects": [0.0, 0.25, 0.5]},
        {"id": "unbalanced (10 groups of 1..10)", "data": oneway(list(range(1, 11)), "g"),
         "formula": "y ~ 1 + (1 | g)", "term": "(1 | g)", "effects": [0.0, 0.5, 1.0]},
        {"id": "several components (sleepstudy slope)", "data": sleep,
         "formula": "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
         "term": "(0 + Days | Subject)", "effects": [0.0, 0.05, 0.1]},
    ]


def section_lme4() -> tuple[str, list[dict]]:
    fits = json.loads((REF / "fits.json").read_text())["fits"]
    rows = []
    for f in fits:
        m = vctest.fit(f["formula"], f["data"], reml=f["REML"])
        lme4_theta = np.array(list(f["theta"].values()))
        rows.append({
            "model": f["id"], "criterion (lme4)": f"{f['criterion']:.6f}",
            "relative difference": f"{(m.objective - f['criterion']) / f['criterion']:.1e}",
            "max |theta diff|": f"{np.max(np.abs(m.theta - lme4_theta)):.1e}",
            "converged": m.converged, "singular": m.singular,
        })
    return "lme4 fits", rows


def _glmm_data(label: str) -> pd.DataFrame:
    """The data of a stored glmer fit (validation/r/glmm_fits.R), built as the R script does."""
    cbpp = vctest.datasets.load("cbpp")
    if label == "grouseticks":
        gt = vctest.datasets.load("grouseticks")
        return gt.assign(sHEIGHT=(gt.HEIGHT - gt.HEIGHT.mean()) / gt.HEIGHT.std())
    if label == "cbpp (one row per animal)":
        rows = cbpp.loc[cbpp.index.repeat(cbpp["size"])]
        rows = rows.assign(y=(rows.groupby(level=0).cumcount() < rows["incidence"]).astype(int))
        return rows.reset_index(drop=True)
    return cbpp.assign(logsize=np.log(cbpp["size"]))


def section_glmm() -> tuple[str, list[dict]]:
    ref = json.loads((REF / "glmm_fits.json").read_text())
    rows = []
    for f in ref["fits"]:
        m = vctest.fit(f["formula"], _glmm_data(f["data"]), family=f["family"], link=f["link"],
                       offset="logsize" if f["offset"] else None)
        tight = f["tight"]
        theta_t = np.array(list(tight["theta"].values()))
        theta_d = np.array(list(f["theta"].values()))
        rows.append({
            "model": f["id"], "-2 logLik (lme4 tight)": f"{tight['minus2loglik']:.6f}",
            "vctest - tight (relative)":
                f"{(m.objective - tight['minus2loglik']) / tight['minus2loglik']:+.1e}",
            "vctest - default (relative)":
                f"{(m.objective - f['minus2loglik']) / f['minus2loglik']:+.1e}",
            "max |theta diff| tight": f"{np.max(np.abs(m.theta - theta_t)):.1e}",
            "max |theta diff| default": f"{np.max(np.abs(m.theta - theta_d)):.1e}",
            "converged": m.converged, "singular": m.singular,
        })
    return ("GLMM fits against lme4's glmer -- Laplace approximation; lme4 with its default "
            "settings and with tight tolerances (validation/r/glmm_fits.R)."), rows


def section_glmm_size() -> tuple[str, list[dict]]:
    study = json.loads((HERE / "size" / "size_glmm.json").read_text())
    rows = []
    for family in ("binomial", "poisson"):
        for method, r in study[family].items():
            rows.append({"family": family, "method": method,
                         "rejection rate at 0.05": f"{r['rejection_rate']:.4f}",
                         "MC SE": f"{r['mc_se']:.4f}",
                         "difference / SE": f"{(r['rejection_rate'] - 0.05) / r['mc_se']:+.1f}"})
    return (f"GLMM bootstrap test under H0 -- stored output of validation/size/size_glmm.py: "
            f"{study['datasets']} data sets per family, B = {study['nsim']}; "
            f"{study['design']}."), rows


def section_rlrsim(figdir: Path) -> tuple[str, list[dict], str]:
    import matplotlib.pyplot as plt

    from vctest.formula.design import build_design
    from vctest.nulls.exact import spectral_design

    ref = {c["id"]: c for c in json.loads((REF / "rlrsim_quantiles.json").read_text())["cases"]}
    sleep = vctest.datasets.load("sleepstudy")
    sizes = list(range(1, 11))
    unb = pd.DataFrame({"y": np.random.default_rng(0).normal(size=sum(sizes)),
                        "g": pd.Categorical([f"g{i}" for i in np.repeat(range(10), sizes)])})
    cases = [
        ("rlrt.dyestuff", build_design("Yield ~ 1 + (1 | Batch)",
                                       vctest.datasets.load("Dyestuff")), True),
        ("lrt.dyestuff", build_design("Yield ~ 1 + (1 | Batch)",
                                      vctest.datasets.load("Dyestuff")), False),
        ("rlrt.sleep_slope", build_design("Reaction ~ Days + (0 + Days | Subject)", sleep), True),
        ("rlrt.unbalanced", build_design("y ~ 1 + (1 | g)", unb), True),
    ]
    # a 2 x 2 grid: each QQ plot square and readable at the page's width
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 7.5))
    rows = []
    for ax, (cid, design, reml) in zip(axes.ravel(), cases, strict=True):
        sd = spectral_design(design, 0)
        draws = (vctest.rlrt_null(sd.mu, sd.n, sd.p, nsim=100_000, seed=1) if reml else
                 vctest.lrt_null(sd.mu, sd.xi, sd.n, sd.p, nsim=100_000, seed=1))
        r = ref[cid]
        probs = np.array(r["probs"])
        ours = np.quantile(draws, probs)
        theirs = np.array(r["quantiles"])
        ax.plot(theirs, ours, ".", ms=2)
        top = max(theirs.max(), ours.max())
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.set_title(cid, fontsize="small")
        ax.set_xlabel("RLRsim quantile")
        ax.set_ylabel("vctest quantile")
        se = math.sqrt(r["p0"] * (1 - r["p0"]) * 2 / 1e5)
        p0 = float(np.mean(draws == 0))
        rows.append({"case": cid, "P(T=0) vctest": f"{p0:.4f}",
                     "P(T=0) RLRsim": f"{r['p0']:.4f}",
                     "difference / SE": f"{(p0 - r['p0']) / se:+.1f}",
                     "q95 vctest": f"{np.quantile(draws, 0.95):.3f}",
                     "q95 RLRsim": f"{theirs[949]:.3f}"})
    fig.tight_layout()
    path = figdir / "qq_rlrsim.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ("Exact nulls against RLRsim -- 10^5 draws each; the SE of a difference in "
            "P(T=0) combines both samples. RLRsim maximises over lambda by a grid walk that stops "
            "at the first decrease, so where the profile has several modes (unbalanced "
            "designs) its statistics can be too small; vctest's maximisation is checked "
            "against a dense grid in tests/test_spectral.py."), rows, path.name


def section_pbkrtest(figdir: Path) -> tuple[str, list[dict], str]:
    import matplotlib.pyplot as plt

    ref = json.loads((REF / "pbkrtest_reference.json").read_text())
    res = vctest.compare("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)",
                         "sleepstudy", nsim=ref["nsim"], seed=2026, progress=False)
    ours = res.null_distribution
    probs = np.array(ref["probs"])
    theirs = np.array(ref["quantiles"])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(theirs, np.quantile(ours, probs), ".", ms=3)
    top = max(theirs.max(), np.quantile(ours, probs).max())
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlabel("pbkrtest PBrefdist quantile")
    ax.set_ylabel("vctest bootstrap quantile")
    ax.set_title("sleepstudy (Days|Subject) vs (1|Subject), ML", fontsize="small")
    fig.tight_layout()
    fig.savefig(figdir / "qq_pbkrtest.png", dpi=110)
    plt.close(fig)
    rows = []
    for level in (0.5, 0.9, 0.95, 0.99):
        q = theirs[round(level * 100) - 1]
        frac = float(np.mean(ours <= q))
        se = math.sqrt(level * (1 - level) * (1 / ours.size + 1 / ref["nsim"]))
        rows.append({"level": level, "pbkrtest quantile": f"{q:.3f}",
                     "vctest quantile": f"{np.quantile(ours, level):.3f}",
                     "vctest fraction below": f"{frac:.4f}",
                     "difference / SE": f"{(frac - level) / se:+.1f}"})
    title = (f"Bootstrap null against pbkrtest -- PBrefdist, {ref['nsim']} replicates each; "
             f"statistic {res.statistic:.4f} (lme4: {ref['statistic']:.4f}); failed refits: "
             f"vctest {res.n_failed}.")
    return title, rows, "qq_pbkrtest.png"


def section_closed_forms() -> tuple[str, list[dict]]:
    from scipy.stats import f as fdist

    rows = []
    for k, j in [(5, 4), (6, 5), (10, 5), (50, 2)]:
        mu = [float(j)] * (k - 1) + [0.0]
        draws = vctest.rlrt_null(mu, k * j, 1, nsim=200_000, seed=k * j)
        exact = fdist.cdf(1.0, k - 1, k * j - k)
        se = math.sqrt(exact * (1 - exact) / 200_000)
        p0 = float(np.mean(draws == 0))
        rows.append({"K x J": f"{k} x {j}", "P(RLRT=0) exact": f"{exact:.4f}",
                     "vctest": f"{p0:.4f}", "difference / SE": f"{(p0 - exact) / se:+.1f}"})
    return "Closed forms -- balanced one-way layout: P(RLRT = 0) = P(F(K-1, n-K) <= 1).", rows


def section_power(n_data: int, figdir: Path) -> tuple[str, list[dict], list[str]]:
    import matplotlib.pyplot as plt

    rows, figs = [], []
    methods = ("exact", "bootstrap", "asymptotic", "naive")
    for i, d in enumerate(_designs()):
        pw = vctest.power(d["formula"], d["data"], term=d["term"], effect_sizes=d["effects"],
                          nsim=n_data, methods=methods, nsim_exact=10_000, nsim_bootstrap=99,
                          seed=100 + i)
        for _, r in pw.table.iterrows():
            rows.append({"design": d["id"], "effect": r.effect_size, "method": r.method,
                         "rate": f"{r.rate:.3f}", "95% interval":
                         f"{r.ci_low:.3f}-{r.ci_high:.3f}"})
        ax = pw.plot()
        ax.set_title(d["id"], fontsize="small")
        name = f"power_{i}.png"
        ax.figure.savefig(figdir / name, dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
        figs.append(name)
    title = (f"Size (effect 0) and power -- at alpha = 0.05, {n_data} data sets per cell "
             "(exact: 10^4 draws; bootstrap: 99 replicates; asymptotic: 50:50 mixture).")
    return title, rows, figs


def section_timings() -> tuple[str, list[dict]]:
    def clock(fn, repeat=3):
        fn()
        return min(_timed(fn) for _ in range(repeat))

    def _timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    sleep = vctest.datasets.load("sleepstudy")
    fit = vctest.fit("Reaction ~ Days + (Days | Subject)", sleep)
    y = fit.model.design.y
    rows = [
        {"operation": "fit sleepstudy (Days | Subject), REML",
         "seconds": clock(lambda: vctest.fit("Reaction ~ Days + (Days | Subject)", sleep))},
        {"operation": "refit on a new response (workspace reused)",
         "seconds": clock(lambda: fit.refit(y + 1.0))},
        {"operation": "10^6 exact RLRT draws, sleepstudy slope design",
         "seconds": clock(lambda: vctest.rlrt_null([285.0] * 17 + [0.0], 180, 2,
                                                   nsim=1_000_000, seed=1))},
        {"operation": "bootstrap, 1,000 replicates, (Days|Subject) vs (1|Subject)",
         "seconds": clock(lambda: vctest.compare(
             "Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)", sleep,
             nsim=1000, seed=1, progress=False), repeat=1)},
        {"operation": "GLMM bootstrap, 1,000 replicates, cbpp (1 | herd) vs the GLM",
         "seconds": clock(lambda: vctest.vc_test(
             "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
             term="(1 | herd)", family="binomial", nsim=1000, seed=1, progress=False),
             repeat=1)},
    ]
    for r in rows:
        r["seconds"] = f"{r['seconds']:.4f}"
    return f"Timings on this machine ({platform.processor() or platform.machine()})", rows


def _md_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _rst_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = [".. list-table::", "   :header-rows: 1", ""]
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    for row in [dict(zip(cols, cols, strict=True)), *rows]:
        out.append("   * - " + cell(row[cols[0]]))
        out += [f"     - {cell(row[c])}" for c in cols[1:]]
    return "\n".join(out)


def _split_title(title: str) -> tuple[str, str]:
    """A section's short heading and its first paragraph (written "heading -- paragraph").

    >>> _split_title("Closed forms -- balanced one-way layout.")
    ('Closed forms', 'Balanced one-way layout.')
    >>> _split_title("Timings")
    ('Timings', '')
    """
    heading, _, about = title.partition(" -- ")
    return heading, about[:1].upper() + about[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small subset (CI)")
    ap.add_argument("--out", default=str(HERE), help="output directory")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    out = Path(args.out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sections = [section_lme4(), section_glmm(), section_rlrsim(figdir),
                section_pbkrtest(figdir), section_closed_forms(), section_glmm_size(),
                section_power(40 if args.quick else 400, figdir), section_timings()]
    md = ["# vctest validation report", "",
          f"Generated by `python validation/make_report.py{' --quick' if args.quick else ''}` "
          f"in {time.perf_counter() - t0:.0f} s. Versions: "
          + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".", ""]
    rst = ["Validation report", "=================", "",
           "Generated by ``python validation/make_report.py`` (stored in "
           "``validation/report.md``).", ""]
    for sec in sections:
        heading, about = _split_title(sec[0])
        rows = sec[1]
        md += [f"## {heading}", ""] + ([about, ""] if about else []) + [_md_table(rows), ""]
        rst += [heading, "-" * len(heading), ""] + ([about, ""] if about else [])
        rst += [_rst_table(rows), ""]
        figs = sec[2] if len(sec) > 2 else []
        for fig in [figs] if isinstance(figs, str) else figs:
            md += [f"![{fig}](figures/{fig})", ""]
            rst += [f".. image:: ../validation/figures/{fig}", "   :width: 600", ""]
    (out / "report.md").write_text("\n".join(md))
    if not args.quick and out.resolve() == HERE.resolve():
        (HERE.parent / "docs" / "validation.rst").write_text("\n".join(rst))
    print(f"written {out / 'report.md'} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
