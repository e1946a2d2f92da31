"""``vc_test(term="s(x)", test="constant")``: is the smooth f constant?

"f is constant" sets two things to zero: the variance of the smooth's
penalised part (as "f is linear" does) and the coefficients of its penalty's
null space other than the constant (for the cr, tp and ps bases: the linear
part, the fixed column ``s(x)Fx1``).  A sum-to-zero-constrained smooth has
its constant in the model's intercept, so under H0 the smooth leaves the
model altogether.  REML cannot compare models with different fixed effects,
so this is the ML likelihood-ratio test:

* Gaussian: its exact finite-sample null with ``q`` restricted fixed effects
  (Crainiceanu & Ruppert 2004; Crainiceanu, Ruppert, Claeskens & Wand 2005),
  by :func:`vctest.api.exact_design.design_test` on the design's matrices --
  exact when the smooth is the model's only variance component, which is
  what is accepted here;
* binomial and Poisson: a parametric bootstrap from the fitted null GLM (or
  the 50:50 chi2(q):chi2(q + 1) mixture).

For a numeric ``by = z`` (the varying coefficient ``f(x) z``, not
constrained) "f is constant" is ``f(x) z = c z``: the null model keeps ``z``
and the restricted column is ``z x`` (the null space ``z, z x`` reparametrised).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vctest.api._pipeline import Draws
from vctest.api.exact_design import design_test
from vctest.api.smooth_test import _test_glmm, check_smooth_glmm, smooth_component
from vctest.formula.design import Design
from vctest.formula.smooth_design import find_smooth
from vctest.model.smooth_fit import fit_smooth
from vctest.results import TestResult

__all__ = ["SMOOTH_TESTS", "ConstantNull", "constant_null", "test_smooth_constant"]

#: The hypotheses ``vc_test(test=...)`` tests about a smooth term.
SMOOTH_TESTS = ("linear", "constant")


@dataclass(frozen=True, eq=False)
class ConstantNull:
    """The full and null fixed effects of "f is constant".

    Attributes
    ----------
    label : str
        The smooth's label, e.g. ``"s(x)"``.
    X : pandas.DataFrame
        The full model's fixed effects (the design's, with a numeric ``by``'s
        null space written as ``z, z:x``), named columns.
    restricted : tuple of str
        The columns of ``X`` that H0 sets to zero (the last ones).
    Z : ndarray
        The smooth's penalised part.
    null_formula : str
        The null model as a formula, e.g. ``"y ~ 1"``.
    """

    label: str
    X: pd.DataFrame
    restricted: tuple[str, ...]
    Z: np.ndarray
    null_formula: str

    def null_design(self, design: Design) -> Design:
        """``design`` without the smooth: X without the restricted columns (a GLM here)."""
        x0 = self.X.drop(columns=list(self.restricted))
        formula = dataclasses.replace(design.formula, text=self.null_formula, smooths=())
        return dataclasses.replace(design, formula=formula,
                                   X=np.ascontiguousarray(x0.to_numpy(dtype=float)),
                                   fixed_names=tuple(x0.columns), smooths=())


def _in_span(v: np.ndarray, x: np.ndarray) -> bool:
    if x.shape[1] == 0:
        return False
    coef = np.linalg.lstsq(x, v, rcond=None)[0]
    return bool(np.linalg.norm(x @ coef - v) <= 1e-8 * max(np.linalg.norm(v), 1e-300))


def constant_null(design: Design, term: str) -> ConstantNull:
    """What H0 "the smooth ``term`` is constant" removes from ``design``.

    Raises
    ------
    ValueError
        If ``term`` is not a smooth, the model has other variance components,
        or the constant is not in the null model (no intercept).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from vctest.formula import build_design
    >>> x = np.linspace(0, 1, 40)
    >>> d = pd.DataFrame({"x": x, "y": np.cos(3 * x)})
    >>> cn = constant_null(build_design("y ~ s(x, bs='cr')", d), "s(x)")
    >>> list(cn.X.columns), cn.restricted, cn.null_formula
    (['(Intercept)', 's(x)Fx1'], ('s(x)Fx1',), 'y ~ 1')
    """
    label = smooth_component(design, term)
    j = find_smooth(design.smooths, term)
    if j is None:
        raise ValueError(f"test='constant' applies to a smooth term such as 's(x)'; {label} is "
                         "a random-effects term: test it with the default test='linear'.")
    sm = design.smooths[j]
    others = [s.label for s in design.smooths if s.label != label]
    others += [b.term.label for b in design.blocks]
    if others:
        raise ValueError(
            f"test='constant' needs {label} to be the model's only variance component, but "
            f"the model also has {', '.join(others)}: the exact LRT with restricted fixed "
            "effects has no exact null then. Test the smooth alone (drop the other terms), "
            "or test 'f is linear' with test='linear'.")
    cols = set(sm.fixed_columns)
    keep = [c for c in range(design.p) if c not in cols]
    x_other = pd.DataFrame(design.X[:, keep], columns=[design.fixed_names[c] for c in keep])
    f = design.formula
    by, var = sm.term.by, sm.term.variable
    if by is not None and sm.basis.level is None:  # numeric by: f(x) z, not constrained
        z = design.frame[by].to_numpy(dtype=float)
        x = design.frame[var].to_numpy(dtype=float)
        slope = f"{by}:{var}"
        xf = pd.concat([x_other, pd.DataFrame({by: z, slope: z * x})], axis=1)
        # the cr, tp and ps penalties' null space is the straight lines: z, z x span it
        if not _in_span(design.X[:, sorted(cols)] @ np.ones(len(cols)), xf.to_numpy()):
            raise RuntimeError(f"internal error: the null space of {label} is not spanned by "
                               f"{by} and {slope}; please report it.")
        rhs = by if f.fixed == "1" else f"{f.fixed} + {by}"
        return ConstantNull(label, xf, (slope,), sm.Z, f"{f.response.text} ~ {rhs}")
    if not _in_span(np.ones(design.n), x_other.to_numpy()):
        raise ValueError(
            f"test='constant': {label} is constrained to sum to zero, so its constant is the "
            "intercept's, and the model has none. Add the intercept (e.g. y ~ 1 + s(x)).")
    names = tuple(design.fixed_names[c] for c in sorted(cols))
    xf = pd.concat([x_other, pd.DataFrame(design.X[:, sorted(cols)], columns=list(names))],
                   axis=1)
    return ConstantNull(label, xf, names, sm.Z, f"{f.response.text} ~ {f.fixed}")


def test_smooth_constant(design: Design, term: str, method: str, draws: Draws, *,
                         family: str = "gaussian", link: str | None = None,
                         offset: object = None) -> TestResult:
    """ML LRT of H0 "the smooth ``term`` is constant" in a design with smooth terms.

    Parameters
    ----------
    design : Design
        With the smooth ``term`` as its only variance component.
    term : str
        The smooth (``"s(x)"``, as written or its label).
    method : {"exact", "bootstrap", "asymptotic"}
        ``"exact"`` for Gaussian models only (the exact null of the LRT with
        restricted fixed effects); ``"bootstrap"`` or ``"asymptotic"`` for
        binomial and Poisson ones.
    draws : Draws
    family : str

    Returns
    -------
    TestResult
        ``test == "LRT"``; ``settings["restricted"]`` names the fixed effects H0
        also sets to zero; ``fits["full"]`` is the ML fit.
    """
    cn = constant_null(design, term)
    what = f"H0: {cn.label} is constant (its penalised part's variance is zero too)"
    if family != "gaussian":
        check_smooth_glmm(family, link, offset)
        result = _test_glmm(design, term, method, draws, family,
                            null_design=cn.null_design(design), restricted=cn.restricted)
        return dataclasses.replace(result, settings={**result.settings, "test": "constant"},
                                   notes=(f"{what}.", *result.notes),
                                   reference=f"{result.reference}; {what}")
    if method != "exact":
        raise ValueError(
            f"method={method!r} is not implemented for test='constant' in a Gaussian model; "
            "use method='exact' (the exact null of Crainiceanu et al. 2005; its result also "
            "lists the chi-bar-square p-values in result.asymptotic).")
    full = fit_smooth(design, reml=False)  # first: refuses what smooth models do not fit
    result = design_test(design.y, cn.X, cn.Z, reml=False, restricted=list(cn.restricted),
                         draws=draws, term=cn.label, formula=design.formula.text,
                         null_formula=cn.null_formula)
    settings = {**result.settings, "test": "constant", "n_dropped": design.n_dropped,
                "data_hash": design.data_hash, "input": "formula"}
    notes = (f"{what}; the test is the ML LRT whatever `reml` says (REML cannot compare "
             "models with different fixed effects).", *result.notes)
    reference = f"{result.reference}; H0: {cn.label} is constant"
    return dataclasses.replace(result, settings=settings, notes=notes, reference=reference,
                               fits={"full": full, "null": result.fits["null"]})
