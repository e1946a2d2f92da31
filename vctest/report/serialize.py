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

from vctest._replicates import ReplicateRecord

FORMAT = "vctest-result"
FORMAT_VERSION = 1

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


def _unarray(d: dict[str, Any]) -> np.ndarray:
    values = [float(v) if isinstance(v, str) else v for v in d["data"]]
    return np.array(values, dtype=np.dtype(d["dtype"])).reshape(d["shape"])


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
    """Write ``result`` as JSON to ``path``; returns the path."""
    path = Path(path)
    path.write_text(result_to_json(result) + "\n")
    return path


def read_result(path: str | Path) -> dict[str, Any]:
    """The fields of a result written by :meth:`TestResult.to_json`.

    The keyword arguments of :class:`~vctest.results.TestResult` (arrays
    decoded bit for bit, the replicate record as a
    :class:`~vctest._replicates.ReplicateRecord`); :func:`vctest.load_result`
    builds the result from them.  Reading imports neither the engine nor Numba.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If the file is not a vctest result (or from a newer format).
    """
    try:
        payload = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vctest result file (no format: {FORMAT!r}).")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer vctest (format version "
                         f"{payload['format_version']}); upgrade vctest to read it.")
    replicates = None
    if payload.get("replicates"):
        fields = {f: _unarray(v) for f, v in payload["replicates"].items()}
        replicates = (ReplicateRecord(**fields) if set(fields) == set(_RECORD_FIELDS)
                      else SimpleNamespace(**fields))
    null = payload.get("null_distribution")
    ci = payload.get("pvalue_ci")
    return {
        "statistic": payload["statistic"], "pvalue": payload["pvalue"],
        "pvalue_mc_se": payload["pvalue_mc_se"],
        "pvalue_ci": None if ci is None else tuple(ci),
        "method": payload["method"], "test": payload["test"], "term": payload["term"],
        "reference": payload["reference"],
        "null_distribution": None if null is None else _unarray(null),
        "asymptotic": payload["asymptotic"], "settings": payload["settings"],
        "seed": payload["seed"], "seed_entropy": payload["seed_entropy"],
        "n_failed": payload["n_failed"], "pvalue_bound": payload.get("pvalue_bound"),
        "failures": payload.get("failures", {}),
        "approximations": {k: math.nan if v is None else v
                           for k, v in payload.get("approximations", {}).items()},
        "replicates": replicates, "replicate_summary": payload.get("replicate_summary", {}),
        "fits": payload.get("fits", {}), "versions": payload["versions"],
        "null_summary": payload.get("null_summary"),
        "notes": tuple(payload.get("notes", ())),
    }
