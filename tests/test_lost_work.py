"""Issue #22, items 9-12, 15, 16: no lost work and no unclear failure.

* atomic ``--save`` (the previous good file survives a full disk) and output
  paths checked before the run;
* read-only package directory and home: the kernel cache falls back with one
  warning; ``VCTEST_NUMBA_CACHE=<dir>``;
* Ctrl-C and SIGTERM during a bootstrap, an exact test and ``power()`` keep
  the finished part, marked "interrupted" (CLI exit 130 / 143);
* clear ``ValueError`` messages (and JSON errors under ``--json``) where a
  traceback used to be;
* ``load_result`` validates what it reads;
* ``python -m vctest``.

Conditions a process cannot make for itself (a read-only file system, a full
disk) are made in a private mount namespace (``unshare -m``: a read-only bind
mount, a tiny tmpfs); those tests are skipped, with the reason, where the
machine does not allow it.  Signals are sent by the process to itself at a
chosen chunk (deterministic), and once from outside at a marker line.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vctest
from vctest._files import atomic_write_text, check_writable
from vctest.cli import main

from .subprocess_run import ROOT, clean_env, run_python

DYE = ["Dyestuff", "Yield ~ 1 + (1 | Batch)", "--term", "(1 | Batch)"]


_env = clean_env
_python = run_python


@cache
def _namespace_problem() -> str | None:
    """Why a private mount namespace with bind and tmpfs mounts cannot be made, or None."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return "needs Linux and unshare(1) for a private mount namespace"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && "
         "mount --bind -o ro $d $d && ! touch $d/x 2>/dev/null; r=$?; umount -R $d; "
         "rmdir $d; exit $r"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make read-only or tiny mounts here: {probe.stderr.strip()[:200]}"
    return None


def _in_namespace(mounts: list[str], argv: list[str], env: dict[str, str],
                  timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``argv`` after the shell ``mounts`` commands, in a private mount namespace."""
    reason = _namespace_problem()
    if reason:
        pytest.skip(reason)
    script = " && ".join([*mounts, 'exec "$@"'])
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           "sh", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd="/")


def _ro(path: Path) -> str:
    return f"mount --bind -o ro '{path}' '{path}'"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A real result file (exact test, 2000 draws)."""
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         nsim=2000, seed=1)
    return res.to_json(tmp_path_factory.mktemp("saved") / "exact.json")


@pytest.fixture(scope="module")
def saved_boot(tmp_path_factory) -> Path:
    res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                         method="bootstrap", nsim=40, seed=2)
    return res.to_json(tmp_path_factory.mktemp("saved") / "boot.json")


# --- 9: atomic --save, output paths checked first -----------------------------------------


@pytest.mark.parametrize("fails", ["os.fsync", "os.replace"])
def test_a_failed_save_leaves_the_previous_file(saved, tmp_path, monkeypatch, fails):
    target = tmp_path / "result.json"
    shutil.copy(saved, target)
    good = target.read_bytes()
    res = vctest.load_result(saved)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fails, no_space)
    with pytest.raises(OSError, match="No space left"):
        res.to_json(target)
    monkeypatch.undo()
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temp file left
    assert vctest.load_result(target).pvalue == res.pvalue


def test_atomic_write_keeps_the_old_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o640


def test_full_disk_keeps_the_previous_result(saved, tmp_path):
    """A 256 kB tmpfs filled up: the API and the CLI keep the old file; the CLI says so."""
    disk = tmp_path / "disk"
    disk.mkdir()
    code = f"""
        import errno, json, shutil, subprocess, sys
        from pathlib import Path
        import vctest
        disk = Path({str(disk)!r})
        target = disk / "result.json"
        shutil.copy({str(saved)!r}, target)
        good = target.read_bytes()
        with open(disk / "filler", "wb", buffering=0) as fh:   # fill the disk
            try:
                while True:
                    fh.write(b"x" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        res = vctest.load_result({str(saved)!r})
        try:
            res.to_json(target)
            api = "saved"
        except OSError as exc:
            api = exc.errno
        cli = subprocess.run([sys.executable, "-m", "vctest", "test", *{DYE!r}, "--nsim",
                              "500", "--seed", "1", "--json", "--save", str(target)],
                             capture_output=True, text=True)
        print(json.dumps({{"api": api, "same": target.read_bytes() == good,
                          "files": sorted(p.name for p in disk.iterdir()),
                          "rc": cli.returncode, "out": cli.stdout, "err": cli.stderr}}))
    """
    out = _in_namespace([f"mount -t tmpfs -o size=256k tmpfs '{disk}'"],
                        [sys.executable, "-c", textwrap.dedent(code)], _env())
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["api"] == errno.ENOSPC
    assert r["same"] and r["files"] == ["filler", "result.json"]
    assert r["rc"] == 1, r["err"]
    error = json.loads(r["out"][r["out"].index('{\n  "error"'):])["error"]
    assert "could not write --save" in error["message"] and "unchanged" in error["message"]
    assert json.loads(r["out"][:r["out"].index('{\n  "error"')])["nsim"] == 500  # printed
    assert "Traceback" not in r["err"]


@pytest.mark.parametrize(("option", "path", "expected"), [
    ("--save", "{tmp}/no/such/dir/r.json", "the directory .* does not exist"),
    ("--save", "{tmp}", "is a directory"),
    ("--plot", "{tmp}/null.xyz", "unknown image type 'xyz'"),
    ("--plot", "{tmp}/no/dir/null.png", "does not exist"),
])
def test_output_paths_are_checked_before_the_run(tmp_path, capsys, option, path, expected):
    # the formula is wrong too: the path is reported first, so it was checked first
    argv = ["test", "Dyestuff", "Yield ~ 1 + (1 | Batchh)", "--term", "(1 | Batch)",
            option, path.format(tmp=tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vctest: error: {option} ") and "Batchh" not in err
    assert pd.Series([err]).str.contains(expected).item(), err


def test_a_read_only_directory_is_refused_before_the_run(tmp_path):
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out = _in_namespace([_ro(out_dir)], [sys.executable, "-m", "vctest", "test", *DYE,
                                         "--save", str(out_dir / "r.json")], _env())
    assert out.returncode == 2
    assert "cannot write to the directory" in out.stderr and "Read-only" in out.stderr
    assert out.stdout == ""  # nothing ran


def test_check_writable_accepts_a_new_file_and_refuses_a_read_only_one(tmp_path,
                                                                      monkeypatch):
    assert check_writable(tmp_path / "new.json", "--save") == tmp_path / "new.json"
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    # root may write any file, so the permission check is made to say no
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != existing)
    with pytest.raises(ValueError, match=r"--save '.*old\.json' is read-only"):
        check_writable(existing, "--save")


# --- 10: read-only install and home -------------------------------------------------------

KERNEL = """
from vctest.kernels._jit import jit


@jit
def triple(x):
    return 3.0 * x
"""
CACHE_SCRIPT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from vctest.kernels import _jit
    from vctest.kernels._lost_work_kernel import triple
    value = triple(2.0)
print(json.dumps({"value": value, "cache": _jit.CACHE, "dir": str(_jit.CACHE_DIR),
                  "warnings": [str(w.message) for w in caught
                               if type(w.message).__name__ == "VctestCacheWarning"]}))
"""


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    """A copy of the package with one tiny kernel (its own cache digest: quick to compile)."""
    pkg = tmp_path_factory.mktemp("pkg")
    shutil.copytree(ROOT / "vctest", pkg / "vctest",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "vctest" / "kernels" / "_lost_work_kernel.py").write_text(KERNEL)
    return pkg


def _cache_env(pkg: Path, home: Path, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in _env().items()
           if k not in ("VCTEST_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=str(pkg), HOME=str(home), TMPDIR=str(tmp), **extra)
    return env


@pytest.mark.parametrize(("case", "read_only", "setting", "where", "n_warnings"), [
    ("read-only package and home", ("pkg", "home"), None, "tmp", 1),
    ("nothing writable at all", ("/", "/tmp", "/var/tmp"), None, None, 1),
    ("VCTEST_NUMBA_CACHE=<dir>", (), "mine", "mine", 0),
    ("VCTEST_NUMBA_CACHE=<read-only dir>", ("mine", "pkg"), "mine", "home", 1),
    ("VCTEST_NUMBA_CACHE=0", ("pkg", "home"), "0", None, 0),
])
def test_kernel_cache_location(package_copy, tmp_path, case, read_only, setting, where,
                               n_warnings):
    dirs = {"pkg": package_copy, "home": tmp_path / "home", "tmp": tmp_path / "tmp",
            "mine": tmp_path / "mine"}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    extra = {}
    if setting is not None:
        extra["VCTEST_NUMBA_CACHE"] = str(dirs[setting]) if setting in dirs else setting
    env = _cache_env(package_copy, dirs["home"], dirs["tmp"], **extra)
    argv = [sys.executable, "-c", CACHE_SCRIPT]
    if read_only:  # a name of `dirs`, or a whole file system
        out = _in_namespace([_ro(dirs.get(k, Path(k))) for k in read_only
                             if Path(dirs.get(k, k)).exists()], argv, env)
    else:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600,
                             cwd="/")
    assert out.returncode == 0, f"{case}: {out.stderr}"
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["value"] == 6.0
    assert len(r["warnings"]) == n_warnings, r["warnings"]
    if where is None:
        assert r["cache"] is False and r["dir"] == "None"
    else:
        base = dirs[where]
        assert r["cache"] is True and Path(r["dir"]).is_relative_to(base), r["dir"]
        assert list(Path(r["dir"]).rglob("_lost_work_kernel.triple-*.nbi"))
    if n_warnings and where is not None:
        assert str(base) in r["warnings"][0] and "VCTEST_NUMBA_CACHE" in r["warnings"][0]
    if where is None and n_warnings:
        assert "not cached" in r["warnings"][0]


@pytest.mark.slow
def test_the_cli_runs_from_a_read_only_install_and_home(tmp_path):
    """The real package, read-only, with a read-only home: `vctest fit` works, one warning."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = _cache_env(ROOT, home, tmp)
    out = _in_namespace([_ro(ROOT), _ro(home)],
                        [sys.executable, "-m", "vctest", "fit", "Dyestuff",
                         "Yield ~ 1 + (1 | Batch)", "--json"], env, timeout=1200)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["objective"] == pytest.approx(319.6543, abs=1e-3)
    assert out.stderr.count("vctest: warning: vctest cannot write its kernel cache") == 1
    assert "no locator" not in out.stderr and "Traceback" not in out.stderr


# --- 11: interrupts -------------------------------------------------------------------------

INTERRUPT = """
import importlib, os, signal, sys
power = importlib.import_module("vctest.api.power")  # the module, not the function
boot = importlib.import_module("vctest.nulls.bootstrap")
exact = importlib.import_module("vctest.nulls.exact")
WHERE, AFTER, SIG = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
calls = [0]


def count():
    calls[0] += 1
    if calls[0] == AFTER:
        os.kill(os.getpid(), SIG)


if WHERE == "bootstrap":
    real_make = boot.make_task

    class Counting:
        def __init__(self, task):
            self.task = task

        def __getattr__(self, name):
            return getattr(self.task, name)

        def __call__(self, a, b):
            out = self.task(a, b)
            count()
            return out

    boot.make_task = lambda *a, **k: Counting(real_make(*a, **k))
elif WHERE == "exact":
    real_call = exact.SpectralTask.__call__

    def call(self, a, b):
        out = real_call(self, a, b)
        count()
        return out

    exact.SpectralTask.__call__ = call
else:
    real_test = power._PowerTask._test

    def test(self, design, i):
        out = real_test(self, design, i)
        count()
        return out

    power._PowerTask._test = test
"""

CLI_RUN = INTERRUPT + """
from vctest.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _cli_interrupted(where: str, after: int, sig: str, *argv: str):
    return _python(CLI_RUN, where, str(after), sig, *argv)


@pytest.mark.parametrize(("sig", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_cli_bootstrap_interrupted_keeps_replicates_and_says_so(tmp_path, sig, status):
    save = tmp_path / "boot.json"
    out = _cli_interrupted("bootstrap", 3, sig, "test", *DYE, "--method", "bootstrap",
                           "--nsim", "5000", "--seed", "7", "--threads", "1", "--json",
                           "--methods", "--save", str(save))
    assert out.returncode == status, out.stderr
    payload = json.loads(out.stdout)
    assert payload["interrupted"] is True and payload["settings"]["interrupted"] is True
    n = payload["nsim"]
    assert 0 < n < 5000 and payload["settings"]["n_run"] == n
    assert "interrupted after" in payload["methods_text"]
    assert any(note.startswith("interrupted") for note in payload["notes"])
    assert "Traceback" not in out.stderr
    back = vctest.load_result(save)
    assert back.interrupted and back.nsim == n and "INTERRUPTED" in back.summary()
    # the kept replicates are exactly the first n of an uninterrupted run
    full = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                          method="bootstrap", nsim=n, seed=7)
    assert np.array_equal(back.null_distribution, full.null_distribution)
    assert back.pvalue == full.pvalue and not full.interrupted


def test_cli_interrupted_before_anything_finished(tmp_path):
    out = _cli_interrupted("exact", 1, "SIGINT", "test", *DYE, "--nsim", "100000", "--json")
    assert out.returncode == 130
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "Interrupted" and "interrupted (SIGINT)" in error["message"]
    assert "Traceback" not in out.stderr


API_EXACT = INTERRUPT + """
import json, numpy as np, vctest
keep = sys.argv[4] == "keep"
res = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                     nsim=300_000, seed=5, keep_null=keep, threads=1)
n = res.nsim
ref = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)", nsim=n,
                     seed=5, keep_null=keep)
same = (np.array_equal(res.null_distribution, ref.null_distribution) if keep
        else res.null_summary == ref.null_summary)
print(json.dumps({"n": n, "interrupted": res.interrupted, "same": bool(same),
                  "p": res.pvalue, "p_ref": ref.pvalue, "n_run": res.settings["n_run"],
                  "text": res.summary(), "methods": res.methods_text()}))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("keep", ["keep", "sketch"])
def test_exact_test_interrupted_keeps_finished_chunks(sig, keep):
    out = _python(API_EXACT, "exact", "3", sig, keep)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["interrupted"] and 0 < r["n"] < 300_000 and r["n_run"] == r["n"]
    assert r["same"] and r["p"] == r["p_ref"]  # the first n draws, bit for bit
    assert "INTERRUPTED" in r["text"] and "interrupted after" in r["methods"]
    assert "exact test interrupted after" in out.stderr  # the RuntimeWarning


API_POWER = INTERRUPT + """
import json, warnings, vctest
warnings.simplefilter("ignore")
args = dict(term="(1 | Batch)", effect_sizes=[0.0, 1.0], nsim=6, methods=("exact",),
            nsim_exact=10_000, seed=3)
res = vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", **args)
ref = vctest.power("Yield ~ 1 + (1 | Batch)", "Dyestuff", **{**args, "nsim": 3})
print(json.dumps({"interrupted": res.interrupted, "table": res.table.to_dict("records"),
                  "ref": ref.table.to_dict("records"), "settings": res.settings}))
"""


@pytest.mark.parametrize(("where", "after", "sig"), [
    ("power", 4, "SIGINT"),   # after the 4th data set's tests returned: 3 kept
    ("power", 4, "SIGTERM"),
    ("exact", 8, "SIGINT"),   # 2nd chunk of the 4th data set's exact test: not counted
])
def test_power_interrupted_keeps_finished_data_sets(where, after, sig):
    out = _python(API_POWER, where, str(after), sig)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["interrupted"] and r["settings"]["datasets_finished"] == 3
    first, second = r["table"]
    assert first["datasets"] == 3 and second["datasets"] == 0
    assert first["rejections"] == r["ref"][0]["rejections"]  # the same 3 data sets
    assert second["rate"] is None or np.isnan(second["rate"])


def test_external_sigterm_and_sigint_during_an_exact_test():
    """A real signal from another process, sent once two chunks have finished."""
    code = """
        import sys, vctest.nulls.exact as exact
        real = exact.SpectralTask.__call__

        def call(self, a, b):
            out = real(self, a, b)
            print("chunk", a, b, file=sys.stderr, flush=True)
            return out

        exact.SpectralTask.__call__ = call
        exact.CHUNK_SECONDS = 0.05
        from vctest.cli import main
        sys.exit(main(sys.argv[1:]))
    """
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), "test", *DYE,
                                 "--nsim", "50000000", "--threads", "1", "--json"],
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT)
        chunks = 0
        while chunks < 2:
            line = proc.stderr.readline()
            assert line, "the run ended before two chunks"
            chunks += line.startswith("chunk")
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == status, stderr
        payload = json.loads(stdout)
        assert payload["interrupted"] and 0 < payload["nsim"] < 50_000_000


def test_sigterm_handler_is_restored_and_respects_the_applications():
    from vctest._signals import interruptible

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)", nsim=5000,
                   seed=1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with interruptible():
            assert signal.getsignal(signal.SIGTERM) is mine  # left alone
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_long_work_in_a_thread_installs_no_handler():
    """Off the main thread (a Dask worker, a GUI) no signal handler is touched."""
    import threading

    out: dict = {}

    def work():
        try:
            out["p"] = vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff",
                                      term="(1 | Batch)", nsim=2000, seed=1).pvalue
        except Exception as exc:  # signal.signal would raise ValueError in a thread
            out["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in out and 0 < out["p"] < 1


# --- 12: clear errors -----------------------------------------------------------------------


def _sleep(**cols) -> pd.DataFrame:
    d = vctest.datasets.load("sleepstudy").copy()
    for k, f in cols.items():
        d[k] = f(d)
    return d


def _mixed(d: pd.DataFrame) -> pd.Series:
    s = d["Days"].astype(object)
    s.iloc[3] = "three"
    return s


def _separated() -> pd.DataFrame:
    x = np.tile(np.arange(5.0), 12)
    return pd.DataFrame({"y": (x >= 2).astype(float), "x": x,
                         "g": np.repeat(np.arange(12), 5).astype(str)})


def _square() -> pd.DataFrame:
    return pd.DataFrame({"y": np.linspace(0, 1, 12) ** 2, "g": np.repeat(list("abcd"), 3),
                         "f": [f"l{i}" for i in range(12)]})


ERRORS = [
    ("as many fixed-effect columns as rows", "y ~ f + (1 | g)", _square, {},
     r"the fixed-effect part 'f' has 12 columns for 12 observations"),
    ("datetime covariate", "Reaction ~ when + (1 | Subject)",
     lambda: _sleep(when=lambda d: pd.Timestamp("2020-01-01")
                    + pd.to_timedelta(d["Days"], unit="D")), {},
     r"column 'when' .* is a date/time \(datetime64.*\.dt\.days"),
    ("timedelta covariate", "Reaction ~ span + (1 | Subject)",
     lambda: _sleep(span=lambda d: pd.to_timedelta(d["Days"], unit="D")), {},
     r"column 'span' .* is a time span \(timedelta64.*total_seconds"),
    ("numbers and text", "Reaction ~ mix + (1 | Subject)", lambda: _sleep(mix=_mixed), {},
     r"column 'mix' .* mixes numbers and text \(e\.g\. 0\.0 and 'three'\).*pd\.to_numeric"),
    ("separated binomial GLM null", "y ~ x + (1 | g)", _separated,
     {"family": "binomial", "method": "asymptotic"},
     r"the null model 'y ~ x' \(a GLM: no random effects left\) cannot be fitted: .*"
     r"separate the binomial response completely"),
    ("colour codes", "Reaction ~ Days + Days:: + (1 | Subject)", lambda: "sleepstudy", {},
     r"^cannot parse the fixed-effect part 'Days \+ Days::': [^\x1b]*$"),
]


@pytest.mark.parametrize(("case", "formula", "data", "kwargs", "message"), ERRORS,
                         ids=[e[0] for e in ERRORS])
def test_clear_value_errors(case, formula, data, kwargs, message):
    term = formula.split("+ ")[-1]
    with pytest.raises(ValueError, match=message):
        if kwargs:
            vctest.vc_test(formula, data(), term=term, **kwargs)
        else:
            vctest.fit(formula, data())


def test_parquet_without_pyarrow_says_which_extra(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    out = _python("""
        import sys
        sys.modules["pyarrow"] = None          # as if not installed
        sys.modules["fastparquet"] = None
        from vctest.cli import main
        sys.exit(main(sys.argv[1:]))
    """, "fit", str(path), "y ~ 1 + (1 | g)", "--json")
    assert out.returncode == 2
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "ValueError"
    assert "needs pyarrow" in error["message"] and "vctest[parquet]" in error["message"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'parquet = ["pyarrow' in pyproject


class _AllFail:
    """A bootstrap task whose every replicate has a non-finite objective."""

    def __init__(self, task, calls):
        self.task, self.calls = task, calls

    def __getattr__(self, name):
        return getattr(self.task, name)

    def __call__(self, a, b):
        self.calls.append(b - a)
        obj, *rest = self.task(a, b)
        return (np.full_like(obj, np.nan), *rest)


def test_all_failed_replicates_stop_early_with_a_value_error(monkeypatch):
    import vctest.nulls.bootstrap as boot

    calls: list[int] = []
    real = boot.make_task
    monkeypatch.setattr(boot, "make_task", lambda *a, **k: _AllFail(real(*a, **k), calls))
    with pytest.raises(ValueError, match=r"the bootstrap cannot refit the models: stopped "
                       r"after the first \d+ of 100000, all failed \(\{'objective not "
                       r"finite': \d+\}\).*vctest check"):
        vctest.vc_test("Yield ~ 1 + (1 | Batch)", "Dyestuff", term="(1 | Batch)",
                       method="bootstrap", nsim=100_000, seed=1, threads=1)
    assert calls == [16]  # the first batch (16 per thread), not 100000 replicates


def test_cli_json_errors(capsys, monkeypatch):
    assert main(["fit", "sleepstudy", "Reaction ~ Days + Days:: + (1 | Subject)",
                 "--json"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error == {"type": "ValueError", "message": error["message"], "exit_status": 2}
    assert "\x1b" not in error["message"] and captured.err == ""
    assert main(["test", "Dyestuff", "Yield ~ 1 + (1 | Batch)", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "UsageError" and "--term" in error["message"]

    import vctest.api

    def broken(*args, **kwargs):
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(vctest.api, "fit", broken)
    assert main(["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject)", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "RuntimeError" and "VCTEST_TRACEBACK=1" in error["message"]
    assert main(["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject)"]) == 1
    assert capsys.readouterr().err.startswith("vctest: error: RuntimeError: something")


# --- 15: load_result validates ---------------------------------------------------------------


def _set(path: str, value):
    def edit(p: dict) -> None:
        *keys, last = path.split(".")
        for k in keys:
            p = p[k]
        if value is KeyError:
            del p[last]
        else:
            p[last] = value(p[last]) if callable(value) else value
    return edit


TAMPER = [
    ("pvalue", 7.5, "`pvalue` must be between 0 and 1"),
    ("pvalue", "0.5", "`pvalue` must be a finite number"),
    ("pvalue", 0.01, "`pvalue` is 0.01 but the stored null sample gives"),
    ("pvalue", KeyError, "`pvalue` is missing"),
    ("statistic", -1.0, "`statistic` must be between 0"),
    ("statistic", [1.0], "`statistic` must be a finite number"),
    ("n_failed", -3, "`n_failed` must be a non-negative integer"),
    ("n_failed", 1.5, "`n_failed` must be a non-negative integer"),
    ("method", "magic", "`method` must be one of"),
    ("settings", [], "`settings` must be a JSON object"),
    ("seed", "abc", "`seed` must be an integer"),
    ("notes", "text", "`notes` must be a list of text"),
    ("versions", None, "`versions` must be a JSON object"),
    ("asymptotic", {"mixture": 2.0}, "`asymptotic.mixture` must be between 0 and 1"),
    ("failures", {"x": -1}, "`failures.x` must be a non-negative integer"),
    ("pvalue_ci", [0.9, 0.1], "`pvalue_ci` must have its lower bound first"),
    ("nsim", 10, "`nsim` is 10 but the stored null sample has 2000 draws"),
    ("null_distribution.dtype", "|O", "`null_distribution` has an unknown dtype"),
    ("null_distribution.shape", [3], "`null_distribution` must hold 3 values"),
    ("null_distribution.data", lambda d: ["abc", *d[1:]],
     "`null_distribution` holds a value that is not a number: 'abc'"),
    ("null_distribution.data", lambda d: [-1.0, *d[1:]],
     "`null_distribution` must hold finite statistics >= 0"),
    ("null_distribution", None, "`null_distribution` is missing for a exact result"),
    ("format_version", "x", "`format_version` must be an integer"),
]


@pytest.mark.parametrize(("field", "value", "message"), TAMPER,
                         ids=[f"{t[0]}={t[1]!r}"[:40] for t in TAMPER])
def test_tampered_files_raise_the_documented_value_error(saved, tmp_path, field, value,
                                                         message):
    payload = json.loads(saved.read_text())
    _set(field, value)(payload)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="is not a valid vctest result: " + _esc(message)):
        vctest.load_result(path)


def _esc(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("replicates.failure.data", lambda d: [9, *d[1:]], "`replicates.failure` must hold codes"),
    ("replicates.status.shape", lambda s: [s[0] - 1, s[1]], "`replicates.status` must hold"),
    ("n_failed", 5, "`n_failed` is 5 but the replicate record has 0 failed replicates"),
])
def test_tampered_bootstrap_records(saved_boot, tmp_path, field, value, message):
    payload = json.loads(saved_boot.read_text())
    _set(field, value)(payload)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=_esc(message)):
        vctest.load_result(path)


JUNK = [None, "x", -1, 7.5, True, [], {}, [1, "a"], {"dtype": "<f8"}]


def test_any_junk_in_any_field_is_a_value_error_or_loads(saved, saved_boot, tmp_path):
    """Replace each field, in turn, by each kind of junk: never KeyError/TypeError/..."""
    path = tmp_path / "j.json"
    other = 0
    for source in (saved, saved_boot):
        base = json.loads(source.read_text())
        for key in base:
            for junk in JUNK:
                payload = copy.deepcopy(base)
                payload[key] = junk
                path.write_text(json.dumps(payload))
                try:
                    vctest.load_result(path)
                except ValueError:
                    pass
                except Exception as exc:  # the failure this test is for
                    pytest.fail(f"{key}={junk!r}: {type(exc).__name__}: {exc}")
                else:
                    other += 1
    assert other < len(JUNK) * 20  # most junk is refused (a few keys are free text)


# --- 16: python -m vctest -----------------------------------------------------------------


def test_python_dash_m_vctest():
    out = subprocess.run([sys.executable, "-m", "vctest", "--version"], env=_env(),
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("vctest ")
    out = subprocess.run([sys.executable, "-m", "vctest", "fit", "Dyestuff",
                          "Yield ~ 1 + (1 | Batch)", "--json"], env=_env(),
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["objective"] == pytest.approx(319.6543, abs=1e-3)

