"""Result provenance: JSON round trip, methods paragraph, plot, CLI options."""

import json

import numpy as np
import pytest

import vctest
from vctest.cli import main

SLEEP_FULL = "Reaction ~ Days + (Days | Subject)"
SLEEP_NULL = "Reaction ~ Days + (1 | Subject)"


@pytest.fixture(scope="module")
def exact():
    return vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                          nsim=20_000, seed=3)


@pytest.fixture(scope="module")
def boot():
    return vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", nsim=300, seed=4)


@pytest.mark.parametrize("which", ["exact", "boot"])
def test_json_round_trip_is_exact(which, request, tmp_path):
    res = request.getfixturevalue(which)
    path = res.to_json(tmp_path / "r.json")
    back = vctest.load_result(path)
    assert back.to_dict() == res.to_dict()
    assert np.array_equal(back.null_distribution, res.null_distribution)
    assert back.null_distribution.dtype == res.null_distribution.dtype
    if res.replicates is not None:
        for f in ("objective", "theta_full", "status", "failure", "full_singular"):
            assert np.array_equal(getattr(back.replicates, f), getattr(res.replicates, f))
    assert back.summary() == res.summary()
    assert back.fits["full"]["loglik"] == pytest.approx(res.fits["full"].loglik, abs=0)
    with pytest.raises(ValueError, match="confint"):
        back.confint()


def test_provenance_is_recorded(exact):
    d = exact.to_dict()
    assert {"vctest", "numpy", "numba", "python", "scipy"} <= set(d["versions"])
    assert d["seed"] == 3 and d["seed_entropy"] == 3
    for key in ("formula", "null_formula", "n", "data_hash", "nsim", "reml"):
        assert key in d["settings"]
    assert len(d["settings"]["data_hash"]) == 64
    assert d["settings"]["data_shape"] == [30, 2]


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"statistic": 1}))
    with pytest.raises(ValueError, match="not a vctest result"):
        vctest.load_result(p)
    p.write_text("not json")
    with pytest.raises(ValueError, match="not a JSON"):
        vctest.load_result(p)


def test_methods_text_names_method_nsim_seed_versions_and_citations(exact, boot):
    text = exact.methods_text()
    assert "Crainiceanu & Ruppert, 2004" in text and "20,000 draws" in text
    assert ", seed 3." in text and exact.versions["vctest"] in text
    assert "References" in text and "Greven" not in text
    text = boot.methods_text()
    assert "parametric bootstrap" in text and "300" in text and "pbkrtest" in text


def _cited_and_listed(text):
    from vctest.report.methods import CITATIONS, CITED_AS

    body, refs = text.split("\n\nReferences\n")
    listed = {k for k, ref in CITATIONS.items() if ref in refs}
    cited = {k for k, cite in CITED_AS.items() if cite in body}
    return cited, listed, len(refs.splitlines())


@pytest.mark.parametrize("method", ["exact", "bootstrap", "asymptotic"])
def test_methods_text_cites_every_reference_it_lists(method):
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         method=method, nsim=200, seed=1)
    cited, listed, n_refs = _cited_and_listed(res.methods_text())
    assert cited == listed and n_refs == len(listed)
    assert "bates2015" in cited
    assert {"exact": "cr2004", "bootstrap": "hh2014", "asymptotic": "sl1987"}[method] in cited


def test_methods_text_states_early_stopping_and_its_rule():
    res = vctest.vc_test(SLEEP_FULL, "sleepstudy", term="(0 + Days | Subject)",
                         method="bootstrap", nsim=2000, seed=1, stop_alpha=0.05)
    assert res.settings["stopped_early"] and res.nsim < 2000
    text = res.methods_text()
    assert f"it stopped after {res.settings['n_run']:,} replicates" in text
    assert "Clopper-Pearson" in text and "alpha = 0.05" in text and "at most 2,000" in text
    plain = vctest.vc_test(SLEEP_FULL, "sleepstudy", term="(0 + Days | Subject)",
                           method="bootstrap", nsim=50, seed=1)
    assert "sequentially" not in plain.methods_text()


def test_methods_text_without_a_seed_gives_the_entropy():
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=200)
    assert res.seed is None
    text = res.methods_text()
    assert f"recorded entropy {res.seed_entropy}, passed as the seed, repeats" in text
    again = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                           nsim=200, seed=res.seed_entropy)
    assert np.array_equal(again.null_distribution, res.null_distribution)


def test_citation_file_is_valid_cff():
    from pathlib import Path

    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((Path(__file__).parents[1] / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"].startswith("vctest")
    assert cff["authors"] and cff["message"]
    titles = " ".join(r["title"] for r in cff["references"])
    assert "Likelihood ratio tests in linear mixed models" in titles
    assert "Restricted likelihood ratio testing" in titles


def test_plot(exact):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = exact.plot()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("P(T = 0)" in t for t in labels)
    assert any("observed" in t for t in labels)
    assert any("chi2(0)" in t for t in labels)
    matplotlib.pyplot.close(ax.figure)


def test_cli_methods_save_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "res.json", tmp_path / "res.png"
    assert main(["test", "Dyestuff", "Yield ~ 1 + (1 | Batch)", "--term", "(1 | Batch)",
                 "--nsim", "5000", "--seed", "1", "--methods", "--save", str(out),
                 "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "Methods" in text and "Crainiceanu" in text
    assert vctest.load_result(out).seed == 1
    assert png.stat().st_size > 1000
