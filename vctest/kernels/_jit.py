"""The one place that sets Numba's jit options for vctest's kernels.

Every kernel module imports :func:`jit` (and :data:`prange`) from here, so the
compilation policy -- on-disk caching, fast-math off, the error model -- is
decided once.  Kernels are pure functions on arrays and scalars: they capture
no globals except other jitted kernels.

A cache that cannot go stale
----------------------------
Numba keys a cached function by its own source file only: when a kernel in
one file calls a kernel in another and only the callee changes, Numba would
load the caller's stale machine code, with the old callee inlined.  vctest
therefore keeps its kernels' cache in a directory of its own,

    ``<base>/vctest-<digest>/kernels/``

where ``<digest>`` is a SHA-256 (first 16 hex digits in the name) of every
``*.py`` file under ``vctest/kernels/`` (the bytes, in sorted order of the
relative paths) together with the Python, NumPy, llvmlite and Numba versions.
Any edit to any kernel file, or an upgrade of Numba, moves the whole cache to
a new directory; the digest is also each index's "source stamp", so an index
written for other sources is ignored even if it were found.  This is done by a
cache locator (:class:`VctestCacheLocator`) that Numba consults first, and only
for functions defined in files under ``vctest/kernels/``; other packages'
caching is untouched.  Old ``vctest-*`` directories are never read again and
can be deleted.

``<base>`` is the first writable one of: ``$VCTEST_NUMBA_CACHE`` when it
names a directory; ``$VCTEST_CACHE_DIR``; ``$NUMBA_CACHE_DIR``;
``$XDG_CACHE_HOME/vctest/numba`` or ``~/.cache/vctest/numba``; a directory in
the system's temporary directory.  When the first of these cannot be written
(a read-only home, say) vctest says so once with a :class:`VctestCacheWarning`
naming the directory it uses instead; when none can, caching is off (every
process compiles again), with the same one warning.  A read-only package
directory does not matter: nothing is written next to the sources.

The first compilation in a process whose cache is empty says so once, with a
:class:`VctestCompileNotice` warning (compiling takes a while once; ``vctest
warmup`` or :func:`vctest.warmup` does it ahead of time, e.g. when building a
Docker image).  Small jobs compile nothing: :mod:`vctest.kernels.tiers` runs a
kernel's source as Python until compiling it pays.

Environment
-----------
``VCTEST_NUMBA_CACHE``
    ``0`` (or ``false``/``off``/``no``): no on-disk cache, and no warning;
    ``1`` or unset: the default locations above; anything else: the base
    directory of the cache (created if missing).
``VCTEST_CACHE_DIR``
    The base directory of the on-disk cache (see above).
``VCTEST_QUIET_COMPILE=1``
    No notice on the first compilation (the test suite sets it).
``NUMBA_DISABLE_JIT=1``
    Numba's own switch: every kernel then runs as plain Python, which must give
    the same numbers (tested on a fast subset).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import os
import sys
import tempfile
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba
from numba.core import caching as _caching
from numba.core import event as _event

F = TypeVar("F", bound=Callable[..., Any])

KERNELS_DIR = Path(__file__).resolve().parent
"""The directory whose ``*.py`` files make up the cache digest."""

COMPILE_SECONDS = "about 25 s for a fit's kernels and 30 s more for the bootstrap's,"
"""How long compiling every kernel takes on a typical machine (for the notice)."""


class VctestCompileNotice(UserWarning):
    """vctest is compiling its Numba kernels (once; they are cached afterwards)."""


class VctestCacheWarning(UserWarning):
    """The kernel cache cannot live where it should: another directory, or no cache."""


def source_digest(kernels_dir: str | os.PathLike[str] | None = None) -> str:
    """The SHA-256 hex digest that keys the kernel cache.

    Covers every ``*.py`` file under ``kernels_dir`` (default: this package's
    kernels), read as bytes in sorted order of the relative paths, and the
    Python, NumPy, llvmlite and Numba versions.
    """
    import llvmlite
    import numpy

    root = Path(kernels_dir) if kernels_dir is not None else KERNELS_DIR
    h = hashlib.sha256()
    for part in (sys.version, numpy.__version__, llvmlite.__version__, numba.__version__):
        h.update(part.encode() + b"\0")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    for rel in files:
        h.update(rel.encode() + b"\0")
        h.update((root / rel).read_bytes() + b"\0")
    return h.hexdigest()


def _writable(path: Path) -> str | None:
    """None if a file can be created in ``path`` (made if missing), else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


_OFF = ("0", "false", "off", "no")
_DEFAULT = ("", "1", "true", "on", "yes")


def _cache_setting() -> str:
    """``$VCTEST_NUMBA_CACHE``: "off", "default", or a directory."""
    value = os.environ.get("VCTEST_NUMBA_CACHE", "").strip()
    if value.lower() in _OFF:
        return "off"
    return "default" if value.lower() in _DEFAULT else value


def _base_candidates() -> list[Path]:
    out: list[Path] = []
    setting = _cache_setting()
    if setting not in ("off", "default"):
        out.append(Path(setting).expanduser())
    for var in ("VCTEST_CACHE_DIR", "NUMBA_CACHE_DIR"):
        value = os.environ.get(var, "").strip()
        if value:
            out.append(Path(value).expanduser())
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    out.append((Path(xdg) if xdg else Path("~/.cache").expanduser()) / "vctest" / "numba")
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    try:
        tmp: str | None = tempfile.gettempdir()
    except OSError:  # no writable temporary directory at all
        tmp = None
    if tmp is not None:
        out.append(Path(tmp) / f"vctest-numba-{user}")
    return out


def _find_cache_dir() -> Path | None:
    """The first writable salted directory; one :class:`VctestCacheWarning` if not the first."""
    digest = SOURCE_DIGEST[:16]
    candidates = _base_candidates()
    reasons: list[str] = []
    chosen = None
    for base in candidates:
        salted = base / f"vctest-{digest}"
        why = _writable(salted)
        if why is None:
            chosen = salted
            break
        reasons.append(f"{base} ({why})")
    if reasons:
        fix = ("set VCTEST_NUMBA_CACHE to a writable directory, or VCTEST_NUMBA_CACHE=0 to "
               "turn the cache off")
        text = (f"vctest cannot write its kernel cache in {reasons[0]}; caching in {chosen} "
                f"instead ({fix})" if chosen is not None else
                f"vctest found no writable directory for its kernel cache (tried "
                f"{'; '.join(reasons)}); compiled kernels are not cached, so every process "
                f"compiles them again ({fix})")
        warnings.warn_explicit(text, VctestCacheWarning, filename="vctest", lineno=0,
                               module=__name__)
    return chosen


CACHE = _cache_setting() != "off" and not numba.config.DISABLE_JIT

SOURCE_DIGEST = source_digest()
"""Digest of the kernel sources and versions; names the cache directory."""

CACHE_DIR: Path | None = _find_cache_dir() if CACHE else None
"""The salted cache directory ``<base>/vctest-<digest16>`` (``None``: caching off)."""

if CACHE_DIR is None:
    CACHE = False


class VctestCacheLocator(_caching._CacheLocator):
    """Numba cache locator for vctest's kernels: a directory salted by :data:`SOURCE_DIGEST`.

    Only functions defined in files under :data:`KERNELS_DIR` are located here
    (others fall through to Numba's own locators).  The cache path mirrors the
    file's directory below ``vctest/`` inside :data:`CACHE_DIR`, and the source
    stamp is the digest of all kernel sources, so a change to any kernel file
    (a callee, say) invalidates every cached kernel.
    """

    def __init__(self, py_func: Callable[..., Any], py_file: str) -> None:
        assert CACHE_DIR is not None
        rel = Path(py_file).resolve().parent.relative_to(KERNELS_DIR.parent)
        self._cache_path = str(CACHE_DIR.joinpath(rel))
        self._lineno = py_func.__code__.co_firstlineno
        self._py_file = py_file  # Numba names it when a function cannot be cached

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return SOURCE_DIGEST

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func: Callable[..., Any], py_file: str) -> Any:
        if CACHE_DIR is None or not _is_kernel_file(py_file):
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


def _is_kernel_file(py_file: str) -> bool:
    try:
        path = Path(py_file).resolve()
    except (OSError, RuntimeError):
        return False
    return path.suffix == ".py" and path.is_file() and KERNELS_DIR in path.parents


# Numba >= 0.61 calls the base class ``CacheImpl``, older releases ``_CacheImpl``.
_CACHE_IMPL = getattr(_caching, "CacheImpl", None) or _caching._CacheImpl
if VctestCacheLocator not in _CACHE_IMPL._locator_classes:
    _CACHE_IMPL._locator_classes.insert(0, VctestCacheLocator)


def cache_is_cold() -> bool:
    """Whether the salted cache directory holds no index file yet."""
    if CACHE_DIR is None:
        return True
    return next(CACHE_DIR.rglob("*.nbi"), None) is None


class _FirstCompileNotice(_event.Listener):
    """On the first compilation of a vctest kernel with an empty cache, warn once."""

    def __init__(self) -> None:
        self.done = False

    def on_start(self, event: Any) -> None:
        if self.done:
            return
        dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
        py_func = getattr(dispatcher, "py_func", None)
        code = getattr(py_func, "__code__", None)
        if code is None or not _is_kernel_file(code.co_filename):
            return
        self.done = True
        if os.environ.get("VCTEST_QUIET_COMPILE", "") not in ("", "0") or not CACHE:
            return
        if not cache_is_cold():
            return
        # warn_explicit: the caller's frame is inside Numba's dispatcher, whose
        # source line would only confuse.
        warnings.warn_explicit(
            f"vctest is compiling its numerical kernels ({COMPILE_SECONDS} once; cached "
            f"afterwards at {CACHE_DIR}; run `vctest warmup` to do it ahead of time)",
            VctestCompileNotice,
            filename="vctest",
            lineno=0,
            module=__name__,
        )

    def on_end(self, event: Any) -> None:
        pass


_NOTICE = _FirstCompileNotice()
_event.register("numba:compile", _NOTICE)

_OPTIONS: dict[str, Any] = {
    "cache": CACHE,
    "fastmath": False,
    "error_model": "numpy",
    "nogil": True,
}

prange = numba.prange


def jit(func: F | None = None, *, parallel: bool = False, internal: bool = False,
        inline: bool = False) -> Any:
    """Compile ``func`` with vctest's jit options.

    Parameters
    ----------
    func : callable, optional
        The kernel.  When omitted, a decorator is returned.
    parallel : bool, default False
        Compile with ``parallel=True`` so that :data:`prange` loops run on
        Numba's thread pool.
    internal : bool, default False
        Called only from other kernels: no Python or C entry wrappers are
        generated (they cost seconds of compile time per function).  Such a
        function cannot be called from Python unless ``NUMBA_DISABLE_JIT=1``.
    inline : bool, default False
        A small leaf: inlined into its callers at Numba's IR level, so it is
        never compiled on its own.

    Returns
    -------
    numba dispatcher or decorator
    """

    def wrap(f: F) -> Any:
        extra: dict[str, Any] = {}
        if internal or inline:
            extra.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
        if inline:
            extra["inline"] = "always"
        return numba.njit(parallel=parallel, **_OPTIONS, **extra)(f)

    if func is None:
        return wrap
    return wrap(func)


def set_threads(n: int | None) -> int:
    """Set the number of Numba threads and return the previous setting.

    ``None`` means all available threads.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if n is None else int(n))
    return previous



def _libm_math() -> types.ModuleType:
    """:mod:`math`, but with the C library's ``lgamma`` (what compiled kernels call).

    CPython's ``math.lgamma`` is its own approximation, which differs from the
    C library's in the last bits; every other function of :mod:`math` that the
    kernels use calls the C library in both worlds (tested).  Where no C math
    library can be loaded, CPython's ``lgamma`` stays (the one difference).
    """
    shim = types.ModuleType("math")
    shim.__dict__.update(math.__dict__)
    name = ctypes.util.find_library("m") or ctypes.util.find_library("c")
    try:
        libm = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        lgamma = libm.lgamma
    except (OSError, AttributeError):  # no C library to load (never on Linux or macOS)
        return shim
    lgamma.restype = ctypes.c_double
    lgamma.argtypes = [ctypes.c_double]

    def lgamma_c(x: float) -> float:
        if x <= 0.0 and x == math.floor(x):
            raise ValueError("math domain error")  # as math.lgamma (the kernels never ask)
        return float(lgamma(float(x)))

    shim.lgamma = lgamma_c  # type: ignore[attr-defined]
    return shim


MATH = _libm_math()
"""The :mod:`math` module seen by kernels run as Python (:func:`interpreted`)."""


def _is_kernel(obj: Any) -> bool:
    """A Numba dispatcher of a function defined under ``vctest/kernels/``."""
    return (isinstance(obj, numba.core.dispatcher.Dispatcher)
            and Path(obj.py_func.__code__.co_filename).resolve().parent == KERNELS_DIR)


def _global_names(code: types.CodeType) -> set[str]:
    """The global names ``code`` (and the code nested in it) may read."""
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _global_names(const)
    return out


def interpreted(kernel: Any, compiled: tuple[Any, ...],
                python: dict[Any, Callable[..., Any]] | None = None) -> Callable[..., Any]:
    """``kernel``'s source run by the Python interpreter, calling ``compiled`` compiled.

    Every other vctest kernel it calls, directly or further down, runs as
    Python too (its ``py_func`` with the same rebinding), except those that
    ``python`` maps to a NumPy equivalent (a leaf whose element loop would be
    slow in the interpreter on long arrays; the equivalent must give the same
    numbers, e.g. a copy).  Python floats are
    IEEE doubles and the kernels are compiled without fast-math, so the same
    source gives the same numbers either way (``math.lgamma``, the one function
    whose CPython version is not the C library's that compiled code calls, is
    the C library's in the interpreted source too: :data:`MATH`); a driver whose
    own work is small (an optimiser's loop over a few parameters) then need not
    be compiled for the heavy kernels it calls to run at compiled speed.  The
    returned function's ``interpreted_kernels`` lists the kernels whose source
    it runs.  With ``NUMBA_DISABLE_JIT=1`` the kernel is already Python and is
    returned as is.
    """
    if not isinstance(kernel, numba.core.dispatcher.Dispatcher):
        return kernel
    keep = {id(k) for k in compiled}
    twins: dict[int, Callable[..., Any]] = {id(k): f for k, f in (python or {}).items()}

    made: list[Any] = []

    def twin(dispatcher: Any) -> Callable[..., Any]:
        if id(dispatcher) not in twins:
            made.append(dispatcher)
            func = dispatcher.py_func
            env = dict(func.__globals__)
            if env.get("math") is math:
                env["math"] = MATH
            twins[id(dispatcher)] = types.FunctionType(func.__code__, env, func.__name__,
                                                       func.__defaults__, func.__closure__)
            for name in _global_names(func.__code__):
                if _is_kernel(env.get(name)) and id(env[name]) not in keep:
                    env[name] = twin(env[name])
        return twins[id(dispatcher)]

    out = twin(kernel)
    out.interpreted_kernels = tuple(made)  # type: ignore[attr-defined]  (what runs as Python)
    return out
