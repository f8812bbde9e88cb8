"""`sync --follow`: the read copy fed by the event bus (in process on both buses, then as real
processes behind a real legacy that is the stock authority)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from extracted.events import RedisStreamBus, SqliteLogBus, inventory_changed, order_event
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.domain import Item
from extracted.inventory.entrypoints.follow import GROUP, Follower
from extracted.inventory.service import handlers
from extracted.inventory.service.ports import UnitOfWork
from tests.support import procs
from tests.support.shop import legacy_server

SKU = "SKU-0001"
Bus = SqliteLogBus | RedisStreamBus  # both count pending entries (the EventBus port does not)


@pytest.fixture(params=["sqlite", "redis"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    if request.param == "sqlite":
        the_bus: Bus = SqliteLogBus(tmp_path / "events.db")
        yield the_bus
        await the_bus.close()
        return
    url: str = request.getfixturevalue("redis_url")
    stream = f"{request.getfixturevalue('redis_prefix')}:shop.events"
    the_bus = RedisStreamBus(url, stream)
    yield the_bus
    await the_bus.close()
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.delete(stream)
    client.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'inventory.db'}")
    database.create_schema()
    with uow_factory(database)(True) as uow:
        uow.items.add(Item(SKU, "Widget", 250, 10))
        uow.commit()
    yield database
    database.dispose()


def changed(version: int, on_hand: int, held: dict[int, int], origin: str = "legacy"):  # type: ignore[no-untyped-def]
    reserved = sum(held.values())
    item = {"sku": SKU, "name": "Widget", "price_cents": 250, "on_hand": on_hand}
    item |= {"reserved": reserved, "available": on_hand - reserved}
    reservations = [{"sku": SKU, "order_id": k, "qty": q} for k, q in sorted(held.items())]
    return inventory_changed(item, reservations, origin, version)


ORDER = {
    "id": 5,
    "customer_id": 1,
    "status": "placed",
    "items": [{"sku": SKU, "qty": 1, "price_cents": 250}],
    "total_cents": 250,
    "placed_at": "2026-01-01T00:00:00Z",
}


async def until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def run_follower(follower: Follower, done: Callable[[], bool]) -> None:
    task = asyncio.create_task(follower.run())
    try:
        await until(done)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def outbox_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return len(conn.execute(outbox.select()).all())


async def test_reordered_duplicated_events_leave_the_newest_state_and_nothing_pending(
    bus: Bus, db: Database
) -> None:
    follower = Follower(bus, uow_factory(db), "legacy", block_ms=200)
    await follower.ensure_group()
    for event in [
        changed(2, 12, {1: 2}),
        changed(3, 12, {1: 2, 4: 1}),
        order_event(ORDER, "legacy"),  # not stock: skipped
        changed(1, 11, {}),
        changed(3, 12, {1: 2, 4: 1}),  # a duplicate
        changed(9, 99, {}, origin="inventory"),  # our own (from before a handoff): skipped
        changed(2, 12, {1: 2}),
    ]:
        await bus.publish(event)

    async def drained() -> bool:
        return await bus.pending_count(GROUP) == 0

    task = asyncio.create_task(follower.run())
    try:
        await until(lambda: handlers.get_item(SKU, uow_factory(db)).version == 3)
        deadline = time.monotonic() + 10
        while not await drained():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    item = handlers.get_item(SKU, uow_factory(db))
    assert (item.on_hand, {k: r.qty for k, r in item.reservations.items()}) == (12, {1: 2, 4: 1})
    assert outbox_rows(db) == 0  # no echo


async def test_as_the_authority_the_legacys_stock_events_are_acked_and_ignored(
    bus: Bus, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    follower = Follower(bus, uow_factory(db), "inventory", block_ms=200)
    await follower.ensure_group()
    await bus.publish(changed(4, 50, {}))
    with caplog.at_level(logging.WARNING):
        await run_follower(
            follower, lambda: "while this service is the stock authority" in caplog.text
        )
    assert await bus.pending_count(GROUP) == 0
    assert handlers.get_item(SKU, uow_factory(db)).on_hand == 10


async def test_a_database_outage_is_retried_and_the_event_acked_only_after_commit(
    tmp_path: Path, db: Database
) -> None:
    bus = SqliteLogBus(tmp_path / "events.db")
    real = uow_factory(db)
    failures = {"left": 3}

    def flaky(write: bool) -> UnitOfWork:
        if write and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database down")
        return real(write)

    follower = Follower(bus, flaky, "legacy", block_ms=200)
    try:
        await bus.publish(changed(2, 30, {}))
        task = asyncio.create_task(follower.run())
        try:
            await until(lambda: follower.applied == 1)
            deadline = time.monotonic() + 10
            while await bus.pending_count(GROUP):  # the ack follows the commit
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert failures["left"] == 0
        assert handlers.get_item(SKU, real).on_hand == 30
    finally:
        await bus.close()


# --- real processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_follower_applies_the_legacys_writes_and_idles_at_zero_cpu(tmp_path: Path) -> None:
    legacy_db = f"sqlite:///{tmp_path / 'legacy.db'}"
    env = {
        "STOCK_AUTHORITY": "legacy",
        "REDIS_URL": "",
        "EVENTS_DB": str(tmp_path / "events.db"),
        "LEGACY_DATABASE_URL": legacy_db,
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'inventory.db'}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with legacy_server(tmp_path, legacy_db) as legacy_url:
            env["LEGACY_URL"] = legacy_url
            relay = procs.start(
                [procs.PYTHON, "-m", "legacy_monolith", "consume"],
                log_dir=tmp_path,
                name="legacy-consumer",
                env=env,
            )
            follower = procs.start(
                [procs.PYTHON, "-m", "extracted.inventory", "sync", "--follow"],
                log_dir=tmp_path,
                name="inventory-sync",
                env=env,
            )
            db = Database(env["INVENTORY_DATABASE_URL"])
            try:
                check_follower(legacy_url, db, follower)
            finally:
                code = follower.stop()
                relay.stop()
                db.dispose()
    assert code == 0, follower.log()[-3000:]


def check_follower(legacy_url: str, db: Database, follower: procs.Proc) -> None:
    uows = uow_factory(db)

    def copy(sku: str) -> tuple[int, dict[int, int]] | None:
        try:
            item = handlers.get_item(sku, uows)
        except Exception:
            return None
        return item.on_hand, {k: r.qty for k, r in item.reservations.items()}

    def wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert follower.popen.poll() is None, follower.log()[-3000:]
            assert time.monotonic() < deadline, f"timed out: {what}\n{follower.log()[-3000:]}"
            time.sleep(0.1)

    wait(lambda: copy("SKU-0200") is not None, "the backfill")
    before = copy("SKU-0005")
    assert before is not None
    r = httpx.post(f"{legacy_url}/api/inventory/SKU-0005/restock", json={"qty": 11})
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{legacy_url}/api/inventory/SKU-0005/reservations", json={"order_id": 999_999, "qty": 1}
    )
    assert r.status_code == 201, r.text
    version = int(r.headers["X-Stock-Version"])
    wait(
        lambda: copy("SKU-0005") == (before[0] + 11, {**before[1], 999_999: 1}),
        "the legacy's writes to arrive",
    )
    assert handlers.get_item("SKU-0005", uows).version == version
    assert "GET /api" not in follower.log()  # no polling of the legacy
    # Idle: blocked on the bus.
    time.sleep(1.0)
    start = cpu_seconds(follower.pid)
    time.sleep(3.0)
    assert cpu_seconds(follower.pid) - start < 0.3


@pytest.mark.redis
async def test_an_idle_follower_on_redis_sees_no_outage(
    redis_url: str, redis_prefix: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    stream = f"{redis_prefix}:shop.events"
    bus = RedisStreamBus(redis_url, stream)
    follower = Follower(bus, uow_factory(db), "legacy")
    try:
        await follower.ensure_group()
        with caplog.at_level(logging.WARNING):
            task = asyncio.create_task(follower.run())
            await asyncio.sleep(6.5)  # longer than the client's 5 s read timeout
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert "event bus read failed" not in caplog.text
    finally:
        await bus.close()
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        client.delete(stream)
        client.close()
