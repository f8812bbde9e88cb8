"""``python -m bench.dataflow``."""

import sys

from bench.dataflow.main import main

if __name__ == "__main__":
    sys.exit(main())
