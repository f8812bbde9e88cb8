"""The CLI: `serve` (default) and `sync [--restart | --follow [--consumer N] | --check [--settle D]]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from extracted.orders.bootstrap import backfill_before_serving, build_app
from extracted.orders.config import Settings
from extracted.orders.entrypoints.sync import main_sync, parse_duration

_SYNC_HELP = """\
Without options: the backfill. Copy the legacy's existing orders through its HTTP API
(GET /api/orders, pages of ORDERS_BACKFILL_PAGE=500), preserving ids and merging by the
status lattice (insert missing orders, cancelled wins, nothing regresses). Progress is kept
in the `sync_state` table: an interrupted run resumes where it stopped, a finished one does
nothing. Exit 2 when the legacy cannot be read.

--follow: the event consumer (group "orders"): create the group, finish the backfill if
needed, then apply the legacy's order.placed/order.cancelled events from the bus (REDIS_URL,
else EVENTS_DB) as they come. No polling; restart it any time.

--check: compare our orders with the legacy's, and I2 (reservations = placed orders) on
both sides (inventory service at INVENTORY_URL, the legacy at LEGACY_URL), looking again
until clean or --settle is over. Exit 0 clean (changes still propagating are lag, not
drift), 1 drift (every offending record is printed), 2 legacy or inventory unreachable.
"""


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m extracted.orders",
        description="The extracted orders service (SPEC §3).",
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser(
        "serve",
        help="serve the orders HTTP API (the default); listens only once the backfill is done",
        description="Finish the backfill from the legacy (retrying while it is down), then "
        "serve the orders API.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8101)
    sync = sub.add_parser(
        "sync",
        help="backfill from the legacy; --follow consume its events; --check compare",
        description=_SYNC_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = sync.add_mutually_exclusive_group()
    mode.add_argument(
        "--follow", action="store_true", help="consume the legacy's order events forever"
    )
    mode.add_argument(
        "--check", action="store_true", help="print differences and I2 breaches; exit 0/1/2"
    )
    mode.add_argument(
        "--restart", action="store_true", help="forget backfill progress and copy every page again"
    )
    sync.add_argument(
        "--settle",
        type=_duration,
        default=10.0,
        metavar="DURATION",
        help="with --check: how long a difference may last before it counts (default 10s)",
    )
    sync.add_argument(
        "--consumer",
        default=None,
        help="with --follow: consumer name in the group (default <hostname>-<pid>)",
    )
    return parser


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (no Windows wheels)
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(host: str, port: int) -> int:
    """Backfill, then serve until SIGINT/SIGTERM."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    settings = Settings.from_env()
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(backfill_before_serving(settings))
    except KeyboardInterrupt:
        loop.close()
        return 0
    app = build_app(settings)
    web.run_app(app, host=host, port=port, loop=loop, print=None, access_log=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command; `serve` when none is named."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args.insert(0, "serve")
    ns = _parser().parse_args(args)
    if ns.command == "sync":
        return main_sync(
            follow=ns.follow,
            check=ns.check,
            settle=ns.settle,
            restart=ns.restart,
            consumer=ns.consumer,
        )
    return serve(ns.host, ns.port)
