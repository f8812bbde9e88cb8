"""``python -m gateway shadow-report``: print a report, or gate a pipeline with ``--check``.

Store URL: ``--store``, else ``SHADOW_STORE``, else the routes file's ``shadow_store``
(``--routes``, default ``routes.yaml`` when present), else ``sqlite:///var/shadow.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, load_config
from gateway.shadow.report import (
    DEFAULT_MIN_MATCH,
    DEFAULT_MIN_SAMPLES,
    FORMATS,
    build_report,
    render,
)
from gateway.shadow.sql_store import SqlShadowStore
from gateway.shadow.stats import RouteStats
from gateway.shadow.store import DEFAULT_STORE_URL, store_from_url

__all__ = ["add_arguments", "resolve_store_url", "run", "shadow_report_main"]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be within 0..1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``shadow-report`` options, for a sub-parser in gateway/cli.py or a standalone one."""
    parser.add_argument("--route", help="only this route (reported even without data)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--store", help="sqlite:///path, postgresql://... or redis://...")
    parser.add_argument("--routes", type=Path, help="routes.yaml to take shadow_store from")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless every reported route is ready",
    )
    parser.add_argument("--min-samples", type=_count, default=DEFAULT_MIN_SAMPLES)
    parser.add_argument("--min-match", type=_fraction, default=DEFAULT_MIN_MATCH)


def resolve_store_url(
    store: str | None, routes: Path | None, env: Mapping[str, str] | None = None
) -> str:
    """The store URL by precedence; raises ConfigError for an invalid routes file."""
    env = os.environ if env is None else env
    if store:
        return store
    if env.get("SHADOW_STORE"):
        return env["SHADOW_STORE"]
    if routes is None and Path("routes.yaml").is_file():
        routes = Path("routes.yaml")
    if routes is not None:
        return load_config(routes, env=env).shadow_store
    return DEFAULT_STORE_URL


async def _load(url: str, route: str | None) -> list[RouteStats]:
    store = store_from_url(url)
    if isinstance(store, SqlShadowStore) and not store.exists:
        return []  # don't create an empty database just to report on it
    await store.start()
    try:
        return await store.load(route)
    finally:
        await store.close()


def shadow_report_main(argv: Sequence[str] | None = None) -> int:
    """Run ``shadow-report``; returns the exit code (1 under --check unless all ready, 2 on errors)."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway shadow-report", description="Shadow traffic comparison report."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run with already parsed arguments (what gateway/cli.py's sub-command calls)."""
    try:
        url = resolve_store_url(args.store, args.routes)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"shadow-report: cannot read {args.routes}: {exc}", file=sys.stderr)
        return 2
    try:
        stats = asyncio.run(_load(url, args.route))
    except Exception as exc:
        print(f"shadow-report: cannot read the shadow store: {exc}", file=sys.stderr)
        return 2
    report: dict[str, Any] = build_report(
        stats, min_samples=args.min_samples, min_match=args.min_match, route=args.route
    )
    sys.stdout.write(render(report, args.format))
    if args.check:
        routes = report["routes"]
        if not routes:
            print("shadow-report --check: no shadowed routes have data", file=sys.stderr)
            return 1
        return 0 if all(r["verdict"] == "ready" for r in routes) else 1
    return 0


if __name__ == "__main__":  # python -m gateway.shadow.cli, before the sub-command is wired
    sys.exit(shadow_report_main())
