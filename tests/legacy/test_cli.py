"""The ``python -m legacy_monolith`` command line."""

from __future__ import annotations

from legacy_monolith.cli import build_parser, gunicorn_argv
from tests.support import procs


def test_serve_execs_gunicorn_gthread_on_the_wsgi_app() -> None:
    args = build_parser().parse_args(
        ["serve", "--host", "127.0.0.1", "--port", "8123", "--workers", "3"]
    )
    argv = gunicorn_argv(args)
    assert argv[1:3] == ["-m", "gunicorn"] and argv[-1] == "legacy_monolith.wsgi:app"
    joined = " ".join(argv)
    assert "--worker-class gthread" in joined and "--workers 3" in joined
    assert "--bind 127.0.0.1:8123" in joined


def test_serve_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8000, 2)


def test_consume_is_dispatched_to_the_consumer() -> None:
    result = procs.run_cli(["-m", "legacy_monolith", "consume", "--help"], timeout=30)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_unknown_command_fails() -> None:
    result = procs.run_cli(["-m", "legacy_monolith", "frobnicate"], timeout=30)
    assert result.returncode == 2 and "invalid choice" in result.stderr
