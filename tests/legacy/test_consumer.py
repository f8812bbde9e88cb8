"""The legacy's event consumer against real legacy databases (SQLite and PostgreSQL).

What the new services publish must show in the legacy's own HTTP API, merged so that nothing
ever goes back (order status lattice, item versions), never echoing the legacy's own events;
entries that cannot be applied are parked unacked and counted; outages are retried.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from extracted.events import Event, RedisStreamBus, SqliteLogBus
from legacy_monolith.api import DB_EXTENSION
from legacy_monolith.app import create_app
from legacy_monolith.consumer import Consumer, Stats, apply_event
from legacy_monolith.db import Database, Order, OrderLine, create_schema, make_engine
from tests.extracted.events.factories import inventory_event, order_event, order_json
from tests.support import procs

ORDER_ID = 1_000_000_005


@dataclass
class Legacy:
    """A legacy database with its tables, the app on it, and a consumer-side `Database`."""

    url: str
    client: FlaskClient
    db: Database

    def get(self, path: str) -> tuple[int, bytes]:
        response = self.client.get(path)
        return response.status_code, response.get_data()


@pytest.fixture(params=["sqlite", "postgres"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Legacy]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'legacy.db'}"
    else:
        url = request.getfixturevalue("make_pg_database")()
    engine = make_engine(url)
    create_schema(engine)  # the legacy's own schema function
    engine.dispose()
    app = create_app(url)
    db = Database(url)
    yield Legacy(url, app.test_client(), db)
    db.dispose()
    app.extensions[DB_EXTENSION].dispose()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteLogBus]:
    bus = SqliteLogBus(tmp_path / "events.db")
    yield bus
    await bus.close()


async def consume_once(
    legacy: Legacy, bus: SqliteLogBus | RedisStreamBus, name: str = "c1"
) -> Stats:
    """Run the real consumer loop in `--once` mode and return what it did.

    The legacy keeps a read copy of stock here (the inventory service is the authority).
    """
    consumer = Consumer(legacy.db, bus, "legacy", name, "inventory")
    assert await asyncio.wait_for(consumer.run(once=True), 30) == 0
    return consumer.stats


async def publish(bus: SqliteLogBus | RedisStreamBus, *events: Event) -> None:
    for event in events:
        await bus.publish(event)


# --- each event type shows in the legacy's HTTP API -------------------------------------------


async def test_order_placed_shows_in_the_legacy_api(legacy: Legacy, bus: SqliteLogBus) -> None:
    event = order_event(ORDER_ID)
    await publish(bus, event)
    stats = await consume_once(legacy, bus)
    assert stats == Stats(applied=1)
    status, body = legacy.get(f"/api/orders/{ORDER_ID}")
    assert status == 200
    assert body == orjson.dumps(event.data["order"])  # byte-for-byte the contract JSON
    status, body = legacy.get("/api/orders?customer_id=1")
    assert [o["id"] for o in orjson.loads(body)["items"]] == [ORDER_ID]
    with legacy.db.read() as s:
        order = s.get(Order, ORDER_ID)
        assert order is not None and order.origin == "orders"
        assert set(s.scalars(select(OrderLine.origin))) == {"orders"}


async def test_order_cancelled_is_applied_and_never_undone(
    legacy: Legacy, bus: SqliteLogBus
) -> None:
    await publish(bus, order_event(ORDER_ID), order_event(ORDER_ID, "cancelled"))
    assert await consume_once(legacy, bus) == Stats(applied=2)
    _, body = legacy.get(f"/api/orders/{ORDER_ID}")
    assert body == orjson.dumps(order_json(ORDER_ID, "cancelled"))
    # a late, separately published order.placed for the same order must not revive it
    await publish(bus, order_event(ORDER_ID, "placed"))
    assert await consume_once(legacy, bus) == Stats(stale=1)
    _, body = legacy.get(f"/api/orders/{ORDER_ID}")
    assert orjson.loads(body)["status"] == "cancelled"


async def test_inventory_changed_sets_the_item_and_replaces_reservations(
    legacy: Legacy, bus: SqliteLogBus
) -> None:
    first = inventory_event(
        "SKU-0042", on_hand=100, reservations=[(1_000_000_001, 2), (1_000_000_002, 3)], version=1
    )
    await publish(bus, first)
    assert await consume_once(legacy, bus) == Stats(applied=1)
    status, body = legacy.get("/api/inventory/SKU-0042")
    assert status == 200
    assert body == orjson.dumps(first.data["item"])  # reserved/available derived identically
    # the authority's newer record replaces the sku's reservations
    second = inventory_event(
        "SKU-0042",
        on_hand=120,
        reservations=[(1_000_000_002, 1), (1_000_000_003, 4)],
        price_cents=999,
        name="Renamed",
        version=3,
    )
    await publish(bus, second)
    assert await consume_once(legacy, bus) == Stats(applied=1)
    _, body = legacy.get("/api/inventory/SKU-0042")
    assert body == orjson.dumps(second.data["item"])
    _, body = legacy.get("/api/inventory/SKU-0042/reservations")
    assert orjson.loads(body)["items"] == second.data["reservations"]
    # an older version arriving late (reordered, or redelivered after a takeover) changes nothing
    late = inventory_event("SKU-0042", on_hand=5, reservations=[(9, 5)], version=2)
    await publish(bus, late, first)
    assert await consume_once(legacy, bus) == Stats(stale=2)
    assert legacy.get("/api/inventory/SKU-0042")[1] == orjson.dumps(second.data["item"])


async def test_inventory_changed_is_ignored_while_the_legacy_is_the_authority(
    legacy: Legacy, bus: SqliteLogBus
) -> None:
    await publish(bus, inventory_event("SKU-0042", on_hand=1))
    consumer = Consumer(legacy.db, bus, "legacy", "c1", "legacy")
    assert await asyncio.wait_for(consumer.run(once=True), 30) == 0
    assert consumer.stats == Stats(ignored=1)
    assert legacy.get("/api/inventory/SKU-0042")[0] == 404


async def test_order_events_teach_the_legacy_their_idempotency_key(
    legacy: Legacy, bus: SqliteLogBus
) -> None:
    from extracted.events import order_event as make_order_event

    body = {"customer_id": 1, "items": [{"sku": "SKU-0001", "qty": 2}]}
    placed = make_order_event(
        order_json(ORDER_ID),
        "orders",
        idempotency={"key": "k-77", "request": body, "response": order_json(ORDER_ID)},
    )
    await publish(bus, placed)
    assert await consume_once(legacy, bus) == Stats(applied=1)
    # the same key and body at the legacy: the orders service's answer, nothing placed here
    response = legacy.client.post("/api/orders", json=body, headers={"Idempotency-Key": "k-77"})
    assert response.status_code == 201
    assert response.get_json() == order_json(ORDER_ID)
    other = legacy.client.post(
        "/api/orders", json={**body, "customer_id": 2}, headers={"Idempotency-Key": "k-77"}
    )
    assert other.status_code == 422


# --- applied once, no echo, parking --------------------------------------------------------------


async def test_replay_is_idempotent(legacy: Legacy, bus: SqliteLogBus) -> None:
    placed = order_event(ORDER_ID)
    stock = inventory_event("SKU-0001", reservations=[(ORDER_ID, 2)])
    await publish(bus, placed, placed, stock)  # the relay may publish an event twice
    assert await consume_once(legacy, bus) == Stats(applied=2, stale=1)
    before = [legacy.get(p)[1] for p in (f"/api/orders/{ORDER_ID}", "/api/inventory/SKU-0001")]
    # replay the whole stream through a fresh group: every event is recognised
    consumer = Consumer(legacy.db, bus, "replay", "r1", "inventory")
    assert await asyncio.wait_for(consumer.run(once=True), 30) == 0
    assert consumer.stats == Stats(stale=3)
    after = [legacy.get(p)[1] for p in (f"/api/orders/{ORDER_ID}", "/api/inventory/SKU-0001")]
    assert after == before


async def test_events_the_legacy_wrote_are_not_echoed(legacy: Legacy, bus: SqliteLogBus) -> None:
    await publish(
        bus, order_event(ORDER_ID, origin="legacy"), inventory_event("SKU-0009", origin="legacy")
    )
    assert await consume_once(legacy, bus) == Stats(echo=2)
    assert legacy.get(f"/api/orders/{ORDER_ID}")[0] == 404
    assert legacy.get("/api/inventory/SKU-0009")[0] == 404


async def test_unparseable_entries_are_parked_unacked_and_counted(
    legacy: Legacy, bus: SqliteLogBus, tmp_path: Path
) -> None:
    await bus.read("legacy", "c1", block_ms=0)  # creates the log and the group
    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.execute("INSERT INTO log (event) VALUES ('{bad json')")
        newer = order_event(ORDER_ID + 1).to_json().replace(b'"version":2', b'"version":3')
        conn.execute("INSERT INTO log (event) VALUES (?)", (newer.decode(),))
    good = order_event(ORDER_ID)
    await publish(bus, good)
    stats = await consume_once(legacy, bus)
    stats.parked += bus.parked_count
    assert stats == Stats(applied=1, parked=2)
    assert await bus.pending_count("legacy") == 2  # left for a consumer that understands them
    assert legacy.get(f"/api/orders/{ORDER_ID}")[0] == 200
    assert legacy.get(f"/api/orders/{ORDER_ID + 1}")[0] == 404  # never half-understood


async def test_event_the_database_refuses_is_parked_not_applied(
    legacy: Legacy, bus: SqliteLogBus
) -> None:
    huge = order_event(2**63)  # valid JSON, but beyond the database's BIGINT
    good = order_event(ORDER_ID)
    await publish(bus, huge, good)
    assert await consume_once(legacy, bus) == Stats(applied=1, parked=1)
    assert await bus.pending_count("legacy") == 1
    assert legacy.get(f"/api/orders/{ORDER_ID}")[0] == 200


def test_apply_event_rejects_data_it_cannot_apply(legacy: Legacy) -> None:
    bad = order_event(ORDER_ID)
    object.__setattr__(bad, "data", {"order": {"id": ORDER_ID}})  # bypasses validation
    with pytest.raises(KeyError):
        apply_event(legacy.db, bad)
    assert legacy.get(f"/api/orders/{ORDER_ID}")[0] == 404  # nothing half-applied


# --- the real command: crashes, Redis, outages --------------------------------------------------


def _consume_cmd(*extra: str) -> list[str]:
    return [procs.PYTHON, "-m", "legacy_monolith", "consume", *extra]


async def test_consumer_dying_mid_batch_is_finished_by_another_exactly_once(
    legacy: Legacy, bus: SqliteLogBus, tmp_path: Path
) -> None:
    events = [order_event(1_000_000_100 + i) for i in range(6)]
    await publish(bus, *events)
    # consumer A reads the batch, applies half of it, and dies without acking
    batch = await SqliteLogBus(tmp_path / "events.db").read("legacy", "dead-a", count=10)
    assert len(batch) == 6
    for delivery in batch[:3]:
        assert apply_event(legacy.db, delivery.event) == "applied"
    await asyncio.sleep(0.3)  # let A's entries go idle
    result = procs.run_cli(
        ["-m", "legacy_monolith", "consume", "--once", "--consumer", "b"],
        env={
            "EVENTS_DB": str(tmp_path / "events.db"),
            "LEGACY_DATABASE_URL": legacy.url,
            "EVENTS_CLAIM_IDLE_MS": "200",
        },
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout.strip().splitlines()[-1]) == {
        "applied": 3,
        "stale": 3,
        "echo": 0,
        "ignored": 0,
        "parked": 0,
    }
    assert await bus.pending_count("legacy") == 0
    for event in events:
        _, body = legacy.get(f"/api/orders/{event.data['order']['id']}")
        assert body == orjson.dumps(event.data["order"])


@pytest.fixture
def redis_stream(redis_url: str, redis_prefix: str) -> Iterator[str]:
    stream = f"{redis_prefix}:shop.events"
    yield stream
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.delete(stream)
    client.close()


async def _wait_for(legacy: Legacy, path: str, proc: procs.Proc, within: float = 30.0) -> bytes:
    deadline = time.monotonic() + within
    while True:
        status, body = legacy.get(path)
        if status == 200:
            return body
        assert proc.popen.poll() is None, proc.log()
        assert time.monotonic() < deadline, f"{path} never appeared\n{proc.log()}"
        await asyncio.sleep(0.1)


async def test_long_running_consumer_on_redis_stops_cleanly(
    legacy: Legacy, redis_url: str, redis_stream: str, tmp_path: Path
) -> None:
    bus = RedisStreamBus(redis_url, redis_stream)
    env = {
        "REDIS_URL": redis_url,
        "EVENTS_STREAM": redis_stream,
        "LEGACY_DATABASE_URL": legacy.url,
        "STOCK_AUTHORITY": "inventory",
    }
    consumer = procs.start(_consume_cmd(), log_dir=tmp_path, name="consumer", env=env)
    try:
        event = inventory_event("SKU-0100", on_hand=7, reservations=[(ORDER_ID, 2)])
        await bus.publish(event)
        assert await _wait_for(legacy, "/api/inventory/SKU-0100", consumer) == orjson.dumps(
            event.data["item"]
        )
        assert consumer.stop(timeout=15) == 0  # SIGTERM: finishes its batch, exits 0
        assert await bus.pending_count("legacy") == 0
    finally:
        consumer.kill()
        await bus.close()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server binary not installed")
async def test_bus_unavailable_at_start_is_retried_until_it_comes_up(
    legacy: Legacy, tmp_path: Path
) -> None:
    port = procs.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {"REDIS_URL": url, "LEGACY_DATABASE_URL": legacy.url}
    consumer = procs.start(_consume_cmd(), log_dir=tmp_path, name="consumer", env=env)
    try:
        deadline = time.monotonic() + 20
        while "unavailable" not in consumer.log():
            assert consumer.popen.poll() is None, consumer.log()
            assert time.monotonic() < deadline, consumer.log()
            await asyncio.sleep(0.1)
        server_cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ]
        with procs.running(server_cmd, log_dir=tmp_path, name="redis", ready_port=port):
            bus = RedisStreamBus(url)
            try:
                await bus.publish(order_event(ORDER_ID))
                await _wait_for(legacy, f"/api/orders/{ORDER_ID}", consumer, within=40)
            finally:
                await bus.close()
            assert consumer.popen.poll() is None  # never crashed
    finally:
        consumer.stop()
