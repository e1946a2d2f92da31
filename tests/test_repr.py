"""What a user sees at a prompt and in a notebook: short reprs, HTML views, pickling, seeds."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest._tables import MAX_REPR_LINES

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def lmm():
    return vctest.fit(SLEEP, "sleepstudy")


@pytest.fixture(scope="module")
def glmm():
    return vctest.fit(CBPP, "cbpp", family="binomial")


@pytest.fixture(scope="module")
def exact():
    return vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                          nsim=100_000, seed=1)


@pytest.fixture(scope="module")
def boot():
    return vctest.compare(SLEEP, "Reaction ~ Days + (1 | Subject)", "sleepstudy", nsim=40,
                          seed=2)


@pytest.fixture(scope="module")
def glmm_boot():
    return vctest.vc_test(CBPP, "cbpp", term="(1 | herd)", family="binomial", nsim=20, seed=1)


def _check_text(text: str, *must: str) -> None:
    lines = text.splitlines()
    assert 3 <= len(lines) <= MAX_REPR_LINES, len(lines)
    assert "array(" not in text and "ndarray" not in text
    for m in must:
        assert m in text, (m, text)


def test_fit_repr_is_an_lme4_like_summary(lmm):
    text = repr(lmm)
    _check_text(text, "Formula: " + SLEEP, "REML criterion at convergence: 1743.6283",
                "Random effects:", "Fixed effects:", "Number of obs: 180, groups: Subject, 18",
                "Converged.")
    assert text == lmm.summary()  # short enough to print whole


def test_fit_repr_clips_long_tables():
    rng = np.random.default_rng(5)
    n_levels, per = 40, 6
    frame = pd.DataFrame({"f": np.repeat([f"L{i:02d}" for i in range(n_levels)], per),
                          "g": np.tile(np.arange(per), n_levels).astype(str)})
    frame["y"] = rng.normal(size=len(frame)) + rng.normal(size=per)[frame.g.astype(int)]
    fit = vctest.fit("y ~ f + (1 | g)", frame)
    assert len(fit.summary().splitlines()) > 50   # the whole table is in summary()
    text = repr(fit)
    _check_text(text, "more rows: see fit.coef_table()", "Converged")


def test_result_repr_with_1e5_draws(exact):
    assert exact.null_distribution.size == 100_000
    text = repr(exact)
    _check_text(text, "RLRT of (1 | Batch) (exact null): is its variance zero?", "p-value",
                "seed = 1")


def test_compare_summary_asks_the_right_question(boot):
    head = boot.summary().splitlines()[0]
    assert head == "LRT (parametric bootstrap): is the null model enough?"
    assert "variance zero" not in boot.summary()
    assert boot.test == "LRT" and boot.method == "bootstrap"


def test_result_test_is_the_statistic_name(exact, glmm_boot):
    assert exact.test == "RLRT"
    assert glmm_boot.test == "LRT"
    assert glmm_boot.summary().startswith("LRT of (1 | herd) (parametric bootstrap, Laplace)")


def _public_objects(lmm, glmm, exact, boot, glmm_boot, tmp_path):
    from vctest.api.warming import WarmupReport

    loaded = vctest.load_result(exact.to_json(tmp_path / "r.json"))
    power = vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         effect_sizes=[0.0, 1.0], nsim=4, methods=("exact",),
                         nsim_exact=500, seed=1)
    return {
        "LmmFit": lmm, "GlmmFit": glmm, "GlmFit": glmm_boot.fits["null"],
        "FitDiagnostics": lmm.diagnostics, "ConvergenceReport": vctest.check(lmm),
        "TestResult (exact)": exact, "TestResult (bootstrap)": boot,
        "TestResult (loaded)": loaded, "ConfidenceInterval": exact.confint(nsim=2000),
        "PowerResult": power,
        "WarmupReport": WarmupReport(stages=(("fit", 1.0),), cache_dir="/tmp/x"),
    }


def test_every_public_class_has_short_repr_and_html(lmm, glmm, exact, boot, glmm_boot,
                                                     tmp_path):
    objects = _public_objects(lmm, glmm, exact, boot, glmm_boot, tmp_path)
    for name, obj in objects.items():
        text = repr(obj)
        assert len(text.splitlines()) <= MAX_REPR_LINES, name
        assert "array(" not in text, name
        page = obj._repr_html_()
        assert isinstance(page, str) and page.startswith("<div>"), name
        assert page.count("<div>") == page.count("</div>"), name
        assert "array(" not in page, name
    assert "Random effects" in objects["GlmmFit"]._repr_html_()
    assert "binomial" in objects["GlmFit"]._repr_html_()
    assert "intraclass correlation" in objects["ConfidenceInterval"]._repr_html_()
    assert "Power at alpha = 0.05" in objects["PowerResult"]._repr_html_()


def test_statsmodels_fit_repr_and_html():
    smf = pytest.importorskip("statsmodels.formula.api")
    data = vctest.datasets.load("sleepstudy")
    result = smf.mixedlm("Reaction ~ Days", data, groups="Subject").fit(reml=True)
    res = vctest.from_statsmodels(result)
    text = repr(res)
    _check_text(text, "From statsmodels", "Fixed effects:")
    assert "From statsmodels" in res._repr_html_()


def test_results_pickle(exact, boot, glmm_boot, lmm, glmm):
    for obj in (exact, boot, glmm_boot, lmm, glmm):
        back = pickle.loads(pickle.dumps(obj))
        assert repr(back) == repr(obj)
    back = pickle.loads(pickle.dumps(exact))
    assert np.array_equal(back.null_distribution, exact.null_distribution)
    assert back.confint(nsim=2000) == exact.confint(nsim=2000)


def test_confint_after_load_result_asks_for_the_data(exact, boot, tmp_path):
    back = vctest.load_result(exact.to_json(tmp_path / "e.json"))
    with pytest.raises(ValueError, match="read by load_result") as err:
        back.confint()
    assert "confint(data=...)" in str(err.value)
    with pytest.raises(ValueError, match="comparison of two models"):
        boot.confint()


@pytest.mark.parametrize("make", [
    lambda s: np.random.default_rng(s),
    lambda s: np.random.SeedSequence(s),
])
def test_seed_takes_a_generator_or_seed_sequence(make):
    args = ("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    a = vctest.vc_test(*args, term="(1 | Batch)", nsim=2000, seed=make(11))
    b = vctest.vc_test(*args, term="(1 | Batch)", nsim=2000, seed=make(11))
    assert np.array_equal(a.null_distribution, b.null_distribution)
    assert a.seed is None and a.seed_entropy is not None
    # the recorded entropy repeats the call
    c = vctest.vc_test(*args, term="(1 | Batch)", nsim=2000, seed=a.seed_entropy)
    assert np.array_equal(a.null_distribution, c.null_distribution)


def test_one_generator_advances():
    rng = np.random.default_rng(3)
    first = vctest.rlrt_null([5.0] * 5 + [0.0], 30, 1, nsim=500, seed=rng)
    second = vctest.rlrt_null([5.0] * 5 + [0.0], 30, 1, nsim=500, seed=rng)
    assert not np.array_equal(first, second)


def test_seed_of_another_type_is_refused():
    with pytest.raises(TypeError, match="Generator"):
        vctest.rlrt_null([1.0, 0.0], 10, 1, nsim=10, seed=1.5)
