"""`python -m extracted.inventory serve|sync|handoff` as real processes against a REAL legacy."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from extracted.events import inventory_changed
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import items, outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.service import handlers
from tests.support import procs
from tests.support.shop import legacy_server

SEEDED_ITEMS = 200


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A seeded legacy, the stock authority; these tests never write to it."""
    workdir = tmp_path_factory.mktemp("legacy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STOCK_AUTHORITY", "legacy")
        mp.setenv("REDIS_URL", "")
        mp.setenv("EVENTS_DB", str(workdir / "events.db"))
        with legacy_server(workdir, f"sqlite:///{workdir / 'legacy.db'}") as url:
            yield url


def env_for(
    tmp_path: Path, legacy_url: str, db_url: str | None = None, **more: str
) -> dict[str, str]:
    return {
        "INVENTORY_DATABASE_URL": db_url or f"sqlite:///{tmp_path / 'inventory.db'}",
        "LEGACY_URL": legacy_url,
        "ORDERS_URL": f"http://127.0.0.1:{procs.free_port()}",  # no orders service here
        "STOCK_AUTHORITY": "legacy",
        "REDIS_URL": "",
        "EVENTS_DB": str(tmp_path / "events.db"),
        **more,
    }


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str, str]:
    done = procs.run_cli(["-m", "extracted.inventory", *args], env=env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def dead_url() -> str:
    return f"http://127.0.0.1:{procs.free_port()}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inventory.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_pg_database")
    return make()


def with_db(url: str, fn: Callable[[Database], object]) -> object:
    db = Database(url)
    try:
        return fn(db)
    finally:
        db.dispose()


def test_sync_backfills_once_and_a_second_run_changes_nothing(
    legacy: str, tmp_path: Path, db_url: str
) -> None:
    env = env_for(tmp_path, legacy, db_url)
    code, out, err = cli(env, "sync")
    assert code == 0, err[-3000:]
    assert f"sync: backfill complete: items: created={SEEDED_ITEMS} existing=0" in out
    code, out, _ = cli(env, "sync")
    assert (code, out) == (0, "sync: backfill already complete; the event stream keeps the copy\n")
    code, out, err = cli(env, "sync", "--check", "--settle", "0")
    assert code == 0, out + err[-2000:]

    def published(db: Database) -> int:
        with db.engine.connect() as conn:
            return len(conn.execute(outbox.select()).all())

    assert with_db(db_url, published) == 0  # backfill publishes nothing (no echo)


def test_sync_check_is_0_when_equal_1_on_drift_2_when_the_legacy_is_down(
    legacy: str, tmp_path: Path
) -> None:
    env = env_for(tmp_path, legacy)
    assert cli(env, "sync")[0] == 0
    on_hand = httpx.get(f"{legacy}/api/inventory/SKU-0007").json()["on_hand"]

    def corrupt(db: Database) -> None:
        with db.engine.begin() as conn:
            conn.execute(
                items.update().where(items.c.sku == "SKU-0007").values(on_hand=on_hand + 100)
            )

    with_db(env["INVENTORY_DATABASE_URL"], corrupt)
    began = time.monotonic()
    code, out, err = cli(env, "sync", "--check", "--settle", "1.5s")
    assert code == 1, out + err[-2000:]
    assert time.monotonic() - began >= 1.5  # it waited for lag to go away first
    assert out.splitlines() == [
        f"item SKU-0007 on_hand: legacy={on_hand} inventory={on_hand + 100}",
        "check: 1 record(s) differ after 1.5s",
    ]
    code, _, err = cli({**env, "LEGACY_URL": dead_url()}, "sync", "--check", "--settle", "1s")
    assert code == 2 and "sync: failed:" in err


def test_handoff_check_is_0_when_ready_1_with_each_problem_2_when_unreachable(
    legacy: str, tmp_path: Path
) -> None:
    env = env_for(tmp_path, legacy)
    code, out, _ = cli(env, "handoff", "--to", "inventory")
    assert code == 0 and "Switch-over steps:" in out and "STOCK_AUTHORITY=inventory" in out
    assert cli(env, "sync")[0] == 0
    code, out, err = cli(env, "handoff", "--to", "inventory", "--check")
    assert (code, out) == (0, "handoff: ready to switch STOCK_AUTHORITY to inventory\n"), err

    # A forwarded write mirrored here whose event has not been applied, and an unrelayed event.
    def in_flight(db: Database) -> None:
        with db.engine.begin() as conn:
            conn.execute(items.update().where(items.c.sku == "SKU-0003").values(floor=5))
        item = handlers.get_item("SKU-0009", uow_factory(db))
        event = inventory_changed(
            {"sku": "SKU-0009", "name": item.name, "price_cents": item.price_cents}
            | {"on_hand": item.on_hand, "reserved": item.reserved, "available": item.available},
            [],
            "inventory",
            1,
        )
        with db.engine.begin() as conn:
            conn.execute(
                outbox.insert().values(
                    event_id=event.event_id,
                    type=event.type,
                    payload=event.to_json().decode(),
                    created_at=sa.func.now(),
                )
            )

    with_db(env["INVENTORY_DATABASE_URL"], in_flight)
    code, out, _ = cli(env, "handoff", "--to", "inventory", "--check")
    assert code == 1
    assert out.splitlines() == [
        "inventory outbox: 1 event(s) not published yet",
        "item SKU-0003: a forwarded write at version 5 awaits its event (copy at version 0)",
        "handoff: NOT ready to switch STOCK_AUTHORITY to inventory (2 problem(s))",
    ]
    code, _, err = cli({**env, "LEGACY_URL": dead_url()}, "handoff", "--to", "legacy", "--check")
    assert code == 2 and "handoff: cannot check" in err


def test_a_wrong_stock_authority_refuses_to_start(tmp_path: Path) -> None:
    for args in (["serve"], ["sync", "--follow"], ["handoff", "--to", "legacy"]):
        code, _, err = cli(env_for(tmp_path, dead_url(), STOCK_AUTHORITY="both"), *args)
        assert code == 2 and "STOCK_AUTHORITY must be 'inventory' or 'legacy'" in err


def wait_for_log(proc: procs.Proc, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        assert proc.popen.poll() is None, proc.log()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in the log: {proc.log()[-3000:]}"
        time.sleep(0.1)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_does_not_listen_until_its_backfill_is_complete(tmp_path: Path) -> None:
    legacy_port, port = procs.free_port(), procs.free_port()
    env = env_for(tmp_path, f"http://127.0.0.1:{legacy_port}", STOCK_AUTHORITY="inventory")
    serve = [procs.PYTHON, "-m", "extracted.inventory", "serve", "--port", str(port)]
    server = procs.start(serve, log_dir=tmp_path, name="inventory", env=env)
    try:
        wait_for_log(server, "backfill: waiting for the legacy")
        for _ in range(8):  # the legacy is down: retrying, not listening
            assert not listening(port), server.log()
            assert server.popen.poll() is None, server.log()
            time.sleep(0.25)
        with (
            pytest.MonkeyPatch.context() as mp,
            legacy_server(
                tmp_path / "legacy", f"sqlite:///{tmp_path / 'legacy.db'}", port=legacy_port
            ),
        ):
            mp.setenv("REDIS_URL", "")
            procs.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=server.popen)
            # The first answer already has everything.
            body = httpx.get(f"http://127.0.0.1:{port}/api/inventory").json()
            assert body["total"] == SEEDED_ITEMS
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]


def test_serve_stops_cleanly_while_waiting_for_the_legacy(tmp_path: Path) -> None:
    port = procs.free_port()
    env = env_for(tmp_path, dead_url())
    serve = [procs.PYTHON, "-m", "extracted.inventory", "serve", "--port", str(port)]
    server = procs.start(serve, log_dir=tmp_path, name="inventory", env=env)
    try:
        wait_for_log(server, "backfill: waiting for the legacy")
    finally:
        code = server.stop(timeout=10)
    assert code == 0, server.log()[-3000:]
