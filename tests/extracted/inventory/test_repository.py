"""The SQLAlchemy repository and unit of work on SQLite and on real PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import sqlalchemy as sa

from extracted.events import INVENTORY_CHANGED, Event
from extracted.inventory.adapters.database import Database, normalise_url
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.domain import InsufficientStock, Item, Origin
from extracted.inventory.domain.sync import LegacyItem
from extracted.inventory.service import handlers
from extracted.inventory.service.handlers import Release, Reserve, Restock
from extracted.inventory.service.sync import sync_once
from tests.extracted.inventory.fakes import FakeLegacy

NOW = datetime(2026, 1, 1, 12, 0, 0)


def seed(db: Database, *items: Item) -> None:
    with uow_factory(db)(True) as uow:
        for item in items:
            uow.items.add(item)
        uow.commit()


def outbox_events(db: Database) -> list[Event]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars()
        return [Event.from_json(p) for p in rows]


def test_urls_are_rewritten_for_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///var/x.db") == "sqlite:///var/x.db"


def test_items_round_trip_with_reservations_tombstones_and_origin(database: Database) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0002", "B", 200, 20), Item("SKU-0001", "A", 100, 10))
    handlers.reserve(Reserve("SKU-0001", 5, 2), uows)
    handlers.reserve(Reserve("SKU-0001", 3, 1), uows)
    handlers.release(Release("SKU-0001", 3), uows)
    handlers.restock(Restock("SKU-0001", 4), uows)
    item = handlers.get_item("SKU-0001", uows)
    assert (item.on_hand, item.reserved, item.origin) == (14, 2, Origin.INVENTORY)
    assert list(item.reservations) == [5] and list(item.released) == [3]
    assert item.reservations[5].origin == Origin.INVENTORY
    page, total = handlers.list_items(1, 1, uows)
    assert [i.sku for i in page] == ["SKU-0002"] and total == 2


def test_each_change_writes_one_event_with_the_full_state_in_its_transaction(
    database: Database,
) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10))
    handlers.reserve(Reserve("SKU-0001", 2, 3), uows)
    handlers.reserve(Reserve("SKU-0001", 2, 3), uows)  # a repeat: no change, no event
    handlers.reserve(Reserve("SKU-0001", 1, 1), uows)
    handlers.release(Release("SKU-0001", 2), uows)
    handlers.release(Release("SKU-0001", 2), uows)  # nothing to release: no event
    handlers.restock(Restock("SKU-0001", 5), uows)
    with pytest.raises(InsufficientStock):
        handlers.reserve(Reserve("SKU-0001", 9, 100), uows)  # rolled back: no event
    events = outbox_events(database)
    assert [e.type for e in events] == [INVENTORY_CHANGED] * 4
    assert all(e.origin == "inventory" for e in events)
    assert events[1].data == {
        "item": {
            "sku": "SKU-0001",
            "name": "A",
            "price_cents": 100,
            "on_hand": 10,
            "reserved": 4,
            "available": 6,
        },
        "reservations": [
            {"sku": "SKU-0001", "order_id": 1, "qty": 1},
            {"sku": "SKU-0001", "order_id": 2, "qty": 3},
        ],
    }
    assert events[3].data["item"]["on_hand"] == 15


def test_sync_writes_through_the_adapter_without_any_event(database: Database) -> None:
    uows = uow_factory(database)
    legacy = FakeLegacy(LegacyItem("SKU-0001", "A", 100, 10, {1: 2, 4: 1}))
    assert sync_once(legacy, uows).changed == 3
    legacy.by_sku["SKU-0001"] = LegacyItem("SKU-0001", "A", 100, 12, {1: 3})
    counts = sync_once(legacy, uows)
    assert (counts.items_updated, counts.reservations_updated) == (1, 1)
    assert counts.reservations_deleted == 1
    assert sync_once(legacy, uows).changed == 0
    item = handlers.get_item("SKU-0001", uows)
    assert (item.on_hand, {k: r.qty for k, r in item.reservations.items()}) == (12, {1: 3})
    assert outbox_events(database) == []


def test_concurrent_reservations_never_oversell(database: Database) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10))
    start = threading.Barrier(8)

    def attempt(order_id: int) -> bool:
        if order_id <= 8:
            start.wait(timeout=10)
        try:
            handlers.reserve(Reserve("SKU-0001", order_id, 1), uows)
        except InsufficientStock:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(1, 25)))
    assert sum(results) == 10
    item = handlers.get_item("SKU-0001", uows)
    assert (item.reserved, item.available) == (10, 0)
    assert len(outbox_events(database)) == 10


def test_concurrent_repeats_of_one_reservation_create_it_once(database: Database) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10))
    start = threading.Barrier(6)

    def attempt(_: int) -> bool:
        start.wait(timeout=10)
        return handlers.reserve(Reserve("SKU-0001", 42, 2), uows).created

    with ThreadPoolExecutor(max_workers=6) as pool:
        created = list(pool.map(attempt, range(6)))
    assert created.count(True) == 1
    assert handlers.get_item("SKU-0001", uows).reserved == 2
    assert len(outbox_events(database)) == 1
