"""`python -m gateway check|explain|serve` run as real subprocesses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gateway.cli import explain_json, main
from gateway.config import parse_config
from gateway.table import RouteTable
from tests.support.procs import run_cli

ROUTES = """\
version: 1
upstreams:
  legacy:    {url: "http://127.0.0.1:8000"}
  orders:    {url: "http://127.0.0.1:8101"}
  inventory: {url: "http://127.0.0.1:8102"}
defaults:
  upstream: legacy
  timeout: 10s
shadow_store: "sqlite:///var/shadow.db"
routes:
  - name: inventory-reads
    path: /api/inventory
    methods: [GET, HEAD]
    upstream: legacy
    shadow: {upstream: inventory, sample: 0.5}
  - name: orders
    path: /api/orders
    upstream: orders
    fallback: legacy
  - name: orders-canary
    path: /api/orders/{id}
    methods: [GET]
    split: {orders: 10, legacy: 90}
    sticky: X-Customer-Id
  - name: v2
    path: /v2/orders
    upstream: orders
    rewrite: /api/orders
"""


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return path


def test_check_ok_prints_summary(routes_file: Path) -> None:
    result = run_cli(["-m", "gateway", "check", str(routes_file)])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "OK" in out and parse_config(ROUTES).hash[:12] in out
    assert "legacy" in out and "http://127.0.0.1:8101" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "shadow" in lines["inventory-reads"] and "inventory 50%" in lines["inventory-reads"]
    assert "fallback" in lines["orders"]
    assert "split" in lines["orders-canary"] and "orders:10 legacy:90" in lines["orders-canary"]
    assert "plain" in lines["v2"] and "rewrite /api/orders" in lines["v2"]
    assert len(out.splitlines()) < 25


def test_check_errors_go_to_stderr_with_lines(routes_file: Path) -> None:
    routes_file.write_text(
        ROUTES.replace("fallback: legacy", "fallback: legasy").replace("10s", "10 seconds")
    )
    result = run_cli(["-m", "gateway", "check", str(routes_file)])
    assert result.returncode == 1
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    assert f"{routes_file}:8: defaults.timeout: bad duration '10 seconds'" in errors[0]
    assert errors[1].startswith(f"{routes_file}:19: routes[1].fallback: unknown upstream 'legasy'")


def test_check_missing_and_empty_file(tmp_path: Path) -> None:
    result = run_cli(["-m", "gateway", "check", str(tmp_path / "none.yaml")])
    assert result.returncode == 1 and "cannot read file" in result.stderr
    (tmp_path / "empty.yaml").write_text("")
    result = run_cli(["-m", "gateway", "check", str(tmp_path / "empty.yaml")])
    assert result.returncode == 1 and "empty.yaml:1: <file>: file is empty" in result.stderr


def test_explain_text(routes_file: Path) -> None:
    result = run_cli(["-m", "gateway", "explain", str(routes_file), "GET", "/api/orders/7"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "route orders-canary" in out
    assert "orders (weight 10), legacy (weight 90)" in out
    assert "upstream path: /api/orders/7" in out
    assert "'orders-canary' wins over 'orders': longer path (3 segments vs 2)" in out


def test_explain_rewrite_and_normalisation(routes_file: Path) -> None:
    args = ["-m", "gateway", "explain", str(routes_file), "post", "/x/../v2//orders/%2e/5"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    assert "POST /v2/orders/5 -> route v2" in result.stdout
    assert "upstream path: /api/orders/5" in result.stdout


def test_explain_json(routes_file: Path) -> None:
    args = ["-m", "gateway", "explain", str(routes_file), "POST", "/api/orders/7", "--json"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["route"] == "orders" and data["upstream"] == "orders"
    assert "'orders-canary' matches the path but not the method (GET)" in data["reason"]
    args = ["-m", "gateway", "explain", str(routes_file), "GET", "/elsewhere", "--json"]
    data = json.loads(run_cli(args).stdout)
    assert (data["route"], data["upstream"]) == ("default", "legacy")


def test_explain_bad_path_exits_1(routes_file: Path) -> None:
    result = run_cli(["-m", "gateway", "explain", str(routes_file), "GET", "/api/../../etc"])
    assert result.returncode == 1
    assert "escapes the root" in result.stderr


def test_explain_invalid_file_exits_1(routes_file: Path) -> None:
    routes_file.write_text(ROUTES.replace("version: 1", "version: 3"))
    result = run_cli(["-m", "gateway", "explain", str(routes_file), "GET", "/"])
    assert result.returncode == 1 and ":1: version: version must be 1" in result.stderr


def test_serve_refuses_invalid_file(routes_file: Path) -> None:
    routes_file.write_text(
        ROUTES.replace("upstream: orders\n    fallback", "upstream: nope\n    fallback")
    )
    result = run_cli(["-m", "gateway", "serve", "--routes", str(routes_file), "--port", "0"])
    assert result.returncode == 1
    assert "routes[1].upstream: unknown upstream 'nope'" in result.stderr


def test_no_command_prints_usage() -> None:
    result = run_cli(["-m", "gateway"])
    assert result.returncode == 2 and "usage" in result.stderr
    result = run_cli(["-m", "gateway", "shadow-report", "--help"])
    assert result.returncode == 0 and "--min-match" in result.stdout


def test_explain_json_function_matches_admin_shape() -> None:
    table = RouteTable.compile(parse_config(ROUTES))
    data = explain_json(table, "get", "/api/orders/7")
    assert {"route", "upstream", "reason"} <= data.keys()
    assert data["route"] == "orders-canary" and data["upstream"] == "orders,legacy"
    assert data["split"] == {"orders": 10, "legacy": 90} and data["params"] == {"id": "7"}
    assert data["method"] == "GET" and data["upstream_path"] == "/api/orders/7"
    json.dumps(data)  # JSON-serialisable as is


def test_serve_parses_options_and_calls_server_run(
    routes_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in gateway.server records the Settings it is handed.
    import types

    from gateway.settings import ENV_VARS, Settings

    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    seen: list[Settings] = []
    fake = types.ModuleType("gateway.server")
    fake.run = lambda settings: seen.append(settings) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.server", fake)
    argv = [
        "serve", "--routes", str(routes_file), "--host", "127.0.0.1", "--port", "18080",
        "--admin-host", "127.0.0.2", "--admin-port", "19901", "--workers", "2",
        "--log-format", "text", "--header-timeout", "2.5", "--grace-period", "5",
    ]  # fmt: skip
    assert main(argv) == 0
    assert seen == [
        Settings(
            routes=routes_file, host="127.0.0.1", port=18080, admin_host="127.0.0.2",
            admin_port=19901, workers=2, log_format="text", header_timeout=2.5, grace_period=5.0,
        )
    ]  # fmt: skip
    seen.clear()
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/0")
    monkeypatch.setenv("GATEWAY_WATCH_INTERVAL", "0.25")
    assert main(["serve", "--routes", str(routes_file)]) == 0
    assert seen == [
        Settings(routes=routes_file, redis_url="redis://example:6379/0", watch_interval=0.25)
    ]
    assert seen[0].host == "0.0.0.0" and seen[0].port == 8080 and seen[0].admin_port == 9901
    monkeypatch.setenv("GATEWAY_WATCH_INTERVAL", "soon")
    assert main(["serve", "--routes", str(routes_file)]) == 2


def test_serve_rejects_bad_options(routes_file: Path) -> None:
    for bad in (["--workers", "0"], ["--port", "70000"], ["--log-format", "xml"]):
        result = run_cli(["-m", "gateway", "serve", "--routes", str(routes_file), *bad])
        assert result.returncode == 2, bad
