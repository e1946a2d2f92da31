"""Suite-wide settings and fixtures.

``VCTEST_QUIET_COMPILE=1``: no "vctest is compiling its numerical kernels"
notice (a warning, which the suite's ``filterwarnings = error`` would turn into
a failure) on a cold cache, here or in the subprocesses the tests start.
"""

import os

import pytest

os.environ.setdefault("VCTEST_QUIET_COMPILE", "1")


@pytest.fixture(scope="module")
def client():
    """A two-worker Dask cluster on this machine (any free dashboard port)."""
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
