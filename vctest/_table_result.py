"""A frozen table of results (``ranova``, ``anova``, ``reduce``): frame, text, HTML, JSON.

A leaf: it imports only numpy and pandas, so the public functions of
:mod:`vctest.api` build it and nothing below them needs it.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA:
        return None
    return value


@dataclass(frozen=True, eq=False)
class TableResult:
    """A table of tests with its notes, settings and a methods paragraph (frozen).

    Behaves like a small read-only data frame: ``res["LRT"]``, ``len(res)``,
    ``res.columns``, ``res.index``; :meth:`to_frame` returns a copy to work on.

    Attributes
    ----------
    title : str
        What the table is (first line of :meth:`summary`).
    notes : tuple of str
        What a reader must know (refits by ML, naive p-values, selection).
    settings : dict
        How it was computed (formula, method, nsim, seeds, ...).
    methods : str
        A paragraph for a paper's methods section.
    results : dict
        Per-row :class:`~vctest.results.TestResult` where a row was tested
        (keyed by the row label).
    """

    title: str
    frame: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    methods: str = ""
    results: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # a private copy: the caller's frame may change later, the result does not
        object.__setattr__(self, "frame", self.frame.copy())

    def to_frame(self) -> pd.DataFrame:
        """The table as a new DataFrame (a copy: editing it leaves the result as it is)."""
        return self.frame.copy()

    def __getitem__(self, key: Any) -> Any:
        return self.frame[key].copy()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> pd.Index:
        """Column labels."""
        return self.frame.columns

    @property
    def index(self) -> pd.Index:
        """Row labels."""
        return self.frame.index

    def methods_text(self) -> str:
        """The methods paragraph (with references)."""
        return self.methods

    def summary(self) -> str:
        """The table as plain text with its notes."""
        with pd.option_context("display.width", 200, "display.max_columns", 30,
                               "display.max_colwidth", 60):
            body = self.frame.to_string(float_format=lambda v: f"{v:.6g}", na_rep="")
        lines = [self.title, body]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return ("<div><p><b>" + html.escape(self.title) + "</b></p>"
                + self.frame.to_html(float_format=lambda v: f"{v:.6g}", na_rep="")
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: rows as records (missing values are None)."""
        rows = []
        for label, row in self.frame.iterrows():
            rows.append({"row": str(label), **{str(k): _plain(v) for k, v in row.items()}})
        return {
            "title": self.title,
            "columns": [str(c) for c in self.frame.columns],
            "rows": rows,
            "notes": list(self.notes),
            "settings": {k: _plain(v) for k, v in self.settings.items()},
            "methods": self.methods,
            "tests": {k: r.to_dict() for k, r in self.results.items()},
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The :meth:`to_dict` record as JSON text, or written to ``path`` (returns the path)."""
        text = json.dumps(self.to_dict(), indent=2, default=_plain)
        if path is None:
            return text
        Path(path).write_text(text)
        return str(path)
