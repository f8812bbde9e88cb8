"""`python -m extracted.inventory serve|sync|handoff`: serve the API, keep the copy, check it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from typing import Any, Protocol, cast

import httpx
import sqlalchemy as sa
from redis.exceptions import RedisError, ResponseError

from extracted.events import bus_from_env
from extracted.inventory import bootstrap
from extracted.inventory.adapters.api_reader import ApiReader, UnexpectedAnswer
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.config import legacy_url_from_env, orders_url_from_env
from extracted.inventory.entrypoints.follow import DEFAULT_CONSUMER, GROUP, Backoff
from extracted.inventory.service.backfill import BackfillResult, backfill
from extracted.inventory.service.check import check_round, handoff_problems, settle
from extracted.stock_authority import AUTHORITIES, Authority, stock_authority

log = logging.getLogger("extracted.inventory")

# The legacy or the database not answering (or answering garbage): retried, or exit 2.
UNAVAILABLE = (httpx.HTTPError, UnexpectedAnswer, sa.exc.DBAPIError)
LEGACY_GROUP = "legacy"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def duration(raw: str) -> float:
    """`10s`, `500ms`, `2m` or plain seconds, as seconds."""
    match = _DURATION.match(raw.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r} (try 10s, 500ms, 2m)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def build_parser() -> argparse.ArgumentParser:
    """The command line: `serve` (default), `sync`, `handoff`."""
    parser = argparse.ArgumentParser(prog="python -m extracted.inventory")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="backfill if needed, then serve the HTTP API (default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8102)
    sync = sub.add_parser("sync", help="backfill from the legacy's API; follow or check")
    mode = sync.add_mutually_exclusive_group()
    mode.add_argument(
        "--follow", action="store_true", help="then apply the legacy's stock events from the bus"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="compare both copies and I1/I2 on both sides; exit 1 on drift, 2 if unreachable",
    )
    sync.add_argument(
        "--settle", type=duration, default=10.0, help="how long differences may be lag (10s)"
    )
    sync.add_argument("--consumer", default=DEFAULT_CONSUMER, help="consumer name on the bus")
    handoff = sub.add_parser(
        "handoff", help="the precondition for switching STOCK_AUTHORITY, and the steps"
    )
    handoff.add_argument("--to", required=True, choices=AUTHORITIES)
    handoff.add_argument(
        "--check", action="store_true", help="verify it now: exit 0 ready, 1 not, 2 unreachable"
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
    try:
        authority = stock_authority()
    except ValueError as exc:  # two writers of stock must never start: refuse
        print(f"inventory: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.command == "sync":
        return _sync(args, authority)
    if args.command == "handoff":
        return _handoff(args, authority)
    return serve(getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8102), authority)


# --- backfill ---------------------------------------------------------------------------------


def _log_page(result: BackfillResult, total: int) -> None:
    log.info(
        "backfill: %d/%d items read (%s)", result.progress.position, total, result.counts.summary()
    )


def backfill_once(db: Database, legacy_url: str) -> BackfillResult:
    """Run or resume the backfill to its end; raises UNAVAILABLE errors."""
    db.ensure_schema()
    with ApiReader(legacy_url) as legacy:
        return backfill(legacy, uow_factory(db), on_page=_log_page)


def backfill_until_complete(db: Database, legacy_url: str, stop: threading.Event) -> bool:
    """The backfill, retried with backoff while the legacy or the database is down.

    True once complete; False when `stop` was set first.
    """
    backoff = Backoff(0.5, 5.0)
    while not stop.is_set():
        try:
            result = backfill_once(db, legacy_url)
        except UNAVAILABLE as exc:
            delay = backoff.next()
            log.warning(
                "backfill: waiting for the legacy/database (%s); retry in %.1fs", _short(exc), delay
            )
            stop.wait(delay)
            continue
        if not result.already_complete:
            log.info("backfill complete: %s", result.counts.summary())
        return True
    return False


def _short(exc: BaseException) -> str:
    """The first line of an error (SQLAlchemy's carry the statement and its parameters)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# --- serve ------------------------------------------------------------------------------------


def serve(host: str, port: int, authority: Authority) -> int:
    """Backfill (waiting for the legacy), then serve until SIGTERM/SIGINT, on uvloop."""
    db = bootstrap.open_database()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _SIGNALS}
    try:
        # Never answer from data that is not there yet: no listening socket before this.
        if not backfill_until_complete(db, legacy_url_from_env(), stop):
            return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_serve(db, host, port, authority))
    else:
        uvloop.run(_serve(db, host, port, authority))
    return 0


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _serve(db: Database, host: str, port: int, authority: Authority) -> None:
    # Imported here: `sync` does not need the web stack.
    from aiohttp import web

    runner = web.AppRunner(bootstrap.build_app(db, authority=authority))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("inventory serving on http://%s:%d (stock authority: %s)", host, port, authority)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # stops accepting, finishes in-flight requests, then cleanup_ctx


# --- sync -------------------------------------------------------------------------------------


def _sync(args: argparse.Namespace, authority: Authority) -> int:
    legacy_url = legacy_url_from_env()
    db = bootstrap.open_database()
    try:
        if args.follow:
            return asyncio.run(follow(db, legacy_url, authority, args.consumer))
        if args.check:
            return check(db, legacy_url, orders_url_from_env(), args.settle)
        result = backfill_once(db, legacy_url)
    except UNAVAILABLE as exc:
        # Exit 2, not 1: for --check, 1 means "the copies differ".
        print(f"sync: failed: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        db.dispose()
    if result.already_complete:
        print("sync: backfill already complete; the event stream keeps the copy", flush=True)
    else:
        print(f"sync: backfill complete: {result.counts.summary()}", flush=True)
    return 0


async def follow(db: Database, legacy_url: str, authority: Authority, consumer: str) -> int:
    """Group first, backfill, then consume until SIGTERM/SIGINT (see entrypoints.follow)."""
    follower = bootstrap.follower(db, authority, consumer)
    stop_backfill = threading.Event()

    async def run() -> None:
        backoff = Backoff()
        while True:
            try:
                await follower.ensure_group()
                break
            except Exception as exc:
                delay = backoff.next()
                log.warning("event bus unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        await asyncio.to_thread(backfill_until_complete, db, legacy_url, stop_backfill)
        log.info("following group %r as %r (stock authority: %s)", GROUP, consumer, authority)
        await follower.run()

    task = asyncio.create_task(run(), name="inventory-follow")
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        stop_backfill.set()
        await follower.bus.close()
    return 0


def _orders_of(url: str) -> list[dict[str, Any]] | None:
    """The orders service's orders, or None (noted) when it does not answer now."""
    try:
        with ApiReader(url, timeout=5.0) as reader:
            return reader.orders()
    except (httpx.HTTPError, UnexpectedAnswer) as exc:
        log.info("orders service at %s not asked (%s): the legacy's orders are used", url, exc)
        return None


def check(db: Database, legacy_url: str, orders_url: str, seconds: float) -> int:
    """Compare both copies and I1/I2 on both sides until clean or `seconds` passed.

    Exit 0 clean (or only changes in flight: lag is never drift), 1 drift, 2 unreachable.
    """
    db.ensure_schema()
    with ApiReader(legacy_url) as legacy:
        verdict = settle(
            lambda: check_round(legacy, uow_factory(db), lambda: _orders_of(orders_url)), seconds
        )
    if verdict.clean:
        print(f"check: copies identical, I1/I2 hold on both sides ({verdict.rounds} round(s))")
        return 0
    for line in verdict.drift:
        print(line)
    for line in verdict.in_flight:
        print(f"in flight: {line}")
    if verdict.drift:
        print(f"check: {len(verdict.drift)} record(s) differ after {seconds:g}s", flush=True)
        return 1
    print(
        f"check: {len(verdict.in_flight)} record(s) still changing after {seconds:g}s "
        "(lag, not drift)",
        flush=True,
    )
    return 0


# --- handoff ----------------------------------------------------------------------------------


class _PendingCounter(Protocol):
    async def pending_count(self, group: str) -> int: ...


async def _pending(groups: Sequence[str]) -> dict[str, int]:
    # Both buses count pending entries; the EventBus port does not promise it.
    bus = bus_from_env()
    counter = cast(_PendingCounter, bus)
    try:
        counts = {}
        for group in groups:
            try:
                counts[group] = await counter.pending_count(group)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):  # a group that never read holds nothing
                    raise
                counts[group] = 0
        return counts
    finally:
        await bus.close()


def _unpublished(db: Database) -> int:
    with db.engine.connect() as conn:
        query = (
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
        return int(conn.execute(query).scalar_one())


def handoff_steps(to: Authority) -> list[str]:
    """The switch-over procedure, as printed by `handoff` (docs/data-flow.md has it too)."""
    old = "legacy" if to == "inventory" else "inventory"
    return [
        f"1. Stop stock writes everywhere: stop the gateway (clients get connection errors and "
        f"retry) or point every stock-writing route (POST /api/orders, cancel, reservations, "
        f"restock) at a maintenance answer. Keep every consumer and relay running "
        f"(legacy-consumer, inventory-sync, orders-sync, and the {old}'s outbox relay).",
        f"2. Wait until `python -m extracted.inventory handoff --to {to} --check` exits 0: both "
        f"copies identical, the inventory outbox relayed, no unacked events in the 'legacy' or "
        f"'inventory' groups"
        + (", no mirrored write awaiting its event." if to == "inventory" else "."),
        f"3. Set STOCK_AUTHORITY={to} for EVERY process of the deployment (legacy, "
        f"legacy-consumer, inventory, inventory-sync, orders, orders-sync) and restart them all "
        f"while writes are still stopped; no process may keep STOCK_AUTHORITY={old}.",
        "4. Check again: `python -m extracted.inventory sync --check` exits 0.",
        f"5. Reopen stock writes (start the gateway). The {to} now decides availability and "
        f"continues each item's version from the one it holds; the {old} keeps a read copy "
        f"from the {to}'s inventory.changed events.",
        f"Rollback: the same steps with --to {old}.",
    ]


def _handoff(args: argparse.Namespace, authority: Authority) -> int:
    to: Authority = args.to
    if authority == to:
        print(f"handoff: STOCK_AUTHORITY is already {to} for this process")
    if not args.check:
        print(f"handoff --to {to} --check would verify that:")
        print("  - every item (name, price_cents, on_hand) and every reservation is identical")
        print("    in this service's database and in the legacy's HTTP API (LEGACY_URL);")
        print("  - this service's outbox has no unpublished row;")
        print(f"  - the event bus groups {LEGACY_GROUP!r} and {GROUP!r} have no pending entries;")
        if to == "inventory":
            print("  - no forwarded write mirrored here still awaits its event (floor > version).")
        print("Switch-over steps:")
        for step in handoff_steps(to):
            print(f"  {step}")
        return 0
    db = bootstrap.open_database()
    try:
        db.ensure_schema()
        pending = asyncio.run(_pending([LEGACY_GROUP, GROUP]))
        with ApiReader(legacy_url_from_env()) as legacy:
            problems = handoff_problems(to, legacy, uow_factory(db), _unpublished(db), pending)
    except (*UNAVAILABLE, OSError, RedisError, sqlite3.Error) as exc:
        print(f"handoff: cannot check: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        db.dispose()
    for problem in problems:
        print(problem)
    if problems:
        print(f"handoff: NOT ready to switch STOCK_AUTHORITY to {to} ({len(problems)} problem(s))")
        return 1
    print(f"handoff: ready to switch STOCK_AUTHORITY to {to}")
    return 0
