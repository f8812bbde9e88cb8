"""The SQLAlchemy repository and unit of work on SQLite and on real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from extracted.events import INVENTORY_CHANGED, Event
from extracted.inventory.adapters import unit_of_work
from extracted.inventory.adapters.database import Database, normalise_url
from extracted.inventory.adapters.orm import items, outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.domain import InsufficientStock, Item, ItemState, Origin
from extracted.inventory.domain.backfill import Progress
from extracted.inventory.domain.commands import Release, Reserve, Restock
from extracted.inventory.service import handlers, read_copy
from extracted.inventory.service.backfill import backfill
from tests.extracted.inventory.fakes import FakeLegacy

NOW = datetime(2026, 1, 1, 12, 0, 0)


def seed(db: Database, *seeded: Item) -> None:
    with uow_factory(db)(True) as uow:
        for item in seeded:
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


def test_items_round_trip_with_reservations_version_and_origin(database: Database) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0002", "B", 200, 20), Item("SKU-0001", "A", 100, 10))
    handlers.reserve(Reserve("SKU-0001", 5, 2), uows)
    handlers.reserve(Reserve("SKU-0001", 3, 1), uows)
    handlers.release(Release("SKU-0001", 3), uows)
    handlers.restock(Restock("SKU-0001", 4), uows)
    item = handlers.get_item("SKU-0001", uows)
    assert (item.on_hand, item.reserved, item.origin, item.version) == (14, 2, Origin.INVENTORY, 4)
    assert list(item.reservations) == [5] and item.reservations[5].origin == Origin.INVENTORY
    page, total = handlers.list_items(1, 1, uows)
    assert [i.sku for i in page] == ["SKU-0002"] and total == 2 and page[0].version == 0


def test_each_change_bumps_the_version_and_writes_one_event_at_it(database: Database) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10))
    handlers.reserve(Reserve("SKU-0001", 2, 3), uows)
    assert handlers.reserve(Reserve("SKU-0001", 2, 3), uows).version == 1  # a repeat: no event
    handlers.reserve(Reserve("SKU-0001", 1, 1), uows)
    handlers.release(Release("SKU-0001", 2), uows)
    assert handlers.release(Release("SKU-0001", 2), uows).version == 3  # nothing to release
    handlers.restock(Restock("SKU-0001", 5), uows)
    with pytest.raises(InsufficientStock):
        handlers.reserve(Reserve("SKU-0001", 9, 100), uows)  # rolled back: no event
    events = outbox_events(database)
    assert [e.type for e in events] == [INVENTORY_CHANGED] * 4
    assert [(e.aggregate, e.aggregate_version) for e in events] == [
        ("item:SKU-0001", v) for v in (1, 2, 3, 4)
    ]
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
    assert handlers.get_item("SKU-0001", uows).version == 4


def test_the_change_and_its_outbox_row_commit_together_or_not_at_all(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10))

    def broken(*_args: object) -> None:
        raise RuntimeError("outbox insert failed")

    monkeypatch.setattr(unit_of_work, "add_to_outbox", broken)
    with pytest.raises(RuntimeError):
        handlers.restock(Restock("SKU-0001", 5), uows)
    item = handlers.get_item("SKU-0001", uows)
    assert (item.on_hand, item.version) == (10, 0) and outbox_events(database) == []


def test_concurrent_reservations_never_oversell_and_versions_are_gapless(
    database: Database,
) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10), Item("SKU-0002", "B", 100, 6))
    start = threading.Barrier(8)

    def attempt(n: int) -> int | None:
        if n < 8:
            start.wait(timeout=10)
        sku = "SKU-0001" if n % 3 else "SKU-0002"
        try:
            return handlers.reserve(Reserve(sku, n + 1, 1), uows).version
        except InsufficientStock:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(30)))
    assert sum(v is not None for v in results) == 10 + 6
    for sku, on_hand in (("SKU-0001", 10), ("SKU-0002", 6)):
        item = handlers.get_item(sku, uows)
        assert (item.reserved, item.available, item.version) == (on_hand, 0, on_hand)
    by_sku: dict[str, list[int]] = defaultdict(list)
    for event in outbox_events(database):
        by_sku[event.aggregate].append(event.aggregate_version)
        # Each event carries the state at its version: reserved == version here.
        assert event.data["item"]["reserved"] == event.aggregate_version
    assert sorted(by_sku["item:SKU-0001"]) == list(range(1, 11))
    assert sorted(by_sku["item:SKU-0002"]) == list(range(1, 7))


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


def test_the_read_copy_applies_by_version_and_publishes_nothing(database: Database) -> None:
    uows = uow_factory(database)
    seed(database, Item("SKU-0001", "A", 100, 10))
    v3 = ItemState("SKU-0001", "A2", 110, 12, {7: 2, 1: 1})
    assert read_copy.apply_changed(v3, 3, uows) == read_copy.Applied.APPLIED
    assert read_copy.apply_changed(ItemState("SKU-0001", "A", 100, 1), 2, uows) == "stale"
    assert read_copy.confirm_release("SKU-0001", 7, 5, uows)
    assert not read_copy.confirm_reserve("SKU-0001", 7, 2, 4, uows)  # older than the floor
    item = handlers.get_item("SKU-0001", uows)
    assert item.state() == ItemState("SKU-0001", "A2", 110, 12, {1: 1})
    assert (item.version, item.floor) == (3, 5)
    new = ItemState("SKU-0009", "N", 5, 1, {})
    assert read_copy.apply_changed(new, 8, uows) == "inserted"
    assert handlers.get_item("SKU-0009", uows).version == 8
    assert outbox_events(database) == []


def test_backfill_saves_its_progress_with_each_page(database: Database) -> None:
    uows = uow_factory(database)
    legacy = FakeLegacy(*(ItemState(f"SKU-{n}", "x", 1, 5, {n: 1}) for n in range(1, 6)))
    legacy.fail_after = 1
    with pytest.raises(ConnectionError):
        backfill(legacy, uows)
    with uows(False) as uow:
        assert uow.sync_state.get("backfill") == Progress("SKU-2", 2, False)
    legacy.fail_after = None
    assert backfill(legacy, uows).progress == Progress("SKU-5", 5, True)
    assert backfill(legacy, uows).already_complete
    assert legacy.pages_read == [0, 2, 4]
    assert [i.state() for i in handlers.list_items(50, 0, uows)[0]] == list(legacy.items())
    assert outbox_events(database) == []


def test_a_database_of_the_previous_release_gets_the_version_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE items (sku VARCHAR(64) PRIMARY KEY, name TEXT NOT NULL, "
                "price_cents BIGINT NOT NULL, on_hand BIGINT NOT NULL, "
                "origin VARCHAR(16) NOT NULL, updated_at DATETIME)"
            )
        )
        conn.execute(sa.text("INSERT INTO items VALUES ('SKU-1', 'A', 1, 5, 'legacy', NULL)"))
    engine.dispose()
    db = Database(url)
    try:
        db.create_schema()
        db.create_schema()  # idempotent
        with db.engine.connect() as conn:
            row = conn.execute(sa.select(items.c.version, items.c.floor)).one()
        assert tuple(row) == (0, 0)
        assert handlers.restock(Restock("SKU-1", 1), uow_factory(db)).version == 1
    finally:
        db.dispose()


def test_two_transactions_saving_the_first_progress_at_once_do_not_collide(
    database: Database,
) -> None:
    uows = uow_factory(database)
    saved = threading.Event()

    def first() -> None:
        with uows(True) as uow:
            uow.sync_state.save("backfill", Progress("SKU-2", 2, False), NOW)
            saved.set()
            time.sleep(0.3)  # the second one waits for this row meanwhile (PostgreSQL)
            uow.commit()

    def second() -> None:
        assert saved.wait(10)
        with uows(True) as uow:
            uow.sync_state.save("backfill", Progress("SKU-4", 4, False), NOW)
            uow.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(first), pool.submit(second)]:
            future.result(timeout=30)
    with uows(False) as uow:
        assert uow.sync_state.get("backfill") == Progress("SKU-4", 4, False)
