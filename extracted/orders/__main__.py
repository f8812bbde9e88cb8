"""`python -m extracted.orders [serve|sync] ...`."""

import sys

from extracted.orders.entrypoints.cli import main

sys.exit(main())
