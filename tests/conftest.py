"""Suite-wide settings.

``VCTEST_QUIET_COMPILE=1``: no "vctest is compiling its numerical kernels"
notice (a warning, which the suite's ``filterwarnings = error`` would turn into
a failure) on a cold cache, here or in the subprocesses the tests start.
"""

import os

os.environ.setdefault("VCTEST_QUIET_COMPILE", "1")
