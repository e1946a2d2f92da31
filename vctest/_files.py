"""Write output files atomically, and check before long work that they can be written.

A result or a plot is written to a temporary file in the target's own
directory and moved over the target with :func:`os.replace` only once it is
complete, so a full disk or an interrupted write never leaves a truncated
file, and the previous good file survives a failed write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def _mode_for(path: Path) -> int:
    """Permissions for the new file: the old file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then move it over ``path``.

    If ``write`` or the move fails, the temporary file is removed, ``path`` is
    left as it was and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    write : callable
        Writes the whole content to the path it is given.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> atomic_write(target, lambda tmp: tmp.write_text("done\\n")).read_text()
    'done\\n'
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_writable(path: str | os.PathLike[str], option: str) -> Path:
    """Raise a ``ValueError`` naming ``option`` unless ``path`` can be written.

    The directory must exist and accept a new file (a temporary file is
    created and removed to find out); ``path`` must not be a directory, nor
    an existing file without write permission.

    Examples
    --------
    >>> try:
    ...     check_writable("/no/such/dir/result.json", "--save")
    ... except ValueError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    --save '/no/such/dir/result.json': the directory '/no/such/dir' does not exist; ...
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a directory; give a file name, e.g. "
                         f"{str(path / 'result')!r} with the right extension.")
    if not parent.is_dir():
        raise ValueError(f"{option} {str(path)!r}: the directory {str(parent)!r} does not "
                         "exist; create it first or choose another path.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {str(path)!r} is read-only; choose another path or "
                         "change its permissions.")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {str(path)!r}: cannot write to the directory "
                         f"{str(parent)!r} ({exc.strerror or exc}); choose a writable "
                         "directory.") from None
    return path
