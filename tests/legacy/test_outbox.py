"""The legacy's transactional outbox (SPEC §3): every change it makes, in the same transaction.

The legacy is the stock authority here (STOCK_AUTHORITY unset), so its stock changes are
published too, each with the item's next version; changes copied from another side never are.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from extracted.events import Event, OutboxRelay, SqliteLogBus
from legacy_monolith.consumer import apply_event
from legacy_monolith.db import outbox
from tests.extracted.events.factories import order_event
from tests.legacy.helpers import body, db_of

ORDER = {"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 2}]}


def _events(app: Flask) -> list[dict]:
    with db_of(app).engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
        return [orjson.loads(r.payload) for r in rows]


def _since(app: Flask, before: int) -> list[dict]:
    return _events(app)[before:]


def test_stock_writes_publish_the_item_with_its_next_version(app: Flask, shop: FlaskClient) -> None:
    start = len(_events(app))
    made = shop.post("/api/inventory/SKU-A/reservations", json={"order_id": 7, "qty": 3})
    again = shop.post("/api/inventory/SKU-A/reservations", json={"order_id": 7, "qty": 3})
    released = shop.delete("/api/inventory/SKU-A/reservations/7")
    nothing = shop.delete("/api/inventory/SKU-A/reservations/7")
    restocked = shop.post("/api/inventory/SKU-A/restock", json={"qty": 4})
    events = _since(app, start)
    assert [(e["type"], e["aggregate"], e["aggregate_version"]) for e in events] == [
        ("inventory.changed", "item:SKU-A", 2),
        ("inventory.changed", "item:SKU-A", 3),
        ("inventory.changed", "item:SKU-A", 4),
    ]  # version 1 was the item's creation; repeats and no-ops change nothing
    assert [r.headers["X-Stock-Version"] for r in (made, again, released, nothing, restocked)] == [
        "2",
        "2",
        "3",
        "3",
        "4",
    ]
    assert events[0]["data"]["reservations"] == [{"sku": "SKU-A", "order_id": 7, "qty": 3}]
    assert events[2]["data"]["item"] == body(restocked)
    assert all(e["origin"] == "legacy" for e in events)


def test_orders_publish_placed_and_cancelled_with_their_stock(
    app: Flask, shop: FlaskClient
) -> None:
    start = len(_events(app))
    order = body(shop.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k1"}))
    shop.post(f"/api/orders/{order['id']}/cancel")
    shop.post(f"/api/orders/{order['id']}/cancel")  # already cancelled: nothing new
    events = _since(app, start)
    kinds = [(e["type"], e["aggregate_version"]) for e in events]
    assert kinds == [
        ("order.placed", 1),
        ("inventory.changed", 2),
        ("order.cancelled", 2),
        ("inventory.changed", 3),
    ]
    assert events[0]["data"]["order"] == order
    assert events[0]["idempotency_key"] == "k1"
    assert events[0]["data"]["idempotency"] == {"key": "k1", "request": ORDER, "response": order}
    assert events[3]["data"]["reservations"] == []


def test_a_refused_write_publishes_nothing(app: Flask, shop: FlaskClient) -> None:
    start = len(_events(app))
    refused = shop.post(
        "/api/orders", json={"customer_id": 1, "items": [{"sku": "SKU-C", "qty": 1}]}
    )
    assert refused.status_code == 409
    assert _since(app, start) == []


def test_changes_copied_from_another_side_are_never_echoed(app: Flask, shop: FlaskClient) -> None:
    start = len(_events(app))
    db = db_of(app)
    assert apply_event(db, order_event(1_000_000_001)) == "applied"
    assert apply_event(db, order_event(1_000_000_001, "cancelled")) == "applied"
    assert _since(app, start) == []
    # but the legacy cancelling a new service's order is the legacy's own write: published
    apply_event(db, order_event(1_000_000_002))
    shop.post("/api/orders/1000000002/cancel")
    assert [(e["type"], e["origin"]) for e in _since(app, start)] == [("order.cancelled", "legacy")]


async def test_the_relay_publishes_the_outbox_in_order(
    app: Flask, shop: FlaskClient, tmp_path: Path
) -> None:
    shop.post("/api/orders", json=ORDER)
    expected = [e["event_id"] for e in _events(app)]
    bus = SqliteLogBus(tmp_path / "events.db")
    try:
        relay = OutboxRelay(db_of(app).engine, outbox, bus)
        assert await relay.relay_once() == len(expected)
        assert await relay.relay_once() == 0  # published rows are marked
        got = await bus.read("g", "c", count=100, block_ms=0)
        assert [d.event.event_id for d in got] == expected
        assert all(isinstance(d.event, Event) for d in got)
    finally:
        await bus.close()
