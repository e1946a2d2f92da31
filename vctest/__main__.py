"""``python -m vctest``: the same command line as the ``vctest`` script."""

import sys

from vctest.cli import main

if __name__ == "__main__":
    sys.exit(main())
