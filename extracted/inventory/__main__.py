"""`python -m extracted.inventory [serve|sync|handoff] ...`: argparse lives in entrypoints.cli."""

from extracted.inventory.entrypoints.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
