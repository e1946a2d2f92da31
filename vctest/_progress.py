"""Progress bars: a widget in a Jupyter notebook, text on a terminal, never a warning.

``tqdm.auto`` picks the notebook widget inside Jupyter, but warns ("IProgress
not found") when ipywidgets is missing; here the widget is used only when
ipywidgets imports (``pip install 'vctest[notebook]'``), and a text bar on
stderr otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython ``ZMQInteractiveShell``)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def has_widgets() -> bool:
    """ipywidgets is importable (the notebook bar needs it)."""
    if "ipywidgets" in sys.modules:
        return sys.modules["ipywidgets"] is not None
    return importlib.util.find_spec("ipywidgets") is not None


def interactive() -> bool:
    """A person is watching: a terminal on stderr, or a notebook."""
    return in_notebook() or bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar: the notebook widget when it can be drawn, else text on stderr.

    Examples
    --------
    >>> bar = progress_bar(total=3, disable=True)
    >>> type(bar).__module__
    'tqdm.std'
    >>> bar.close()
    """
    if in_notebook() and has_widgets():
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm

        kwargs.setdefault("file", sys.stderr)
    return tqdm(**kwargs)
