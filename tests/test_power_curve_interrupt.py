"""Ctrl-C and SIGTERM during ``power_curve()`` keep the data sets that finished.

The run is in a subprocess that sends itself the signal after the third chunk of
data sets; the finished ones must equal an uninterrupted run's.
"""

import json

import pytest

from .subprocess_run import run_python as _python

API_POWER_CURVE = """
import importlib, json, os, signal, sys, warnings
import numpy as np
import vctest
pc_module = importlib.import_module("vctest.api.power_curve")
SIG = getattr(signal, sys.argv[1])
warnings.simplefilter("ignore")
model = vctest.make_model("y ~ 1 + (1 | g)", vctest.design_frame({"g": 6, "rep": 4}),
                          fixef=[3.0], varcorr={"g": 2.0}, sigma=2.0)
args = dict(term="(1 | g)", along="g", sizes=[6, 8], nsim=2 * pc_module.LOCAL_CHUNK,
            methods=["exact", "naive"], seed=11, threads=1)
real_advance = pc_module._advance
calls = [0]


def advance(state, progress, step, total):
    real_advance(state, progress, step, total)
    calls[0] += 1
    if calls[0] == 3:  # after the first size's two chunks and the second size's first
        os.kill(os.getpid(), SIG)


pc_module._advance = advance
res = vctest.power_curve(model, **args)
pc_module._advance = real_advance
ref = vctest.power_curve(model, **args)
print(json.dumps({"interrupted": res.interrupted, "settings": res.settings,
                  "table": res.table.to_dict("records"), "ref": ref.table.to_dict("records"),
                  "stat": [np.nan_to_num(res.statistics[s], nan=-1).tolist() for s in (6, 8)],
                  "ref_stat": [ref.statistics[s].tolist() for s in (6, 8)]}))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_power_curve_interrupted_keeps_finished_data_sets(sig):
    out = _python(API_POWER_CURVE, sig)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    chunk = len(r["ref_stat"][0]) // 2
    assert r["interrupted"] and r["settings"]["datasets_finished"] == 3 * chunk
    # the first size complete and equal to the uninterrupted run; the second: its first chunk
    assert r["stat"][0] == r["ref_stat"][0]
    assert r["stat"][1][:chunk] == r["ref_stat"][1][:chunk]
    assert all(v == -1 for v in r["stat"][1][chunk:])
    rows = {(t["size"], t["method"]): t for t in r["table"]}
    ref = {(t["size"], t["method"]): t for t in r["ref"]}
    for method in ("exact", "naive"):
        assert rows[(6, method)]["rejections"] == ref[(6, method)]["rejections"]
        assert rows[(6, method)]["datasets"] == 2 * chunk
        assert rows[(8, method)]["datasets"] == chunk
