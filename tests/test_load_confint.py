"""confint() of a result read by load_result(), rebuilt from the data it was run on."""

import numpy as np
import pandas as pd
import pytest

import vctest

FORMULA, TERM = "Yield ~ 1 + (1 | Batch)", "(1 | Batch)"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    result = vctest.vc_test(FORMULA, "Dyestuff", term=TERM, nsim=5000, seed=7)
    path = result.to_json(tmp_path_factory.mktemp("loaded") / "r.json")
    return result, path


def test_the_interval_is_the_original_one_to_the_last_digit(saved):
    result, path = saved
    back = vctest.load_result(path)
    original = result.confint(level=0.9, nsim=4000)
    again = back.confint(level=0.9, nsim=4000, data="Dyestuff")
    assert (again.lower, again.estimate, again.upper) == (
        original.lower, original.estimate, original.upper)
    assert 0.0 < again.lower < again.upper
    # afterwards the loaded result has its model: no data needed
    assert back.confint(level=0.9, nsim=4000) == again


def test_a_seed_given_as_a_generator_is_repeated_from_its_entropy(tmp_path):
    result = vctest.vc_test(FORMULA, "Dyestuff", term=TERM, nsim=2000,
                            seed=np.random.default_rng(3))
    assert result.seed is None
    back = vctest.load_result(result.to_json(tmp_path / "g.json"))
    assert back.confint(nsim=2000, data="Dyestuff") == result.confint(nsim=2000)


def test_other_data_are_refused(saved):
    back = vctest.load_result(saved[1])
    data = vctest.datasets.load("Dyestuff")
    changed = data.assign(Yield=data["Yield"] + np.arange(len(data)) % 3)
    with pytest.raises(ValueError, match="not the data this result was computed on"):
        back.confint(data=changed)
    with pytest.raises(ValueError, match="not the data this result was computed on"):
        back.confint(data=data.iloc[:-5])


def test_a_test_run_with_other_arguments_is_refused(tmp_path):
    data = vctest.datasets.load("Dyestuff").assign(
        w=np.tile([1.0, 2.0, 0.5, 1.0, 1.5], 6))
    weighted = vctest.vc_test(FORMULA, data, term=TERM, nsim=2000, seed=1, weights="w")
    back = vctest.load_result(weighted.to_json(tmp_path / "w.json"))
    with pytest.raises(ValueError, match=r"other arguments|not the data"):
        back.confint(data=data)


def test_data_is_only_for_loaded_results(saved):
    with pytest.raises(ValueError, match="only for a result read by load_result"):
        saved[0].confint(data="Dyestuff")
    boot = vctest.vc_test(FORMULA, "Dyestuff", term=TERM, method="bootstrap", nsim=20, seed=1)
    with pytest.raises(ValueError, match="only for a result read by load_result"):
        boot.confint(data="Dyestuff")


def test_a_data_frame_works_like_the_data_set_name(saved):
    back = vctest.load_result(saved[1])
    frame = pd.DataFrame(vctest.datasets.load("Dyestuff"))
    assert back.confint(nsim=2000, data=frame) == saved[0].confint(nsim=2000)
