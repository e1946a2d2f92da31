"""Type-I error of the GLMM bootstrap test: the stored size study and a small live one."""

import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vctest

STORED = Path(__file__).parents[1] / "validation/size/size_glmm.json"
SCRIPT = STORED.with_name("size_glmm.py")


def _study_script():
    spec = importlib.util.spec_from_file_location("size_glmm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_stored_size_study_is_within_monte_carlo_error(family):
    study = json.loads(STORED.read_text())
    boot = study[family]["bootstrap"]
    assert boot["n"] >= 1000 and study["nsim"] >= 19
    se = math.sqrt(0.05 * 0.95 / boot["n"])
    assert abs(boot["rejection_rate"] - 0.05) < 4 * se
    se10 = math.sqrt(0.10 * 0.90 / boot["n"])
    assert abs(boot["rejection_rate_0.10"] - 0.10) < 4 * se10
    assert boot["failed_refits"] <= 0.01 * boot["replicates"]


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_stored_rates_are_those_of_the_stored_pvalues(family):
    study = json.loads(STORED.read_text())
    per = study["per_dataset"][family]
    p = np.asarray(per["pvalue"])
    assert p.size == len(per["statistic"]) == study["datasets"]
    boot = study[family]["bootstrap"]
    assert boot["rejection_rate"] == np.mean(p <= study["alpha"])
    assert boot["rejection_rate_0.10"] == np.mean(p <= 0.10)
    # B = 39: every p-value is (1 + k)/40
    k = p * (1 + study["nsim"]) - 1
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_the_first_data_sets_of_the_stored_study_recompute(family):
    """The study script, rerun on its first data sets, gives the stored numbers."""
    study = json.loads(STORED.read_text())
    script = _study_script()
    n = 16
    seeds = script.dataset_seeds(study["seed"], family, study["datasets"])[:n]
    per = study["per_dataset"][family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = [script.one_dataset(family, ss, i, study["nsim"]) for i, ss in enumerate(seeds)]
    stats = np.array([r.statistic for r in results])
    assert np.count_nonzero(stats > 0) >= 2  # not only boundary fits
    np.testing.assert_allclose(stats, per["statistic"][:n], rtol=1e-6, atol=1e-8)
    assert [r.pvalue for r in results] == per["pvalue"][:n]


@pytest.mark.slow
def test_live_size_of_the_poisson_bootstrap():
    # 300 H0 data sets (20 groups of 10), B = 19: a valid Monte Carlo test rejects at
    # 0.10 with probability 2/20 exactly when the statistic is continuous; its ties at 0
    # only make it conservative.  Tolerance: 4 binomial standard errors.
    root = np.random.SeedSequence(2026)
    g = np.repeat(np.arange(20), 10).astype(str)
    rejections = 0
    n_data = 300
    for i, ss in enumerate(root.spawn(n_data)):
        rng = np.random.default_rng(ss)
        x = rng.normal(size=g.size)
        data = pd.DataFrame({"y": rng.poisson(np.exp(1.0 + 0.5 * x)), "x": x, "g": g})
        res = vctest.vc_test("y ~ x + (1 | g)", data, term="(1 | g)", family="poisson",
                             nsim=19, seed=i)
        rejections += res.pvalue <= 0.10
    rate = rejections / n_data
    assert abs(rate - 0.10) < 4 * math.sqrt(0.10 * 0.90 / n_data), rate
