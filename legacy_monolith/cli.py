"""The legacy's command line: ``seed``, ``serve`` (gunicorn) and ``consume`` (event consumer)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from extracted.stock_authority import stock_authority
from legacy_monolith.db import Database, create_schema, database_url_from_env, make_engine

__all__ = ["build_parser", "gunicorn_argv", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m legacy_monolith", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    seed = sub.add_parser("seed", help="insert the deterministic demo data (idempotent)")
    seed.add_argument(
        "--database-url", help="default: $LEGACY_DATABASE_URL or sqlite:///var/legacy.db"
    )

    serve = sub.add_parser("serve", help="serve the monolith with gunicorn (gthread workers)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=4, help="threads per worker")
    serve.add_argument(
        "--database-url", help="default: $LEGACY_DATABASE_URL or sqlite:///var/legacy.db"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request to stdout")

    # Parsed by the consumer itself; listed here for --help.
    sub.add_parser(
        "consume", help="apply the new services' events to the legacy tables", add_help=False
    )
    return parser


def gunicorn_argv(args: argparse.Namespace) -> list[str]:
    """The gunicorn command line that `serve` execs."""
    argv = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "gthread",
        "--workers", str(args.workers),
        "--threads", str(args.threads),
        "--bind", f"{args.host}:{args.port}",
        # Idle keep-alive connections wait in the worker's poller, not on a thread, so the
        # gateway's connection pool can reuse them.
        "--keep-alive", "30",
        "--graceful-timeout", "10",
        "--timeout", "60",
        "--log-level", "info",
    ]  # fmt: skip
    if args.access_log:
        argv += ["--access-logfile", "-"]
    return [*argv, "legacy_monolith.wsgi:app"]


def _seed(args: argparse.Namespace) -> int:
    from legacy_monolith.seed import seed

    db = Database(args.database_url or database_url_from_env())
    try:
        print(seed(db))
    finally:
        db.dispose()
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        stock_authority()  # a wrong value stops here, not at the first order
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    if args.database_url:
        os.environ["LEGACY_DATABASE_URL"] = args.database_url
    # Tables exist before any worker starts, so workers never race to create them.
    engine = make_engine(database_url_from_env())
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    argv = gunicorn_argv(args)
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "consume":
        # The consumer is its own module (and its own argument parser); import it only now.
        from legacy_monolith.consumer import main as consume

        result = consume(args_list[1:])
        return int(result or 0)
    args = build_parser().parse_args(args_list)
    if args.command == "seed":
        return _seed(args)
    return _serve(args)
