"""The frozen record of a variance-component test.

A :class:`TestResult` carries its own story: the statistic, the p-value with
its Monte Carlo error, the null sample it came from, the method and every
setting, the seed and its entropy, failures, the two fits and the versions of
the software that made it.  Core code never prints; ``summary()`` and
``to_dict()`` are how a result speaks.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vctest._text import wrap_lines

QUANTILE_LEVELS = (0.5, 0.9, 0.95, 0.99)


def versions() -> dict[str, str]:
    """Versions of vctest and the libraries that determine its numbers."""
    import numba
    import pandas
    import scipy

    from vctest._version import __version__

    return {
        "vctest": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "pandas": pandas.__version__,
    }


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True, eq=False)
class TestResult:
    """Result of a test that a variance component is zero (or equals lambda0).

    Attributes
    ----------
    statistic : float
        The observed (restricted) likelihood-ratio statistic, >= 0.
    pvalue : float
        p-value from the reference distribution named by ``method``.
    pvalue_mc_se : float or None
        Monte Carlo standard error of a simulated p-value (None if exact or
        asymptotic in closed form).
    pvalue_ci : tuple of float or None
        95% interval for the simulated p-value.
    method : str
        ``"exact"``, ``"asymptotic"`` or ``"bootstrap"``.
    test : str
        The statistic: ``"RLRT"`` (REML fits) or ``"LRT"`` (ML fits; for a
        GLMM, the Laplace approximation).  ``method`` says how it was referred.
    term : str
        The tested random-effects term, in canonical lme4 syntax.
    reference : str
        One sentence naming the reference distribution and its source.
    null_distribution : ndarray or None
        The simulated null sample (None for asymptotic references).
    asymptotic : dict
        Asymptotic p-values for comparison (e.g. the 50:50 chi-bar-square).
    settings : dict
        Every setting of the call (formula, null formula, nsim, reml, ...).
    seed : int or None
        The seed given by the user (None when none was given, or when it was a
        SeedSequence or a Generator: then ``seed_entropy`` repeats the call).
    seed_entropy : int or list of int or None
        Entropy of the SeedSequence actually used (re-run with it to repeat a
        call made with ``seed=None``).
    n_failed : int
        Replicates that failed (always 0 for exact draws).
    pvalue_bound : float or None
        Bootstrap only: the p-value if every failed replicate had exceeded
        the observed statistic (a sensitivity bound).
    failures : dict
        Bootstrap only: failed replicates by kind.
    approximations : dict
        Bootstrap only: p-values of the moment-matched gamma and the
        Bartlett-scaled chi-square (as pbkrtest's PBmodcomp).
    null_summary : dict or None
        When the null sample was not kept (``keep_null=False``): its size,
        zeros, exceedances and quantiles from a log-histogram sketch
        (``vctest.nulls.sketch.NullSketch``).
    replicate_summary : dict
        Bootstrap only: refits at the boundary, refits that needed a second
        look by the diagnostics, and the p-value without the latter.
    replicates : object or None
        Bootstrap only: the per-replicate record
        (``vctest._replicates.ReplicateRecord``).
    fits : dict
        The fitted models (``"full"``, ``"null"``).
    versions : dict
        Versions of vctest, Python, NumPy, SciPy, Numba and pandas that made it.
    notes : tuple of str
        Caveats worth reading (approximations used, boundary fits, ...).
    """

    statistic: float
    pvalue: float
    pvalue_mc_se: float | None
    pvalue_ci: tuple[float, float] | None
    method: str
    test: str
    term: str
    reference: str
    null_distribution: np.ndarray | None
    asymptotic: dict[str, float]
    settings: dict[str, Any]
    seed: int | None
    seed_entropy: int | list[int] | None
    n_failed: int = 0
    pvalue_bound: float | None = None
    failures: dict[str, int] = field(default_factory=dict)
    approximations: dict[str, float] = field(default_factory=dict)
    replicates: Any = field(default=None, repr=False)
    replicate_summary: dict[str, Any] = field(default_factory=dict)
    null_summary: dict[str, Any] | None = None
    fits: dict[str, Any] = field(default_factory=dict, repr=False)
    versions: dict[str, str] = field(default_factory=versions)
    notes: tuple[str, ...] = ()
    _confint: Callable[..., Any] | None = field(default=None, init=False, repr=False,
                                                compare=False)

    @property
    def nsim(self) -> int | None:
        """Size of the simulated null sample."""
        if self.null_distribution is None:
            return None if self.null_summary is None else int(self.null_summary["n"])
        return int(self.null_distribution.size)

    @property
    def interrupted(self) -> bool:
        """Whether the simulation was stopped by Ctrl-C or SIGTERM (fewer draws than asked)."""
        return bool(self.settings.get("interrupted", False))

    @property
    def null_mass_at_zero(self) -> float | None:
        """Fraction of null draws that are exactly zero."""
        if self.null_distribution is None:
            if self.null_summary is None:
                return None
            return self.null_summary["n_zero"] / self.null_summary["n"]
        return float(np.mean(self.null_distribution == 0.0))

    def null_quantiles(self, levels: tuple[float, ...] = QUANTILE_LEVELS) -> dict[str, float]:
        """Quantiles of the null sample, keyed by level as a string ("0.95")."""
        if self.null_distribution is None:
            if self.null_summary is not None and levels == QUANTILE_LEVELS:
                return dict(self.null_summary["quantiles"])
            return {}
        qs = np.quantile(self.null_distribution, levels)
        return {f"{lv:g}": float(q) for lv, q in zip(levels, qs, strict=True)}

    def confint(self, level: float = 0.95, *, data: Any = None, **kwargs: Any) -> Any:
        """Exact confidence interval for the variance ratio by test inversion.

        Available for a model whose only random effect is the tested scalar
        term; see ``vctest.nulls.exact.invert_rlrt``.  A result read by
        :func:`vctest.load_result` keeps the fits' numbers but not the data the
        REML criterion needs: pass the data it was computed on as ``data``
        (checked against the stored hash) and the interval is the one the
        original result gives, to the last digit (same seed).

        Examples
        --------
        >>> import vctest
        >>> res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
        ...                      nsim=1000, seed=1)
        >>> ci = res.confint(level=0.95, nsim=20_000)
        >>> 0.1 < ci.lower < ci.estimate < ci.upper < 6   # exact: 0.144 to 4.84
        True
        """
        if data is not None:
            if not (self._loaded_exact() and self.settings.get("formula") is not None):
                raise ValueError("`data` is only for a result read by load_result() (an exact "
                                 "RLRT of a formula); this result has its model: call "
                                 "confint() without `data`.")
            if _REBUILD_CONFINT is None:
                raise ValueError("confint(data=...) needs vctest's API: read the file with "
                                 "vctest.load_result().")
            attach_confint(self, _REBUILD_CONFINT(self, data))
        if self._confint is None:
            raise ValueError(self._why_no_confint())
        return self._confint(level=level, **kwargs)

    def _loaded_exact(self) -> bool:
        """An exact RLRT of one term read by load_result() (its fits are records, not models)."""
        return (self.method == "exact" and self.test == "RLRT" and "Greven" not in self.reference
                and any(isinstance(f, dict) for f in self.fits.values()))

    def _why_no_confint(self) -> str:
        if self._loaded_exact():
            if self.settings.get("formula") is not None:
                return ("confint() needs the data: a result read by load_result() keeps the "
                        "fits' numbers but not the data the REML criterion is evaluated on; "
                        "pass the data frame the test was run on, result.confint(data=...) "
                        "(checked against settings['data_hash']).")
            return ("confint() needs the model, and a result of exact_rlrt() read by "
                    "load_result() keeps the fits' numbers but not y, X and Z: call "
                    "vctest.exact_rlrt(y, X, Z, seed=...) again, or save the result with "
                    "pickle, which keeps the model.")
        why = ("it is a comparison of two models" if self.is_comparison else
               f"its method is {self.method!r}, not 'exact'" if self.method != "exact" else
               "its fits are ML, not REML" if self.test != "RLRT" else
               "the model has other random effects besides the tested term")
        return ("confint() inverts the exact RLRT, so it needs an exact REML test of a model "
                f"whose only random-effects term is the tested scalar variance component; "
                f"this result cannot: {why}.")

    @property
    def is_comparison(self) -> bool:
        """True for a result of :func:`vctest.compare` (two nested models)."""
        return "  vs  " in self.term

    def __repr__(self) -> str:
        from vctest._tables import clip_lines

        return clip_lines(self.summary(), what="result.summary()")

    def to_frame(self) -> Any:
        """The p-values side by side as a DataFrame: this test's reference first,
        then the approximations and asymptotic references."""
        from vctest._tables import result_frame

        return result_frame(self)

    def _repr_html_(self) -> str:
        from vctest._tables import result_html

        return result_html(self)

    def to_json(self, path: str | None = None) -> Any:
        """Save the whole result (null sample included) as JSON, or return the text.

        :func:`vctest.load_result` reads it back exactly.  Returns the path
        written, or the JSON text when ``path`` is None.
        """
        from vctest.report.serialize import result_to_json, save_result

        return result_to_json(self) if path is None else save_result(self, path)

    def methods_text(self) -> str:
        """A paragraph for a paper's methods section, with references.

        Examples
        --------
        >>> import vctest
        >>> res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
        ...                      nsim=10_000, seed=1)
        >>> print(res.methods_text())  # doctest: +ELLIPSIS
        We tested whether the variance of the random effect (1 | Batch) was zero ...
        """
        from vctest.report.methods import methods_text

        return methods_text(self)

    def plot(self, ax: Any = None) -> Any:
        """Null distribution, mass at zero, observed statistic and asymptotic mixture.

        Needs matplotlib (``pip install 'vctest[plot]'``); returns the Axes.
        """
        from vctest.report.plot import plot_result

        return plot_result(self, ax)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (no NaN; the null sample is summarised, not listed)."""
        return {
            "statistic": float(self.statistic),
            "pvalue": float(self.pvalue),
            "pvalue_mc_se": _finite_or_none(self.pvalue_mc_se),
            "pvalue_ci": None if self.pvalue_ci is None else [float(v) for v in self.pvalue_ci],
            "method": self.method,
            "test": self.test,
            "term": self.term,
            "reference": self.reference,
            "nsim": self.nsim,
            "interrupted": self.interrupted,
            "seed": self.seed,
            "seed_entropy": self.seed_entropy,
            "null_mass_at_zero": _finite_or_none(self.null_mass_at_zero),
            "null_quantiles": self.null_quantiles(),
            "asymptotic": {k: float(v) for k, v in self.asymptotic.items()},
            "n_failed": int(self.n_failed),
            "pvalue_bound": _finite_or_none(self.pvalue_bound),
            "failures": dict(self.failures),
            "approximations": {k: _finite_or_none(v) for k, v in self.approximations.items()},
            "replicate_summary": dict(self.replicate_summary),
            "null_summary": self.null_summary,
            "settings": dict(self.settings),
            "notes": list(self.notes),
            "versions": dict(self.versions),
        }

    def summary(self) -> str:
        """A short plain-text report (lines of at most 100 characters)."""
        how = {"exact": "exact null", "bootstrap": "parametric bootstrap",
               "asymptotic": "asymptotic reference"}.get(self.method, self.method)
        if self.settings.get("family") in ("binomial", "poisson"):
            how += ", Laplace"
        question = ("is it constant?" if self.settings.get("test") == "constant" else
                    "is its variance zero?")
        head = (f"{self.test} ({how}): is the null model enough?" if self.is_comparison
                else f"{self.test} of {self.term} ({how}): {question}")
        lines = [
            head,
            *([f"  INTERRUPTED: {self.nsim} of {self.settings.get('nsim')} simulations "
               "finished; the p-value uses those."] if self.interrupted else []),
            f"  model:      {self.settings.get('formula')}",
            f"  null model: {self.settings.get('null_formula')}",
            f"  statistic = {self.statistic:.4f}",
        ]
        smallest = self.nsim is not None and self.pvalue * (1 + self.nsim) < 1.5
        if smallest:
            lines.append(f"  p-value   = {self.pvalue:.4g}  (the smallest possible with "
                         f"{self.nsim} draws: no null draw reached the statistic)")
        elif self.pvalue_mc_se is not None:
            lo, hi = self.pvalue_ci or (float("nan"), float("nan"))
            lines.append(f"  p-value   = {self.pvalue:.4g}  "
                         f"(Monte Carlo SE {self.pvalue_mc_se:.2g}; "
                         f"95% CI {lo:.4g} to {hi:.4g}; {self.nsim} draws)")
        else:
            lines.append(f"  p-value   = {self.pvalue:.4g}")
        lines.append(f"  reference: {self.reference}")
        if self.null_distribution is not None:
            q = self.null_quantiles()
            lines.append(f"  null: P(T = 0) = {self.null_mass_at_zero:.4f}; "
                         + ", ".join(f"q{k} = {v:.3f}" for k, v in q.items()))
        if self.method == "bootstrap":
            lines.append(f"  failed replicates: {self.n_failed}"
                         + (f" ({', '.join(f'{k}: {v}' for k, v in self.failures.items())}); "
                            f"p-value if all had exceeded: {self.pvalue_bound:.4g}"
                            if self.n_failed else ""))
        if self.replicate_summary:
            rs = self.replicate_summary
            lines.append(f"  refits at the boundary: full {rs['full_refits_at_boundary']}, "
                         f"null {rs['null_refits_at_boundary']}; second-look refits "
                         f"{rs['refits_rechecked']} (p without them: "
                         f"{rs['pvalue_without_rechecked']:.4g})")
        for name, p in self.approximations.items():
            lines.append(f"  {name}: p = {p:.4g}")
        for name, p in self.asymptotic.items():
            lines.append(f"  for comparison, {name.replace('_', ' ')}: p = {p:.4g}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.seed is not None:
            lines.append(f"  seed = {self.seed}")
        elif self.seed_entropy is not None:
            lines.append(f"  seed: none given; entropy {self.seed_entropy} (seed=<entropy> "
                         "repeats it)")
        return wrap_lines(lines)


_REBUILD_CONFINT: Callable[[TestResult, Any], Callable[..., Any]] | None = None


def set_confint_rebuilder(rebuild: Callable[[TestResult, Any], Callable[..., Any]]) -> None:
    """Install how ``confint(data=...)`` rebuilds a loaded result's model (the API does).

    ``rebuild(result, data)`` returns what :func:`attach_confint` takes.  Kept
    as a hook so that this module imports nothing above it.
    """
    global _REBUILD_CONFINT
    _REBUILD_CONFINT = rebuild


def attach_confint(result: TestResult, confint: Callable[..., Any] | None) -> TestResult:
    """``result``, able to invert its test with ``confint`` (set once, by the exact pipeline).

    Not a constructor argument, so that the class signature shows only the record.
    """
    object.__setattr__(result, "_confint", confint)
    return result


def load_result(path: Any) -> TestResult:
    """Load a result written by :meth:`TestResult.to_json`.

    Needs neither the model engine nor Numba (see
    ``vctest.report.serialize.read_result``).

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    TestResult
        With the fits as dictionaries and no ``confint``: inverting the exact
        RLRT needs the REML criterion at every candidate variance ratio, so
        the model's data, which the file does not hold (it keeps the fits'
        numbers and the data's hash).  ``confint()`` then says which
        ``vctest.vc_test`` call rebuilds the result; a result saved with
        ``pickle`` keeps the model and its ``confint()``.

    Raises
    ------
    ValueError
        If the file is not a vctest result, is from a newer format, or a field
        is missing, of the wrong type, out of range or inconsistent with the
        rest (a p-value its own null sample does not give, say); the message
        names the field.

    Examples
    --------
    >>> import tempfile, numpy as np, vctest
    >>> res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
    ...                      nsim=1000, seed=1)
    >>> path = res.to_json(tempfile.mkdtemp() + "/dyestuff.json")
    >>> back = vctest.load_result(path)
    >>> back.pvalue == res.pvalue, np.array_equal(back.null_distribution, res.null_distribution)
    (True, True)
    """
    from vctest.report.serialize import read_result

    return TestResult(**read_result(path))
