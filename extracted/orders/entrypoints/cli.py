"""The CLI: `serve` (default) and `sync [--follow] [--interval S] [--check]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from extracted.orders.bootstrap import build_app
from extracted.orders.config import Settings
from extracted.orders.entrypoints.sync import main_sync


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m extracted.orders")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the orders HTTP API (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8101)
    sync = sub.add_parser("sync", help="copy orders from the legacy's HTTP API")
    sync.add_argument("--follow", action="store_true", help="keep polling for changes")
    sync.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    sync.add_argument("--check", action="store_true", help="print differences, exit 1 if any")
    return parser


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (no Windows wheels)
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(host: str, port: int) -> int:
    """Serve until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    app = build_app(Settings.from_env())
    web.run_app(app, host=host, port=port, loop=_new_loop(), print=None, access_log=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command; `serve` when none is named."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args.insert(0, "serve")
    ns = _parser().parse_args(args)
    if ns.command == "sync":
        return main_sync(ns.follow, ns.interval, ns.check)
    return serve(ns.host, ns.port)
