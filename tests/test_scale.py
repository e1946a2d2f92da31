"""Scale-out: chunked runs, a Dask LocalCluster, flat-memory null summaries."""

import numpy as np
import pytest

import vctest
from vctest.nulls.executor import chunk_ranges, run_chunks

SLEEP_FULL = "Reaction ~ Days + (Days | Subject)"
SLEEP_NULL = "Reaction ~ Days + (1 | Subject)"
DYE = ("Yield ~ 1 + (1 | Batch)", "Dyestuff")


def test_exact_null_identical_locally_threads_and_on_dask(client):
    kw = {"term": "(1 | Batch)", "nsim": 100_003, "seed": 11}
    one = vctest.vc_test(*DYE, threads=1, **kw)
    two = vctest.vc_test(*DYE, threads=2, **kw)
    dask = vctest.vc_test(*DYE, backend="dask", client=client, **kw)
    assert np.array_equal(one.null_distribution, two.null_distribution)
    assert np.array_equal(one.null_distribution, dask.null_distribution)
    assert one.pvalue == two.pvalue == dask.pvalue


def test_bootstrap_identical_locally_and_on_dask(client):
    kw = {"nsim": 500, "seed": 12}
    local = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", threads=1, **kw)
    dask = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", backend="dask", client=client,
                          **kw)
    np.testing.assert_array_equal(local.replicates.objective, dask.replicates.objective)
    np.testing.assert_array_equal(local.replicates.theta_full, dask.replicates.theta_full)
    assert local.pvalue == dask.pvalue and dask.settings["backend"] == "dask"


def test_glmm_bootstrap_identical_locally_and_on_dask(client):
    kw = {"term": "(1 | herd)", "family": "binomial", "nsim": 200, "seed": 13}
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    local = vctest.vc_test(formula, "cbpp", threads=2, **kw)
    dask = vctest.vc_test(formula, "cbpp", backend="dask", client=client, **kw)
    np.testing.assert_array_equal(local.replicates.objective, dask.replicates.objective)
    np.testing.assert_array_equal(local.replicates.theta_full, dask.replicates.theta_full)
    assert local.pvalue == dask.pvalue


def test_sequential_stopping_on_dask_matches_local(client):
    kw = {"nsim": 4000, "seed": 13, "stop_alpha": 0.05}
    local = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", **kw)
    dask = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", backend="dask", client=client,
                          **kw)
    assert local.settings["n_run"] == dask.settings["n_run"] < 4000
    np.testing.assert_array_equal(local.null_distribution, dask.null_distribution)


def test_null_summary_without_the_sample_matches_the_sample():
    kept = vctest.vc_test(*DYE, term="(1 | Batch)", nsim=300_000, seed=14)
    flat = vctest.vc_test(*DYE, term="(1 | Batch)", nsim=300_000, seed=14, keep_null=False)
    assert flat.null_distribution is None
    assert flat.pvalue == kept.pvalue and flat.pvalue_mc_se == kept.pvalue_mc_se
    assert flat.nsim == kept.nsim == 300_000
    assert flat.null_mass_at_zero == kept.null_mass_at_zero
    for level, q in kept.null_quantiles().items():
        assert flat.null_quantiles()[level] == pytest.approx(q, rel=2e-3, abs=1e-12)
    assert flat.to_dict()["null_quantiles"] == flat.null_quantiles()
    assert "null_summary" in flat.to_dict()


def test_chunking_is_invisible():
    from vctest._rng import seed_sequence
    from vctest.formula.design import build_design
    from vctest.nulls.exact import SpectralTask, simulate_null, spectral_design

    sd = spectral_design(build_design(DYE[0], vctest.datasets.load(DYE[1])), 0)
    task = SpectralTask(sd, True, seed_sequence(3))
    whole = task(0, 10_000)
    parts = {}
    run_chunks(task, chunk_ranges(0, 10_000, 777), lambda a, b, r: parts.update({a: r}))
    assert np.array_equal(whole, np.concatenate([parts[a] for a in sorted(parts)]))
    sample, _ = simulate_null(task, 10_000, 1.0, keep=True)
    assert np.array_equal(sample, whole)


def test_backend_errors():
    with pytest.raises(ValueError, match="`backend`"):
        vctest.vc_test(*DYE, term="(1 | Batch)", backend="spark")
    with pytest.raises(TypeError, match="`keep_null`"):
        vctest.vc_test(*DYE, term="(1 | Batch)", keep_null="no")


def test_power_runs_reproducibly_and_rises_with_the_effect():
    kw = {"term": "(1 | Batch)", "effect_sizes": [0.0, 2.0], "nsim": 40,
          "methods": ("exact", "asymptotic"), "nsim_exact": 2000, "seed": 5}
    a = vctest.power(*DYE, **kw)
    b = vctest.power(*DYE, **kw)
    assert a.table.equals(b.table)
    exact = a.table[a.table.method == "exact"].set_index("effect_size")
    assert exact.loc[2.0, "rate"] > exact.loc[0.0, "rate"]
    assert exact.loc[2.0, "rate"] > 0.8  # lambda = 4 with 6 batches of 5: power near 1
    assert (a.table.ci_low <= a.table.rate).all() and (a.table.rate <= a.table.ci_high).all()


@pytest.mark.slow
def test_power_at_zero_is_the_size():
    pw = vctest.power(*DYE, term="(1 | Batch)", effect_sizes=[0.0], nsim=600,
                      methods=("exact",), nsim_exact=2000, seed=6)
    from .test_spectral import se_prop

    assert abs(pw.table.rate.iloc[0] - 0.05) < 4 * se_prop(0.05, 600)


def test_power_on_dask_equals_local(client):
    kw = {"term": "(1 | Batch)", "effect_sizes": [1.0], "nsim": 16,
          "methods": ("exact", "bootstrap"), "nsim_exact": 1000, "nsim_bootstrap": 49,
          "seed": 7}
    assert vctest.power(*DYE, **kw).table.equals(
        vctest.power(*DYE, backend="dask", client=client, **kw).table)


def test_power_input_errors():
    with pytest.raises(ValueError, match="`effect_sizes`"):
        vctest.power(*DYE, term="(1 | Batch)", effect_sizes=[-1.0])
    with pytest.raises(ValueError, match="`methods`"):
        vctest.power(*DYE, term="(1 | Batch)", effect_sizes=[1.0], methods=("magic",))
    with pytest.raises(ValueError, match="single variance component"):
        vctest.power("Reaction ~ Days + (Days | Subject)", "sleepstudy",
                     term="(0 + Days | Subject)", effect_sizes=[1.0])


def test_power_plot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    pw = vctest.power(*DYE, term="(1 | Batch)", effect_sizes=[0.0, 1.0], nsim=8,
                      methods=("exact",), nsim_exact=500, seed=1)
    ax = pw.plot()
    assert ax.get_ylabel() == "rejection rate"
    matplotlib.pyplot.close(ax.figure)


def test_a_killed_worker_does_not_change_the_result(client):
    """Kill one Dask worker while chunks are running; the scheduler reruns them."""
    import contextlib
    import os
    import threading
    import time

    kw = {"nsim": 3000, "seed": 21}
    local = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", **kw)
    victim = sorted(client.scheduler_info()["workers"])[0]

    def kill_soon():
        time.sleep(0.3)
        with contextlib.suppress(Exception):  # the worker dies mid-call, as intended
            client.run(os._exit, 1, workers=[victim])

    killer = threading.Thread(target=kill_soon)
    killer.start()
    dask = vctest.compare(SLEEP_FULL, SLEEP_NULL, "sleepstudy", backend="dask", client=client,
                          **kw)
    killer.join()
    np.testing.assert_array_equal(local.replicates.objective, dask.replicates.objective)
    assert local.pvalue == dask.pvalue
    client.wait_for_workers(2, timeout=60)
