"""`python -m extracted.inventory [serve|sync]`: serve the API, or copy/compare the legacy's data."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

import httpx
import sqlalchemy as sa

from extracted.inventory.adapters.database import Database, database_url_from_env
from extracted.inventory.adapters.legacy_client import LegacyError, LegacyInventoryClient
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.service.sync import check_drift, sync_once

log = logging.getLogger("extracted.inventory")

DEFAULT_LEGACY_URL = "http://127.0.0.1:8000"
# The legacy or the database not answering (or answering garbage): retried by --follow.
UNAVAILABLE = (httpx.HTTPError, LegacyError, sa.exc.DBAPIError)


def build_parser() -> argparse.ArgumentParser:
    """The command line: `serve` (default) and `sync`."""
    parser = argparse.ArgumentParser(prog="python -m extracted.inventory")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the HTTP API (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8102)
    sync = sub.add_parser("sync", help="copy items and reservations from the legacy's API")
    sync.add_argument("--follow", action="store_true", help="keep polling for changes")
    sync.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    sync.add_argument(
        "--check", action="store_true", help="print records that differ; exit 1 if any"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    args = build_parser().parse_args(argv)
    if args.command == "sync":
        legacy_url = os.environ.get("LEGACY_URL") or DEFAULT_LEGACY_URL
        db = Database(database_url_from_env())
        try:
            if args.follow and not args.check:
                return follow(db, legacy_url, args.interval)
            return check(db, legacy_url) if args.check else sync(db, legacy_url)
        except UNAVAILABLE as exc:
            # Exit 2, not 1: for --check, 1 means "the copies differ".
            print(f"sync: failed: {exc}", file=sys.stderr, flush=True)
            return 2
        finally:
            db.dispose()
    host = getattr(args, "host", "127.0.0.1")
    port = getattr(args, "port", 8102)
    return serve(host, port)


def serve(host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_serve(host, port))
    else:
        uvloop.run(_serve(host, port))
    return 0


async def _serve(host: str, port: int) -> None:
    # Imported here: `sync` does not need the web stack.
    from aiohttp import web

    from extracted.inventory.entrypoints.api import create_app

    runner = web.AppRunner(create_app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("inventory serving on http://%s:%d", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # stops accepting, finishes in-flight requests, then cleanup_ctx


def sync(db: Database, legacy_url: str) -> int:
    """One copy run; prints the counts."""
    db.ensure_schema()
    with LegacyInventoryClient(legacy_url) as legacy:
        counts = sync_once(legacy, uow_factory(db))
    print(f"sync: {counts.summary()}", flush=True)
    return 0


def follow(db: Database, legacy_url: str, interval: float) -> int:
    """Sync every `interval` seconds until SIGTERM/SIGINT; outages are logged, never fatal."""
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last_skipped = 0
    with LegacyInventoryClient(legacy_url) as legacy:
        while not stopping:
            try:
                db.ensure_schema()
                counts = sync_once(legacy, uow_factory(db))
                # Only news is printed: changes, or a different number of pending records.
                if counts.changed or counts.skipped != last_skipped:
                    print(f"sync: {counts.summary()}", flush=True)
                last_skipped = counts.skipped
            except UNAVAILABLE as exc:
                log.warning("sync failed, retrying in %.1fs: %s", interval, exc)
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
    return 0


def check(db: Database, legacy_url: str) -> int:
    """Print every record whose two copies differ; 1 if any, 0 if none."""
    db.ensure_schema()
    with LegacyInventoryClient(legacy_url) as legacy:
        drifts = check_drift(legacy, uow_factory(db))
    for drift in drifts:
        print(drift.line())
    print(f"check: {len(drifts)} record(s) differ", flush=True)
    return 1 if drifts else 0
