"""Command-line interface: ``vctest fit``, ``check``, ``test``, ``compare`` and ``warmup``.

Examples
--------
``vctest fit sleepstudy "Reaction ~ Days + (Days | Subject)"``
``vctest fit data.csv "y ~ x + (1 | g)" --ml --json``
``vctest test Dyestuff "Yield ~ 1 + (1 | Batch)" --term "(1 | Batch)" --nsim 100000 --seed 1``
``vctest test data.csv "y ~ s(x, bs='cr')" --term "s(x)" --test constant`` (is f constant?)
``vctest compare sleepstudy "Reaction ~ Days + (Days | Subject)" "Reaction ~ Days + (1 | Subject)"``
``vctest warmup`` (compile and cache every kernel ahead of time, e.g. in a Dockerfile)

``python -m vctest ...`` is the same command.  Exit status: 0 on success, 2 for
an input error (the message says what to change), 1 for any other failure,
130 when Ctrl-C (143 when SIGTERM) interrupted a simulation -- its finished
part is still printed, saved and marked "interrupted".  With ``--json`` an
error is a JSON object ``{"error": {...}}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, str):
        return _jsonable(obj.item())
    return obj


def _emit(payload: dict[str, Any], text: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_jsonable(payload), indent=2))
    else:
        print(text)


def _cmd_fit(args: argparse.Namespace) -> int:
    from vctest.api import fit

    result = fit(args.formula, args.data, reml=not args.ml, family=args.family,
                 link=args.link, offset=args.offset, weights=args.weights)
    _emit(result.to_dict(), result.summary(), args.json)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Before any long work: can ``--save`` and ``--plot`` be written?"""
    from vctest._files import check_writable

    if args.save:
        check_writable(args.save, "--save")
    if args.plot:
        check_writable(args.plot, "--plot")
        try:
            import matplotlib
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'vctest[plot]'") from None
        matplotlib.use("Agg")
        kinds = FigureCanvasBase.get_supported_filetypes()
        suffix = os.path.splitext(args.plot)[1].lstrip(".").lower()
        if suffix not in kinds:
            raise ValueError(f"--plot {args.plot!r}: unknown image type {suffix!r}; end the "
                             f"file name with one of .{', .'.join(sorted(kinds))}.")


def _cmd_test(args: argparse.Namespace) -> int:
    from vctest.api import vc_test

    _check_outputs(args)
    result = vc_test(
        args.formula, args.data, term=args.term, method=args.method, nsim=args.nsim,
        seed=args.seed, reml=not args.ml, threads=args.threads,
        progress=False if args.quiet else None, stop_alpha=args.stop_alpha,
        family=args.family, link=args.link, offset=args.offset, weights=args.weights,
        test=args.test,
    )
    return _report(result, args)


def _report(result: Any, args: argparse.Namespace) -> int:
    """Print a test result; save, plot and write the methods paragraph on request."""
    payload = result.to_dict()
    text = result.summary()
    if args.methods:
        payload["methods_text"] = result.methods_text()
        text += "\n\nMethods\n" + payload["methods_text"]
    _emit(payload, text, args.json)
    if args.save:
        _write(args.save, "--save", lambda tmp: tmp.write_text(result.to_json() + "\n",
                                                                encoding="utf-8"))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = result.plot()
        kind = os.path.splitext(args.plot)[1].lstrip(".").lower()
        _write(args.plot, "--plot", lambda tmp: ax.figure.savefig(
            tmp, format=kind, dpi=120, bbox_inches="tight"))
    if result.interrupted:
        from vctest._signals import exit_status

        return exit_status()
    return 0


def _write(path: str, option: str, write: Any) -> None:
    """Write an output file atomically; a failure is an error naming the option."""
    from vctest._files import atomic_write

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise _OutputError(f"could not write {option} {path!r} ({exc.strerror or exc}); "
                           "the file is unchanged, the result above is complete.") from None


class _OutputError(Exception):
    """An output file could not be written after the run (exit status 1)."""


def _cmd_check(args: argparse.Namespace) -> int:
    from vctest.api import check, fit

    report = check(fit(args.formula, args.data, reml=not args.ml, family=args.family,
                       link=args.link, offset=args.offset, weights=args.weights))
    _emit(report.to_dict(), report.summary(), args.json)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from vctest.api import compare

    _check_outputs(args)
    result = compare(
        args.formula, args.null_formula, args.data, nsim=args.nsim, seed=args.seed,
        reml=args.reml, threads=args.threads, progress=False if args.quiet else None,
        stop_alpha=args.stop_alpha, family=args.family, link=args.link, offset=args.offset,
        weights=args.weights,
    )
    return _report(result, args)


def _cmd_warmup(args: argparse.Namespace) -> int:
    from vctest.api import warmup

    try:
        report = warmup(progress=not args.quiet)
    except Exception as exc:  # a failed warm-up is reported, never a traceback
        return _fail(f"warmup failed: {type(exc).__name__}: {exc}", 1, args.json,
                     kind=type(exc).__name__)
    _emit(report.to_dict(), report.summary(), args.json)
    return 0


class _UsageError(Exception):
    """A command-line usage error (exit status 2), raised by the parser named ``parser``."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(f"{parser.prog}: {message}")
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse that raises on a usage error, so ``--json`` can report it as JSON."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise _UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = _Parser(
        prog="vctest",
        description="Is this random effect needed? Exact and bootstrap tests of variance "
        "components in mixed models.",
    )
    from vctest._version import __version__

    parser.add_argument("--version", action="version", version=f"vctest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("data", help="CSV or Parquet file, or a bundled data set name "
                       "(e.g. sleepstudy, Dyestuff)")
        p.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
        p.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
        family_options(p)
        p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p_fit = sub.add_parser("fit", help="fit a linear mixed model and print a summary")
    common(p_fit)
    p_fit.set_defaults(func=_cmd_fit)

    p_check = sub.add_parser("check", help="can this fit be trusted? a convergence report")
    common(p_check)
    p_check.set_defaults(func=_cmd_check)

    p_test = sub.add_parser("test", help="test whether a variance component is zero")
    common(p_test)
    p_test.add_argument("--term", required=True,
                        help='the random-effects term to test, e.g. "(0 + Days | Subject)"')
    p_test.add_argument("--method", default=None,
                        choices=["exact", "asymptotic", "bootstrap"],
                        help="reference distribution (default: exact; bootstrap for a GLMM)")
    p_test.add_argument("--test", default="linear", choices=["linear", "constant"],
                        help='for a smooth --term "s(x)": H0 "f is linear" (default) or "f is '
                             'constant" (the ML LRT with the linear part restricted too; '
                             "--ml is implied)")
    simulation(p_test, "null draws (default 100000 exact, 1000 bootstrap)")
    p_test.set_defaults(func=_cmd_test)

    p_cmp = sub.add_parser("compare", help="parametric bootstrap test of two nested models")
    p_cmp.add_argument("data", help="CSV or Parquet file, or a bundled data set name")
    p_cmp.add_argument("formula", help="lme4 formula of the full model")
    p_cmp.add_argument("null_formula", help='formula of the null model (may be "y ~ x")')
    p_cmp.add_argument("--reml", action="store_true",
                       help="compare REML criteria (same fixed effects only; default ML)")
    family_options(p_cmp)
    p_cmp.add_argument("--json", action="store_true", help="print JSON instead of text")
    simulation(p_cmp, "bootstrap replicates (default 1000)", default=1000)
    p_cmp.set_defaults(func=_cmd_compare)

    p_warm = sub.add_parser(
        "warmup", help="compile and cache every numerical kernel now (once per install)",
        description="Compile vctest's Numba kernels by running tiny jobs on bundled data, "
        "and cache them on disk ($VCTEST_CACHE_DIR, default ~/.cache/vctest/numba), so that "
        "later processes start fast. Run it when building a Docker image, in CI with a kept "
        "cache, or on each Dask worker.")
    p_warm.add_argument("--quiet", action="store_true", help="no progress bar")
    p_warm.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_warm.set_defaults(func=_cmd_warmup)
    return parser


def family_options(p: argparse.ArgumentParser) -> None:
    """--family, --link, --offset and --weights."""
    p.add_argument("--family", default="gaussian", choices=["gaussian", "binomial", "poisson"],
                   help="response family (binomial/poisson: GLMM by Laplace)")
    p.add_argument("--link", default=None, choices=["logit", "probit", "cloglog", "log"],
                   help="GLMM link (default: logit for binomial, log for Poisson)")
    p.add_argument("--offset", default=None, metavar="COLUMN",
                   help="GLMM offset: a column of the data (e.g. log exposure)")
    p.add_argument("--weights", default=None, metavar="COLUMN",
                   help="prior weights, a column of the data (as lme4's weights=): "
                        "residual variance sigma^2/w (gaussian) or trials (binomial)")


def simulation(p: argparse.ArgumentParser, nsim_help: str, default: int | None = None) -> None:
    """Options shared by the simulating commands."""
    p.add_argument("--nsim", type=int, default=default, help=nsim_help)
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible draws")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    p.add_argument("--stop-alpha", type=float, default=None, dest="stop_alpha",
                   help="bootstrap: stop early once p < or > this level is settled")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--methods", action="store_true",
                   help="also print a paragraph for a paper's methods section")
    p.add_argument("--save", metavar="FILE.json", default=None,
                   help="save the whole result (null sample included) as JSON")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="plot the null distribution and the statistic (needs matplotlib)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0 on success; 2 for an input error; 1 for another failure; 130 (Ctrl-C)
    or 143 (SIGTERM) when a simulation was interrupted.  No traceback reaches
    the user (``VCTEST_TRACEBACK=1`` shows it, for a bug report); under
    ``--json`` an error is printed as a JSON object on stdout.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            return int(args.func(args))
    except _UsageError as exc:
        if as_json:
            return _fail(exc, 2, True, kind="UsageError")
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:
        return _fail(exc, 2, as_json)
    except KeyboardInterrupt as exc:
        from vctest._signals import exit_status, signal_name

        return _fail(f"interrupted ({signal_name(exc)}); nothing had finished to report.",
                     exit_status(exc), as_json, kind="Interrupted")
    except _OutputError as exc:
        return _fail(exc, 1, as_json, kind="OutputError")
    except BrokenPipeError:  # the reader went away (`vctest ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as if killed by SIGPIPE
    except Exception as exc:
        if os.environ.get("VCTEST_TRACEBACK", "") not in ("", "0"):
            raise
        return _fail(f"{type(exc).__name__}: {exc} (not an input error vctest recognises; "
                     "rerun with VCTEST_TRACEBACK=1 for the traceback and report it)", 1,
                     as_json, kind=type(exc).__name__)


def _fail(exc: BaseException | str, status: int, as_json: bool, kind: str | None = None) -> int:
    """Report an error on stderr (or as JSON on stdout) and return the exit status."""
    from vctest._text import plain

    message = plain(exc)
    if as_json:
        error = {"type": kind or type(exc).__name__, "message": message,
                 "exit_status": status}
        print(json.dumps({"error": error}, indent=2))
    else:
        print(f"vctest: error: {message}", file=sys.stderr)
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from vctest._text import plain

    print(f"vctest: warning: {plain(message)}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
