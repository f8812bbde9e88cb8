"""gateway/shadow/cli.py: `shadow-report` formats, store URL precedence and `--check` exit codes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from gateway.shadow.cli import resolve_store_url, shadow_report_main
from gateway.shadow.sql_store import SqlShadowStore
from gateway.shadow.stats import RouteStats

ROOT = Path(__file__).resolve().parents[3]


def seed(url: str, **routes: dict[str, int]) -> None:
    async def go() -> None:
        store = SqlShadowStore(url)
        await store.start()
        await store.apply({name: RouteStats(name, counts=dict(c)) for name, c in routes.items()})
        await store.close()

    asyncio.run(go())


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/shadow.db"
    seed(
        url,
        **{
            "inventory-reads": {"match": 1000},
            "orders": {"match": 90, "mismatch": 10},
            "customers": {"match": 5},
        },
    )
    return url


def test_text_report(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert shadow_report_main(["--store", db]) == 0
    out = capsys.readouterr().out
    assert "inventory-reads" in out and "ready" in out
    assert "orders" in out and "not-ready" in out
    assert "customers" in out and "insufficient-data" in out


@pytest.mark.parametrize("fmt", ["json", "markdown", "html", "text"])
def test_every_format(db: str, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert shadow_report_main(["--store", db, "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "inventory-reads" in out
    if fmt == "json":
        report = orjson.loads(out)
        assert [r["route"] for r in report["routes"]] == ["customers", "inventory-reads", "orders"]
        assert {r["route"]: r["verdict"] for r in report["routes"]} == {
            "customers": "insufficient-data",
            "inventory-reads": "ready",
            "orders": "not-ready",
        }


def test_check_exit_codes(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert shadow_report_main(["--store", db, "--check"]) == 1
    assert shadow_report_main(["--store", db, "--check", "--route", "inventory-reads"]) == 0
    assert shadow_report_main(["--store", db, "--check", "--route", "orders"]) == 1
    assert shadow_report_main(["--store", db, "--check", "--route", "customers"]) == 1
    assert (
        shadow_report_main(["--store", db, "--check", "--route", "customers", "--min-samples", "5"])
        == 0
    )
    assert (
        shadow_report_main(["--store", db, "--check", "--route", "orders", "--min-match", "0.9"])
        == 0
    )
    assert shadow_report_main(["--store", db, "--check", "--route", "never-shadowed"]) == 1


def test_missing_sqlite_store_is_empty_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/none/shadow.db"
    assert shadow_report_main(["--store", url, "--format", "json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["routes"] == []
    assert not (tmp_path / "none").exists()
    assert shadow_report_main(["--store", url, "--check"]) == 1


def test_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        shadow_report_main(["--min-match", "2"])
    with pytest.raises(SystemExit):
        shadow_report_main(["--format", "xml"])


def routes_file(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            upstreams:
              legacy: {{url: "http://127.0.0.1:8000"}}
            defaults:
              upstream: legacy
            shadow_store: "{store}"
            routes: []
            """
        )
    )
    return path


def test_store_url_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    routes = routes_file(tmp_path, "sqlite:///var/from-file.db")
    env = {"SHADOW_STORE": "redis://env"}
    assert resolve_store_url("sqlite:////x.db", routes, env) == "sqlite:////x.db"
    assert resolve_store_url(None, routes, env) == "redis://env"
    # Relative SQLite paths are anchored at the routes file's directory.
    assert resolve_store_url(None, routes, {}) == f"sqlite:///{tmp_path}/var/from-file.db"
    monkeypatch.chdir(tmp_path)
    assert resolve_store_url(None, None, {}) == f"sqlite:///{tmp_path}/var/from-file.db"
    (tmp_path / "routes.yaml").unlink()
    assert resolve_store_url(None, None, {}) == "sqlite:///var/shadow.db"


def test_store_from_routes_file_and_invalid_routes_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHADOW_STORE", raising=False)
    seed(f"sqlite:///{tmp_path}/var/s.db", a={"match": 200})
    routes = routes_file(tmp_path, "var/s.db".join(["sqlite:///", ""]))
    assert shadow_report_main(["--routes", str(routes), "--check"]) == 0
    routes.write_text("version: 1\nbogus: true\n")
    assert shadow_report_main(["--routes", str(routes)]) == 2
    assert "routes.yaml" in capsys.readouterr().err


def test_runs_as_a_module(db: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.shadow.cli", "--store", db, "--check", "--route", "orders"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "not-ready" in proc.stdout


def test_cli_module_does_not_load_metrics() -> None:
    # gateway.cli imports it at start-up, before --workers sets PROMETHEUS_MULTIPROC_DIR.
    code = (
        "import sys, gateway.shadow.cli, gateway.shadow; "
        "assert 'gateway.metrics' not in sys.modules and 'prometheus_client' not in sys.modules; "
        "assert gateway.shadow.build_report and gateway.shadow.ShadowMirror; "
        "assert 'gateway.metrics' in sys.modules"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
