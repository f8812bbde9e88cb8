"""Use cases with in-memory fakes: no I/O."""

from __future__ import annotations

from datetime import datetime

import pytest

from extracted.inventory.domain import (
    InsufficientStock,
    Item,
    ItemNotFound,
    ReservationConflict,
    ReservationMade,
    ReservationReleased,
    Restocked,
)
from extracted.inventory.domain.sync import LegacyItem
from extracted.inventory.service import handlers
from extracted.inventory.service.handlers import Release, Reserve, Restock
from extracted.inventory.service.sync import check_drift, sync_once
from extracted.inventory.service.views import inventory_changed_data, item_json
from tests.extracted.inventory.fakes import FakeDatabase, FakeLegacy

NOW = datetime(2026, 1, 1, 12, 0, 0)


def clock() -> datetime:
    return NOW


def db(on_hand: int = 10) -> FakeDatabase:
    return FakeDatabase(Item("SKU-0001", "Widget", 250, on_hand))


def test_reserve_commits_once_and_a_repeat_commits_nothing() -> None:
    fake = db()
    first = handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    again = handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    assert first.created and not again.created
    assert fake.commits == 1
    assert fake.outbox == [ReservationMade("SKU-0001", 1, 3)]
    assert fake.store["SKU-0001"].reserved == 3


def test_failed_reservations_change_nothing() -> None:
    fake = db(5)
    handlers.reserve(Reserve("SKU-0001", 1, 2), fake, clock)
    with pytest.raises(ReservationConflict):
        handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    with pytest.raises(InsufficientStock):
        handlers.reserve(Reserve("SKU-0001", 2, 4), fake, clock)
    with pytest.raises(ItemNotFound):
        handlers.reserve(Reserve("SKU-9999", 2, 1), fake, clock)
    assert fake.commits == 1 and fake.store["SKU-0001"].reserved == 2


def test_release_and_restock_record_their_events() -> None:
    fake = db()
    handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    assert handlers.release(Release("SKU-0001", 1), fake, clock) is True
    assert handlers.release(Release("SKU-0001", 1), fake, clock) is False
    item = handlers.restock(Restock("SKU-0001", 4), fake, clock)
    assert item.on_hand == 14 and fake.store["SKU-0001"].on_hand == 14
    assert fake.outbox[1:] == [ReservationReleased("SKU-0001", 1, 3), Restocked("SKU-0001", 4)]
    assert fake.commits == 3


def test_reads_page_items_and_reservations() -> None:
    fake = FakeDatabase(*(Item(f"SKU-{n:04d}", "x", 1, 100) for n in (3, 1, 2)))
    for order_id in (9, 4, 6):
        handlers.reserve(Reserve("SKU-0002", order_id, 1), fake, clock)
    items, total = handlers.list_items(2, 1, fake)
    assert [i.sku for i in items] == ["SKU-0002", "SKU-0003"] and total == 3
    page, count = handlers.list_reservations("SKU-0002", 2, 1, fake)
    assert [r.order_id for r in page] == [6, 9] and count == 3
    assert handlers.get_item("SKU-0002", fake).reserved == 3
    with pytest.raises(ItemNotFound):
        handlers.list_reservations("SKU-0404", 50, 0, fake)


def test_views_follow_the_contract_key_order() -> None:
    item = Item("SKU-0001", "Widget", 250, 10)
    item.reserve(2, 1, NOW)
    item.reserve(1, 3, NOW)
    assert list(item_json(item)) == [
        "sku",
        "name",
        "price_cents",
        "on_hand",
        "reserved",
        "available",
    ]
    data = inventory_changed_data(item)
    assert data["item"]["available"] == 6
    assert data["reservations"] == [
        {"sku": "SKU-0001", "order_id": 1, "qty": 3},
        {"sku": "SKU-0001", "order_id": 2, "qty": 1},
    ]


def test_sync_copies_then_changes_nothing_and_publishes_nothing() -> None:
    fake = FakeDatabase()
    legacy = FakeLegacy(
        LegacyItem("SKU-0001", "A", 100, 10, {1: 2}),
        LegacyItem("SKU-0002", "B", 200, 20, {}),
    )
    first = sync_once(legacy, fake, clock)
    assert (first.items_created, first.reservations_created) == (2, 1)
    second = sync_once(legacy, fake, clock)
    assert second.changed == 0 and second.items_unchanged == 2
    assert fake.outbox == []
    assert check_drift(legacy, fake) == []


def test_check_reports_what_differs() -> None:
    fake = FakeDatabase()
    legacy = FakeLegacy(LegacyItem("SKU-0001", "A", 100, 10, {1: 2}))
    sync_once(legacy, fake, clock)
    handlers.restock(Restock("SKU-0001", 1), fake, clock)
    assert [d.field for d in check_drift(legacy, fake)] == ["on_hand"]
