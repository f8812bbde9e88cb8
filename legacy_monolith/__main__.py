"""``python -m legacy_monolith seed|serve|consume``."""

import sys

from legacy_monolith.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
