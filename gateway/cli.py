"""Command line: `serve`, `check` and `explain` (SPEC §4.9). `__main__` only calls `main()`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from gateway.config import Config, ConfigError, load_config
from gateway.paths import BadPath, normalise
from gateway.settings import Settings, add_arguments
from gateway.shadow import cli as shadow_cli
from gateway.table import CompiledRoute, RouteTable

__all__ = ["explain_json", "main"]


def explain_json(table: RouteTable, method: str, path: str) -> dict[str, Any]:
    """`{"route", "upstream", "reason", ...}` for a raw request path; raises BadPath.

    `upstream` is the route's upstream, or for a split route its upstreams joined by ","
    (the weights are under `split`). Shared by `explain --json` and admin `/-/explain`.
    """
    normalised = normalise(path)
    method = method.upper()
    found = table.explain(method, normalised)
    route = found.route
    return {
        "route": route.name,
        "upstream": _upstream_text(route),
        "reason": found.reason,
        "method": method,
        "path": normalised,
        "upstream_path": found.upstream_path,
        "params": found.params,
        "split": dict(route.split) if route.split else None,
        "fallback": route.fallback,
        "shadow": route.shadow.upstream if route.shadow else None,
    }


def _upstream_text(route: CompiledRoute) -> str:
    if route.split:
        return ",".join(name for name, _ in route.split)
    return route.upstream or ""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = {
        "check": _check,
        "explain": _explain,
        "serve": _serve,
        "shadow-report": shadow_cli.run,
    }[args.command]
    return int(handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="validate a routes.yaml and summarise it")
    check.add_argument("routes", type=Path)

    explain = sub.add_parser("explain", help="say which route serves a request, and why")
    explain.add_argument("routes", type=Path)
    explain.add_argument("method")
    explain.add_argument("path")
    explain.add_argument("--json", action="store_true", help="print JSON like admin /-/explain")

    serve = sub.add_parser("serve", help="run the gateway")
    add_arguments(serve)
    report = sub.add_parser(
        "shadow-report", help="shadow comparison report per route, with a ready/not-ready verdict"
    )
    shadow_cli.add_arguments(report)
    return parser


def _load(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        print(f"{path}: {len(exc.errors)} error(s)", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    config = _load(args.routes)
    if config is None:
        return 1
    table = RouteTable.compile(config)
    print(summary(table))
    return 0


def summary(table: RouteTable) -> str:
    """A one-screen text summary of a compiled table (used by `check`)."""
    config = table.config
    out = [f"{config.source}: OK  hash {config.hash[:12]}"]
    out.append(f"upstreams ({len(config.upstreams)}):")
    width = max(len(n) for n in config.upstreams)
    for name, upstream in config.upstreams.items():
        out.append(f"  {name:<{width}}  {upstream.url}")
    out.append(f"routes ({len(table.routes)}):")
    if table.routes:
        nwidth = max(len(r.name) for r in table.routes)
        pwidth = max(len(r.path) + (8 if r.exact else 0) for r in table.routes)
        for r in table.routes:
            path = f"{r.path} (exact)" if r.exact else r.path
            methods = ",".join(sorted(r.methods)) if r.methods is not None else "*"
            out.append(
                f"  {r.name:<{nwidth}}  {path:<{pwidth}}  {methods:<9} {r.mode:<14} {_targets(r)}"
            )
    d = table.default
    out.append(f"default: -> {d.upstream}  timeout {d.timeout:g}s")
    out.append(f"shadow store: {config.shadow_store}")
    return "\n".join(out)


def _targets(route: CompiledRoute) -> str:
    if route.split:
        target = " ".join(f"{name}:{weight}" for name, weight in route.split)
        if route.sticky:
            target += f" (sticky {route.sticky})"
    else:
        target = f"-> {route.upstream}"
    if route.rewrite:
        target += f" rewrite {route.rewrite}"
    if route.fallback:
        target += f" fallback {route.fallback}"
    if route.shadow:
        target += f" shadow {route.shadow.upstream} {route.shadow.sample:.0%}"
    if route.idempotency:
        idem = route.idempotency
        target += f" idempotency {idem.header} {','.join(idem.methods)} ttl {idem.ttl:g}s"
    return target


def _explain(args: argparse.Namespace) -> int:
    config = _load(args.routes)
    if config is None:
        return 1
    table = RouteTable.compile(config)
    try:
        result = explain_json(table, args.method, args.path)
    except BadPath as exc:
        print(f"bad path {args.path!r}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    route = table.by_name[result["route"]]
    print(f"{result['method']} {result['path']} -> route {route.name}")
    if route.split:
        print("  upstreams: " + ", ".join(f"{n} (weight {w})" for n, w in route.split))
        if route.sticky:
            print(f"  sticky on header {route.sticky}")
    else:
        print(f"  upstream: {route.upstream}")
    if route.fallback:
        print(f"  fallback: {route.fallback}")
    if route.shadow:
        print(f"  shadow: {route.shadow.upstream} (sample {route.shadow.sample:g})")
    if route.idempotency:
        idem = route.idempotency
        print(
            f"  idempotency: {idem.header} on {', '.join(idem.methods)}, answers kept {idem.ttl:g}s"
        )
    print(f"  upstream path: {result['upstream_path']}")
    if result["params"]:
        print("  params: " + ", ".join(f"{k}={v}" for k, v in result["params"].items()))
    print(
        f"  timeout {route.timeout:g}s, breaker {route.breaker.failures} failures / "
        f"{route.breaker.reset_after:g}s, retries {route.retries}"
    )
    print("why:")
    for line in result["reason"].splitlines():
        print(f"  {line}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_args(args, os.environ)
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    # Imported here so `check`/`explain` never pay for the server's imports.
    from gateway.server import run

    return int(run(settings))
