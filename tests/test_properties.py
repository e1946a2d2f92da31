"""Property-based and invariance tests over random designs (hypothesis).

Every call must return a valid result or raise a clear ValueError: never an
unhandled exception, a NaN p-value, a negative statistic or a hang.  Fits must
agree with the dense NumPy reference of the likelihood.

A refusal is a pass only where lme4 refuses too: a term with as many random
effects as observations (the variance components are not identifiable).  Every
other design must fit, and each test requires a minimum share of its examples
to have fitted, so a library that refused everything could not pass.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vctest

from .dense_reference import dense_objective

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Share of a test's examples that must fit.  The strategy draws groups of 1-8 rows and
#: favours small examples; its share of identifiable designs was 0.72-1.0 (mean 0.91)
#: over 300 runs of 25 examples for the slope test, 0.84-1.0 for an intercept.
MIN_FIT_SHARE = 0.6


def _frame(sizes, seed, x_scale=1.0, y_scale=1.0, sd_group=0.3, collinear=False):
    """Grouped data: group i has ``sizes[i]`` rows; y = 1 + 0.5 x + group effect + noise."""
    rng = np.random.default_rng(seed)
    n_groups = len(sizes)
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.size
    x = rng.normal(size=n) * x_scale
    y = (1.0 + 0.5 * x / x_scale + sd_group * rng.normal(size=n_groups)[g]
         + rng.normal(size=n)) * y_scale
    frame = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i}" for i in g])})
    if collinear:
        frame["x2"] = 2.0 * frame["x"]  # collinear with x
    return frame


@st.composite
def designs(draw):
    """Unbalanced grouped data with optional badly scaled or collinear covariates."""
    n_groups = draw(st.integers(2, 60))
    sizes = draw(st.lists(st.integers(1, 8), min_size=n_groups, max_size=n_groups))
    seed = draw(st.integers(0, 2**32 - 1))
    x_scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    y_scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))
    sd_group = draw(st.sampled_from([0.0, 0.3, 2.0]))
    return _frame(sizes, seed, x_scale, y_scale, sd_group, draw(st.booleans()))


#: Designs with few rows per group, run by every test on top of hypothesis's examples:
#: 13 groups of 2 rows (an intercept per group: 13 < 26 effects, identifiable; a
#: correlated slope: 26, refused) and 10 groups of 3 (a correlated slope: 20 < 30).
SMALL_GROUPS = (_frame([2] * 13, seed=1), _frame([3] * 10, seed=2))


#: Random effects per group of each term (``||`` splits into blocks of one column).
EFFECTS_PER_GROUP = {"(1 | g)": 1, "(x | g)": 2, "(1 + x || g)": 1, "(0 + x | g)": 1}


def _identifiable(frame, term):
    """lme4's rule: each block has fewer random effects than observations."""
    return EFFECTS_PER_GROUP[term] * frame["g"].nunique() < len(frame)


def _fits_or_is_refused_as_lme4_would(call, frame, term):
    """Run ``call()``; return its result, or None for a refusal lme4 also makes."""
    try:
        result = call()
    except ValueError as exc:
        assert not _identifiable(frame, term), f"an identifiable design was refused: {exc}"
        # lme4's refusals: more random effects than observations, or as many fixed-effect
        # columns as observations (whichever the design hits first)
        assert ("not identifiable" in str(exc)
                or "more observations than fixed-effect columns" in str(exc)), str(exc)
        return None
    assert _identifiable(frame, term), "a design lme4 refuses was fitted"
    return result


def _run(check, *strategies, examples=()):
    """Run ``check`` over ``examples`` and hypothesis's examples of ``strategies``.

    Asserts that at least :data:`MIN_FIT_SHARE` of them fitted.
    """
    fitted = []

    def run(args):
        fitted.append(check(*args))

    for args in examples:
        run = example(args)(run)
    SETTINGS(given(st.tuples(*strategies))(run))()
    share = np.mean(fitted)
    assert share >= MIN_FIT_SHARE, f"only {sum(fitted)} of {len(fitted)} examples fitted"


def _valid(res):
    assert np.isfinite(res.statistic) and res.statistic >= 0
    assert np.isfinite(res.pvalue) and 0 < res.pvalue <= 1
    if res.null_distribution is not None:
        assert np.all(res.null_distribution >= 0)


def test_exact_test_is_valid_or_a_clear_error():
    def check(frame):
        res = _fits_or_is_refused_as_lme4_would(
            lambda: vctest.vc_test("y ~ x + (1 | g)", frame, term="(1 | g)", nsim=500, seed=1),
            frame, "(1 | g)")
        if res is None:
            return False
        _valid(res)
        fit = res.fits["full"]
        assert np.isfinite(fit.objective) and np.isfinite(fit.sigma) and fit.sigma > 0
        # the fit is a minimum: the dense reference agrees with the engine's objective there
        ref = dense_objective(fit.model, fit.theta, True)
        assert fit.objective == pytest.approx(ref, rel=1e-8, abs=1e-8)
        return True

    _run(check, designs(), examples=[(f,) for f in SMALL_GROUPS])


def test_bootstrap_is_valid_or_a_clear_error():
    def check(frame):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            res = _fits_or_is_refused_as_lme4_would(
                lambda: vctest.compare("y ~ x + (1 | g)", "y ~ x", frame, nsim=30, seed=2),
                frame, "(1 | g)")
        if res is None:
            return False
        _valid(res)
        assert res.n_failed <= 30
        return True

    _run(check, designs(), examples=[(f,) for f in SMALL_GROUPS])


def test_slopes_fit_or_fail_clearly():
    def check(frame, re):
        fit = _fits_or_is_refused_as_lme4_would(
            lambda: vctest.fit(f"y ~ x + {re}", frame), frame, re)
        if fit is None:
            return False
        assert np.isfinite(fit.objective)
        assert np.all(fit.theta >= fit.model.layout.lower)
        ref = dense_objective(fit.model, fit.theta, True)
        assert fit.objective == pytest.approx(ref, rel=1e-8, abs=1e-8)
        assert isinstance(fit.converged, bool)
        return True

    terms = ["(x | g)", "(1 + x || g)", "(0 + x | g)"]
    _run(check, designs(), st.sampled_from(terms),
         examples=[(f, t) for f in SMALL_GROUPS for t in terms])


# ----------------------------------------------------------------------------- invariances

SLEEP = vctest.datasets.load("sleepstudy")
TERM = "(0 + Days | Subject)"
FORMULA = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"


@pytest.fixture(scope="module")
def base():
    return vctest.vc_test(FORMULA, SLEEP, term=TERM, nsim=20_000, seed=3)


def _same(res, base, rtol=1e-6):
    assert res.statistic == pytest.approx(base.statistic, rel=rtol, abs=1e-7)
    assert res.pvalue == pytest.approx(base.pvalue, rel=rtol)


@pytest.mark.parametrize(("a", "b"), [(1.0, 1000.0), (0.001, -5.0), (1e4, 0.0)])
def test_shifting_and_scaling_the_response(base, a, b):
    data = SLEEP.assign(Reaction=a * SLEEP.Reaction + b)
    _same(vctest.vc_test(FORMULA, data, term=TERM, nsim=20_000, seed=3), base)


def test_reordering_rows(base):
    data = SLEEP.sample(frac=1.0, random_state=1).reset_index(drop=True)
    _same(vctest.vc_test(FORMULA, data, term=TERM, nsim=20_000, seed=3), base)


def test_relabelling_groups(base):
    data = SLEEP.copy()
    data["Subject"] = data["Subject"].cat.rename_categories(
        {c: f"id-{i}" for i, c in enumerate(reversed(data["Subject"].cat.categories))})
    _same(vctest.vc_test(FORMULA, data, term=TERM, nsim=20_000, seed=3), base)


def test_rescaling_a_covariate(base):
    formula = "Reaction ~ Hours + (1 | Subject) + (0 + Hours | Subject)"
    data = SLEEP.assign(Hours=24.0 * SLEEP.Days)
    res = vctest.vc_test(formula, data, term="(0 + Hours | Subject)", nsim=20_000, seed=3)
    # theta of the slope scales by 1/24; the test does not change
    _same(res, base, rtol=1e-5)


def test_bootstrap_invariant_to_response_scale():
    a = vctest.compare("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)",
                       SLEEP, nsim=100, seed=4)
    b = vctest.compare("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)",
                       SLEEP.assign(Reaction=SLEEP.Reaction / 1000 + 3), nsim=100, seed=4)
    assert b.statistic == pytest.approx(a.statistic, rel=1e-6)
    np.testing.assert_allclose(b.null_distribution, a.null_distribution, rtol=1e-4, atol=1e-6)
