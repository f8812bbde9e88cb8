"""`python -m extracted.inventory sync [--follow|--check]` against a REAL legacy subprocess."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.service import handlers
from tests.support import procs

NEW_ORDER = 2_000_000_001
COUNTS = re.compile(
    r"items: created=(\d+) updated=(\d+) unchanged=(\d+); reservations: created=(\d+) "
    r"updated=(\d+) deleted=(\d+) unchanged=(\d+); skipped=(\d+)"
)


def legacy_env(tmp_path: Path) -> dict[str, str]:
    return {
        "LEGACY_DATABASE_URL": f"sqlite:///{tmp_path / 'legacy.db'}",
        "EVENTS_DB": str(tmp_path / "events.db"),
        "REDIS_URL": "",  # the embedded event log, never a shared Redis stream
    }


@contextlib.contextmanager
def legacy_server(tmp_path: Path, port: int | None = None) -> Iterator[str]:
    """Seed the legacy on a fresh SQLite file and serve it; yields its base URL."""
    env = legacy_env(tmp_path)
    seeded = procs.run_cli(["-m", "legacy_monolith", "seed"], env=env, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    port = port or procs.free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [procs.PYTHON, "-m", "legacy_monolith", "serve", "--port", str(port), "--workers", "1"]
    with procs.running(
        cmd, log_dir=tmp_path, name="legacy", env=env, ready_url=f"{base}/healthz", timeout=60
    ):
        yield base


def inventory_env(tmp_path: Path, legacy_url: str, db_url: str | None = None) -> dict[str, str]:
    return {
        **legacy_env(tmp_path),
        "INVENTORY_DATABASE_URL": db_url or f"sqlite:///{tmp_path / 'inventory.db'}",
        "LEGACY_URL": legacy_url,
    }


def sync(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = procs.run_cli(["-m", "extracted.inventory", "sync", *args], env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, done.stdout


def counts(stdout: str) -> tuple[int, ...]:
    match = COUNTS.search(stdout)
    assert match, stdout
    return tuple(int(g) for g in match.groups())


def outbox_rows(db_url: str) -> int:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one())
    finally:
        db.dispose()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["sqlite", "postgres"])
def inventory_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inventory.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_pg_database")
    return make()


def test_sync_copies_everything_once_then_changes_nothing(
    tmp_path: Path, inventory_db_url: str
) -> None:
    with legacy_server(tmp_path) as legacy_url:
        env = inventory_env(tmp_path, legacy_url, inventory_db_url)
        code, out = sync(env)
        expected = counts(out)[3]  # --check below proves these are all of the legacy's
        assert code == 0 and counts(out) == (200, 0, 0, expected, 0, 0, 0, 0)
        assert expected > 1000
        code, out = sync(env)
        assert code == 0 and counts(out) == (0, 0, 200, 0, 0, 0, expected, 0)
        assert sync(env, "--check") == (0, "check: 0 record(s) differ\n")
        assert outbox_rows(inventory_db_url) == 0  # sync publishes nothing (no echo)

        # A write on the legacy (as when it serves as fallback) is drift until the next sync.
        before = httpx.get(f"{legacy_url}/api/inventory/SKU-0004").json()["on_hand"]
        r = httpx.post(f"{legacy_url}/api/inventory/SKU-0004/restock", json={"qty": 6})
        assert r.status_code == 200
        code, out = sync(env, "--check")
        assert code == 1
        assert f"item SKU-0004 on_hand: legacy={before + 6} inventory={before}\n" in out
        assert counts(sync(env)[1])[:3] == (0, 1, 199)
        assert sync(env, "--check")[0] == 0


def test_new_service_changes_survive_sync_until_the_legacy_consumer_applies_them(
    tmp_path: Path,
) -> None:
    with legacy_server(tmp_path) as legacy_url:
        env = inventory_env(tmp_path, legacy_url)
        assert sync(env)[0] == 0
        port = procs.free_port()
        inv = f"http://127.0.0.1:{port}"
        serve = [procs.PYTHON, "-m", "extracted.inventory", "serve", "--port", str(port)]
        server = procs.start(
            serve, log_dir=tmp_path, name="inventory", env=env, ready_url=f"{inv}/healthz"
        )
        try:
            on_hand = httpx.get(f"{inv}/api/inventory/SKU-0003").json()["on_hand"]
            assert httpx.post(f"{inv}/api/inventory/SKU-0003/restock", json={"qty": 7}).is_success
            body = {"order_id": NEW_ORDER, "qty": 1}
            r = httpx.post(f"{inv}/api/inventory/SKU-0002/reservations", json=body)
            assert r.status_code == 201
            legacy_order = httpx.get(f"{inv}/api/inventory/SKU-0003/reservations").json()
            released = legacy_order["items"][0]["order_id"]
            r = httpx.delete(f"{inv}/api/inventory/SKU-0003/reservations/{released}")
            assert r.status_code == 204

            # The legacy has not seen the events yet: sync keeps our changes.
            out = sync(env)[1]
            assert counts(out) == (0, 0, 200, 0, 0, 0, counts(out)[6], 2)
            assert httpx.get(f"{inv}/api/inventory/SKU-0003").json()["on_hand"] == on_hand + 7
            code, out = sync(env, "--check")
            assert code == 1
            pending = "(inventory change not yet applied by the legacy)"
            assert (
                f"item SKU-0003 on_hand: legacy={on_hand} inventory={on_hand + 7} {pending}" in out
            )
            assert f"reservation SKU-0002/{NEW_ORDER} qty: legacy=missing inventory=1" in out
            assert f"reservation SKU-0003/{released} qty: legacy=" in out

            # The legacy's consumer applies the relayed events; then both copies agree.
            def consumed() -> bool:
                done = procs.run_cli(
                    ["-m", "legacy_monolith", "consume", "--once"], env=env, timeout=60
                )
                assert done.returncode == 0, done.stderr[-2000:]
                return sync(env, "--check")[0] == 0

            wait_for(consumed, 40, "the legacy to apply the inventory events")
            out = sync(env)[1]
            assert counts(out)[0:2] == (0, 0) and counts(out)[3:6] == (0, 0, 0)
            assert counts(out)[7] == 0
            assert httpx.get(f"{inv}/api/inventory/SKU-0003").json()["on_hand"] == on_hand + 7
        finally:
            stopped = server.stop()
        assert stopped == 0, server.log()[-3000:]  # SIGTERM: drained and exited cleanly
        # Three changes, three events; the syncs added none.
        assert outbox_rows(env["INVENTORY_DATABASE_URL"]) == 3


def test_sync_and_check_exit_2_with_a_message_when_the_legacy_is_down(tmp_path: Path) -> None:
    env = inventory_env(tmp_path, f"http://127.0.0.1:{procs.free_port()}")
    for args in ([], ["--check"]):
        done = procs.run_cli(["-m", "extracted.inventory", "sync", *args], env=env, timeout=60)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "sync: failed:" in done.stderr


def test_follow_waits_for_the_legacy_and_picks_up_its_writes(tmp_path: Path) -> None:
    port = procs.free_port()
    legacy_url = f"http://127.0.0.1:{port}"
    env = inventory_env(tmp_path, legacy_url)
    cmd = [procs.PYTHON, "-m", "extracted.inventory", "sync", "--follow", "--interval", "0.3"]
    db = Database(env["INVENTORY_DATABASE_URL"])
    uows = uow_factory(db)

    def item(sku: str) -> dict[str, int]:
        try:
            it = handlers.get_item(sku, uows)
        except Exception:
            return {}
        return {"on_hand": it.on_hand, **{str(k): r.qty for k, r in it.reservations.items()}}

    follower = procs.start(cmd, log_dir=tmp_path, name="follow", env=env)
    try:
        time.sleep(1.0)  # a few failed polls while the legacy is down
        assert follower.popen.poll() is None, follower.log()
        with legacy_server(tmp_path, port):
            wait_for(lambda: item("SKU-0200") != {}, 60, "the first copy")
            before = item("SKU-0005")["on_hand"]
            httpx.post(f"{legacy_url}/api/inventory/SKU-0005/restock", json={"qty": 11})
            r = httpx.post(
                f"{legacy_url}/api/inventory/SKU-0005/reservations",
                json={"order_id": 999_999, "qty": 1},
            )
            assert r.status_code == 201
            wait_for(
                lambda: (
                    item("SKU-0005").get("on_hand") == before + 11
                    and item("SKU-0005").get("999999") == 1
                ),
                30,
                "the legacy's writes to be copied",
            )
        assert follower.popen.poll() is None, follower.log()
        assert "sync failed, retrying" in follower.log()
    finally:
        code = follower.stop()
        db.dispose()
    assert code == 0, follower.log()[-3000:]
