"""The orders consumer on real buses (SQLite log, Redis stream) and real databases.

It applies the legacy's order events by the lattice, learns their Idempotency-Keys, never
publishes or touches stock, skips everything else, acks only after the commit, and rides out
database and bus outages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.events import EventBus, RedisStreamBus, inventory_changed, order_event
from extracted.orders.adapters.orm import outbox
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import Order, OrderLine, OrderStatus, Origin
from extracted.orders.entrypoints.consumer import GROUP, OrdersConsumer
from tests.support import procs


def order_json(order_id: int, status: str = "placed", qty: int = 2) -> dict[str, Any]:
    """An order as the contract renders it."""
    return {
        "id": order_id,
        "customer_id": 3,
        "status": status,
        "items": [{"sku": "SKU-0001", "qty": qty, "price_cents": 250}],
        "total_cents": 250 * qty,
        "placed_at": "2026-11-25T12:00:00Z",
    }


def legacy_event(
    order_id: int, status: str = "placed", key: str | None = None, origin: str = "legacy"
):  # type: ignore[no-untyped-def]
    idem = None
    if key is not None:
        idem = {"key": key, "request": {"customer_id": 3}, "response": order_json(order_id)}
    return order_event(order_json(order_id, status), origin, idempotency=idem)


async def pending(bus: EventBus) -> int:
    return int(await bus.pending_count(GROUP))  # type: ignore[attr-defined]


def _get(engine: sa.Engine, order_id: int) -> Order | None:
    with SqlUnitOfWork(engine) as uow:
        return uow.orders.get(order_id)


async def test_applies_the_legacys_order_events_by_the_lattice(
    make_bus: Callable[..., EventBus], engine: sa.Engine
) -> None:
    mine = Order(
        NEW_SERVICES_ID_FLOOR,
        3,
        OrderStatus.PLACED,
        (OrderLine("SKU-0009", 1, 5),),
        "2026-11-25T12:00:00Z",
    )
    with SqlUnitOfWork(engine) as uow:
        uow.orders.add(mine)
        uow.commit()
    bus = make_bus()
    item = {
        "sku": "SKU-0001",
        "name": "W",
        "price_cents": 250,
        "on_hand": 9,
        "reserved": 0,
        "available": 9,
    }
    for event in [
        legacy_event(1, key="legacy-key-1"),
        legacy_event(2),
        legacy_event(2, "cancelled"),
        legacy_event(2),  # a late redelivery of placed: never regresses
        legacy_event(3, "cancelled"),  # cancelled before its placed arrives (reordered)
        legacy_event(3),
        # The legacy, as fallback, cancelled an order WE placed: applied, by status only.
        order_event({**mine.to_json(), "status": "cancelled"}, "legacy"),
        legacy_event(NEW_SERVICES_ID_FLOOR + 50, origin="orders"),  # our own: skipped (no echo)
        inventory_changed(item, [], "inventory", 1),  # another type: skipped
    ]:
        await bus.publish(event)
    consumer = OrdersConsumer(bus, lambda: SqlUnitOfWork(engine), consumer="c1", batch=4)
    stats = await consumer.drain()
    assert (stats.changed, stats.skipped, stats.poison, stats.keys_learned) == (5, 2, 0, 1)
    assert await pending(bus) == 0  # everything acked

    one, two, three = (_get(engine, i) for i in (1, 2, 3))
    assert one is not None and one.to_json() == order_json(1) and one.origin is Origin.LEGACY
    assert two is not None and two.status is OrderStatus.CANCELLED
    assert three is not None and three.to_json() == order_json(3, "cancelled")
    ours = _get(engine, NEW_SERVICES_ID_FLOOR)
    assert ours is not None and ours.status is OrderStatus.CANCELLED and ours.lines == mine.lines
    assert _get(engine, NEW_SERVICES_ID_FLOOR + 50) is None
    with SqlUnitOfWork(engine) as uow:
        key = uow.keys.find("legacy-key-1")
        assert key is not None and key.response == order_json(1) and key.order_id == 1
    with engine.connect() as conn:  # nothing is ever re-published
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0

    # Everything again (a takeover replaying a dead consumer's entries): nothing changes.
    for i in (1, 2, 3):
        await bus.publish(legacy_event(i))
    again = await OrdersConsumer(bus, lambda: SqlUnitOfWork(engine), consumer="c2").drain()
    assert again.changed == 0 and again.unchanged == 3
    two = _get(engine, 2)
    assert two is not None and two.status is OrderStatus.CANCELLED


class FlakyDatabase:
    """A unit-of-work factory whose first `failures` transactions find the database down."""

    def __init__(self, engine: sa.Engine, failures: int) -> None:
        self.engine = engine
        self.failures = failures
        self.attempts = 0

    def __call__(self) -> SqlUnitOfWork:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise DependencyUnavailable("database")
        return SqlUnitOfWork(self.engine)


async def test_a_database_outage_is_retried_and_nothing_is_acked_before_the_commit(
    make_bus: Callable[..., EventBus], engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("extracted.orders.entrypoints.consumer.BACKOFF_START", 0.01)
    bus = make_bus()
    await bus.publish(legacy_event(11))
    await bus.publish(legacy_event(11, "cancelled"))
    flaky = FlakyDatabase(engine, failures=3)
    consumer = OrdersConsumer(bus, flaky, consumer="c1")
    deliveries = await bus.read(GROUP, "c1", count=10, block_ms=1000)
    assert await consumer.process(deliveries)
    assert flaky.attempts == 4 and await pending(bus) == 0
    got = _get(engine, 11)
    assert got is not None and got.status is OrderStatus.CANCELLED

    # Stopped while the database is down: the entries stay pending for the next reader.
    await bus.publish(legacy_event(12))
    down = OrdersConsumer(bus, FlakyDatabase(engine, failures=10**6), consumer="c1")
    deliveries = await bus.read(GROUP, "c1", count=10, block_ms=1000)
    task = asyncio.create_task(down.process(deliveries))
    await asyncio.sleep(0.1)
    down.stopping.set()
    assert await asyncio.wait_for(task, 10) is False
    assert await pending(bus) == 1 and _get(engine, 12) is None
    # The same consumer, restarted, gets its own pending entry first.
    restarted = OrdersConsumer(make_bus(), lambda: SqlUnitOfWork(engine), consumer="c1")
    await restarted.drain()
    assert _get(engine, 12) is not None and await pending(bus) == 0


async def test_a_bus_that_is_down_is_retried_not_fatal(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("extracted.orders.entrypoints.consumer.BACKOFF_START", 0.05)
    bus = RedisStreamBus(f"redis://127.0.0.1:{procs.free_port()}/0", "nothing")
    consumer = OrdersConsumer(bus, lambda: SqlUnitOfWork(engine), consumer="c1", block_ms=100)
    with caplog.at_level(logging.WARNING, "extracted.orders.entrypoints.consumer"):
        task = asyncio.create_task(consumer.run())
        await asyncio.sleep(1.0)
        assert not task.done()
        consumer.stopping.set()
        await asyncio.wait_for(task, 10)
    await bus.close()
    assert any("event bus unavailable" in r.getMessage() for r in caplog.records)


async def test_an_idle_consumer_on_redis_waits_quietly(
    engine: sa.Engine, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py 8 times a read out after socket_connect_timeout (5 s in RedisStreamBus): the
    # blocking read must stay below it, or an idle stack logs an outage every 5 s.
    bus = RedisStreamBus(redis_url, f"{redis_prefix}:idle")
    consumer = OrdersConsumer(bus, lambda: SqlUnitOfWork(engine), consumer="c1")
    with caplog.at_level(logging.WARNING, "extracted.orders.entrypoints.consumer"):
        task = asyncio.create_task(consumer.run())
        await asyncio.sleep(6.5)
        consumer.stopping.set()
        await asyncio.wait_for(task, 10)
    try:
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        await bus._redis.delete(bus.stream)
        await bus.close()
