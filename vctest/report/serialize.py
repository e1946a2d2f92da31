"""Save a :class:`~vctest.results.TestResult` to JSON and read it back exactly.

Everything that determines the numbers is stored: the statistic, p-value, the
whole null sample (floats written with Python's shortest round-trip repr, so
they load bit for bit), the per-replicate bootstrap record, settings, seed and
SeedSequence entropy, versions and the fits' summaries.  A loaded result has
the fits as dictionaries and no ``confint`` (refit to invert the test again).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from vctest._pvalue import monte_carlo_pvalue
from vctest._replicates import FAILURE_KINDS, ReplicateRecord

FORMAT = "vctest-result"
FORMAT_VERSION = 1

METHODS = ("exact", "asymptotic", "bootstrap")

_RECORD_FIELDS = ("statistic", "objective", "theta_null", "theta_full", "n_evals", "status",
                  "failure", "full_singular", "null_singular")


def _encode_float(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _array(a: np.ndarray) -> dict[str, Any]:
    flat = [_encode_float(float(v)) if a.dtype.kind == "f" else v.item() for v in a.ravel()]
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": flat}


def result_to_json(result: Any) -> str:
    """The JSON text of a result (see the module docstring)."""
    payload = result.to_dict()
    payload["format"] = FORMAT
    payload["format_version"] = FORMAT_VERSION
    payload["pvalue_ci"] = None if result.pvalue_ci is None else list(result.pvalue_ci)
    payload["null_distribution"] = (None if result.null_distribution is None
                                    else _array(np.asarray(result.null_distribution)))
    rec = result.replicates
    payload["replicates"] = (None if rec is None else
                             {f: _array(np.asarray(getattr(rec, f))) for f in _RECORD_FIELDS
                              if hasattr(rec, f)})
    payload["fits"] = {k: (v.to_dict() if hasattr(v, "to_dict") else v)
                       for k, v in result.fits.items()}
    payload["notes"] = list(result.notes)
    return json.dumps(payload, indent=1, allow_nan=False, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a result file")


def save_result(result: Any, path: str | Path) -> Path:
    """Write ``result`` as JSON to ``path`` atomically; returns the path.

    The text goes to a temporary file in the same directory, which replaces
    ``path`` only once it is complete (:func:`vctest._files.atomic_write`): a
    full disk or an interrupted write leaves the previous file as it was.
    """
    from vctest._files import atomic_write_text

    return atomic_write_text(Path(path), result_to_json(result) + "\n")


def read_result(path: str | Path) -> dict[str, Any]:
    """The fields of a result written by :meth:`TestResult.to_json`, validated.

    The keyword arguments of :class:`~vctest.results.TestResult` (arrays
    decoded bit for bit, the replicate record as a
    :class:`~vctest._replicates.ReplicateRecord`); :func:`vctest.load_result`
    builds the result from them.  Reading imports neither the engine nor Numba.

    Every field is checked for its type and range (a p-value in [0, 1],
    counts that are non-negative integers, a null sample of non-negative
    numbers, ...), and the p-value must be the one its own null sample (or
    sketch, or asymptotic reference) gives.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If the file is not a vctest result, is from a newer format, or a field
        is missing, of the wrong type, out of range or inconsistent (the
        message names the field).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vctest result file (no format: {FORMAT!r}).")
    version = payload.get("format_version", 0)
    if not _is_int(version):
        raise _invalid(path, "format_version", f"must be an integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer vctest (format version "
                         f"{payload['format_version']}); upgrade vctest to read it.")
    try:
        fields = _fields(payload)
    except _Invalid as bad:
        raise _invalid(path, bad.field, bad.why) from None
    return fields


class _Invalid(Exception):
    def __init__(self, field: str, why: str) -> None:
        super().__init__(field, why)
        self.field, self.why = field, why


def _invalid(path: str | Path, field: str, why: str) -> ValueError:
    return ValueError(f"{path} is not a valid vctest result: `{field}` {why}. The file was "
                      "edited or damaged; restore it, or rerun the test (its settings and "
                      "seed reproduce it).")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _get(payload: dict[str, Any], name: str, default: Any = ...) -> Any:
    if name not in payload:
        if default is ...:
            raise _Invalid(name, "is missing")
        return default
    return payload[name]


def _number(v: Any, field: str, *, lo: float = -math.inf, hi: float = math.inf,
            none: bool = False) -> float | None:
    if v is None and none:
        return None
    if not _is_num(v) or not math.isfinite(v):
        raise _Invalid(field, f"must be a finite number; got {v!r}")
    if not lo <= v <= hi:
        raise _Invalid(field, f"must be between {lo:g} and {hi:g}; got {v!r}")
    return v


def _prob(v: Any, field: str, none: bool = False) -> float | None:
    return _number(v, field, lo=0.0, hi=1.0, none=none)


def _count(v: Any, field: str) -> int:
    if not _is_int(v) or v < 0:
        raise _Invalid(field, f"must be a non-negative integer; got {v!r}")
    return v


def _text(v: Any, field: str) -> str:
    if not isinstance(v, str):
        raise _Invalid(field, f"must be text; got {type(v).__name__}")
    return v


def _mapping(v: Any, field: str, none: bool = False) -> dict[str, Any] | None:
    if v is None and none:
        return None
    if not isinstance(v, dict):
        raise _Invalid(field, f"must be a JSON object; got {type(v).__name__}")
    return v


def _unarray(d: Any, field: str) -> np.ndarray:
    d = _mapping(d, field)
    dtype, shape, data = d.get("dtype"), d.get("shape"), d.get("data")
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf":
        raise _Invalid(field, f"has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_int(k) and k >= 0 for k in shape):
        raise _Invalid(field, f"has an invalid shape {shape!r}")
    if not isinstance(data, list) or len(data) != math.prod(shape):
        raise _Invalid(field, f"must hold {math.prod(shape) if isinstance(shape, list) else '?'}"
                       " values as a list")
    values = []
    for v in data:
        if isinstance(v, str) and dt.kind == "f" and v in ("nan", "inf", "-inf"):
            values.append(float(v))
        elif _is_num(v) or (isinstance(v, bool) and dt.kind == "b"):
            values.append(v)
        else:
            raise _Invalid(field, f"holds a value that is not a number: {v!r}")
    try:
        return np.array(values, dtype=dt).reshape(shape)
    except (ValueError, OverflowError, TypeError) as exc:
        raise _Invalid(field, f"cannot be decoded ({exc})") from None


def _statistics(a: np.ndarray, field: str) -> np.ndarray:
    if a.ndim != 1 or a.size == 0 or a.dtype.kind != "f":
        raise _Invalid(field, "must be a non-empty one-dimensional float array")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise _Invalid(field, "must hold finite statistics >= 0")
    return a


def _replicates(v: Any) -> Any:
    if v is None:
        return None
    fields = {f: _unarray(a, f"replicates.{f}") for f, a in _mapping(v, "replicates").items()}
    rows = {a.shape[0] if a.ndim else -1 for a in fields.values()}
    if len(rows) > 1:
        raise _Invalid("replicates", "has arrays of different lengths")
    if set(fields) != set(_RECORD_FIELDS):
        return SimpleNamespace(**fields)
    failure = fields["failure"]
    if failure.ndim != 1 or np.any((failure < 0) | (failure >= len(FAILURE_KINDS))):
        raise _Invalid("replicates.failure", f"must hold codes 0 to {len(FAILURE_KINDS) - 1}")
    return ReplicateRecord(**fields)


def _fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The validated keyword arguments of a TestResult (raises :class:`_Invalid`)."""
    method = _text(_get(payload, "method"), "method")
    if method not in METHODS:
        raise _Invalid("method", f"must be one of {METHODS}; got {method!r}")
    statistic = _number(_get(payload, "statistic"), "statistic", lo=0.0)
    pvalue = _prob(_get(payload, "pvalue"), "pvalue")
    ci = _get(payload, "pvalue_ci")
    if ci is not None:
        if not isinstance(ci, list) or len(ci) != 2:
            raise _Invalid("pvalue_ci", f"must be two numbers or null; got {ci!r}")
        ci = (_prob(ci[0], "pvalue_ci"), _prob(ci[1], "pvalue_ci"))
        if ci[0] > ci[1]:
            raise _Invalid("pvalue_ci", f"must have its lower bound first; got {list(ci)}")
    null = _get(payload, "null_distribution")
    null = None if null is None else _statistics(_unarray(null, "null_distribution"),
                                                 "null_distribution")
    null_summary = _mapping(payload.get("null_summary"), "null_summary", none=True)
    if null_summary is not None:
        n = _count(null_summary.get("n"), "null_summary.n")
        for key in ("n_zero", "n_exceed"):
            if _count(null_summary.get(key), f"null_summary.{key}") > n:
                raise _Invalid(f"null_summary.{key}", f"exceeds null_summary.n = {n}")
        for k, q in _mapping(null_summary.get("quantiles"), "null_summary.quantiles").items():
            if not _is_num(q) or q < 0:
                raise _Invalid(f"null_summary.quantiles.{k}", f"must be >= 0; got {q!r}")
    asymptotic = {_text(k, "asymptotic"): _prob(v, f"asymptotic.{k}")
                  for k, v in _mapping(_get(payload, "asymptotic"), "asymptotic").items()}
    approximations = {k: math.nan if v is None else _prob(v, f"approximations.{k}")
                      for k, v in _mapping(payload.get("approximations", {}),
                                           "approximations").items()}
    failures = {k: _count(v, f"failures.{k}")
                for k, v in _mapping(payload.get("failures", {}), "failures").items()}
    seed = _get(payload, "seed")
    if seed is not None and not _is_int(seed):
        raise _Invalid("seed", f"must be an integer or null; got {seed!r}")
    entropy = _get(payload, "seed_entropy")
    if not (entropy is None or _is_int(entropy)
            or (isinstance(entropy, list) and all(_is_int(e) for e in entropy))):
        raise _Invalid("seed_entropy", f"must be an integer, a list of them or null; got "
                       f"{entropy!r}")
    notes = payload.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(t, str) for t in notes):
        raise _Invalid("notes", "must be a list of text")
    versions = _mapping(_get(payload, "versions"), "versions")
    if not all(isinstance(v, str) for v in versions.values()):
        raise _Invalid("versions", "must map names to version text")
    replicates = _replicates(payload.get("replicates"))
    n_failed = _count(_get(payload, "n_failed"), "n_failed")
    if isinstance(replicates, ReplicateRecord) and n_failed != replicates.n_failed:
        raise _Invalid("n_failed", f"is {n_failed} but the replicate record has "
                       f"{replicates.n_failed} failed replicates")
    fields = {
        "statistic": statistic, "pvalue": pvalue,
        "pvalue_mc_se": _number(_get(payload, "pvalue_mc_se"), "pvalue_mc_se", lo=0.0,
                                none=True),
        "pvalue_ci": ci, "method": method,
        "test": _text(_get(payload, "test"), "test"),
        "term": _text(_get(payload, "term"), "term"),
        "reference": _text(_get(payload, "reference"), "reference"),
        "null_distribution": null, "asymptotic": asymptotic,
        "settings": _mapping(_get(payload, "settings"), "settings"),
        "seed": seed, "seed_entropy": entropy, "n_failed": n_failed,
        "pvalue_bound": _prob(payload.get("pvalue_bound"), "pvalue_bound", none=True),
        "failures": failures, "approximations": approximations, "replicates": replicates,
        "replicate_summary": _mapping(payload.get("replicate_summary", {}),
                                      "replicate_summary"),
        "fits": _mapping(payload.get("fits", {}), "fits"), "versions": versions,
        "null_summary": null_summary, "notes": tuple(notes),
    }
    _check_pvalue(fields, payload.get("nsim"))
    return fields


def _check_pvalue(f: dict[str, Any], nsim: Any) -> None:
    """The p-value must be the one the stored reference gives."""
    null, summary, p = f["null_distribution"], f["null_summary"], f["pvalue"]
    if null is not None:
        expected, size = monte_carlo_pvalue(f["statistic"], null).pvalue, null.size
    elif summary is not None:
        expected, size = (1 + summary["n_exceed"]) / (1 + summary["n"]), summary["n"]
        if size < 1:
            raise _Invalid("null_summary.n", "must be at least 1")
    elif f["method"] == "asymptotic":
        if not any(math.isclose(p, q, rel_tol=1e-12, abs_tol=0.0)
                   for q in f["asymptotic"].values()):
            raise _Invalid("pvalue", f"{p!r} is none of the stored asymptotic p-values")
        return
    else:
        raise _Invalid("null_distribution", f"is missing for a {f['method']} result (and "
                       "there is no null_summary)")
    if nsim is not None and nsim != size:
        raise _Invalid("nsim", f"is {nsim!r} but the stored null sample has {size} draws")
    if not math.isclose(p, expected, rel_tol=1e-12, abs_tol=0.0):
        raise _Invalid("pvalue", f"is {p!r} but the stored null sample gives {expected!r}")
