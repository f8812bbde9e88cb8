"""The legacy -> new merge rule and the drift check (extracted.inventory.domain.sync), pure."""

from __future__ import annotations

from datetime import datetime

from extracted.inventory.domain import NEW_SERVICES_ID_FLOOR, Item, Origin, Reservation
from extracted.inventory.domain.sync import (
    LegacyItem,
    find_drift,
    merge_legacy_item,
    new_item_from_legacy,
)

NOW = datetime(2026, 1, 1, 12, 0, 0)
BIG = NEW_SERVICES_ID_FLOOR


def legacy(on_hand: int = 10, reservations: dict[int, int] | None = None) -> LegacyItem:
    return LegacyItem("SKU-0001", "Widget", 250, on_hand, reservations or {})


def synced(on_hand: int = 10, reservations: dict[int, int] | None = None) -> Item:
    item, _ = new_item_from_legacy(legacy(on_hand, reservations), NOW)
    return item


def test_a_new_item_is_copied_whole_with_origin_legacy_but_not_new_service_orders() -> None:
    item, counts = new_item_from_legacy(legacy(10, {1: 2, 3: 1, BIG: 5}), NOW)
    assert (item.on_hand, item.origin) == (10, Origin.LEGACY)
    assert {k: r.qty for k, r in item.reservations.items()} == {1: 2, 3: 1}
    assert all(r.origin == Origin.LEGACY for r in item.reservations.values())
    assert (counts.items_created, counts.reservations_created) == (1, 2)
    assert item.events == []


def test_merging_the_same_copy_again_changes_nothing() -> None:
    item = synced(10, {1: 2})
    counts = merge_legacy_item(item, legacy(10, {1: 2}), NOW)
    assert counts.changed == 0 and counts.skipped == 0
    assert (counts.items_unchanged, counts.reservations_unchanged) == (1, 1)


def test_legacy_owned_records_follow_the_legacy() -> None:
    item = synced(10, {1: 2, 2: 1})
    theirs = LegacyItem("SKU-0001", "Renamed", 300, 12, {1: 3, 4: 1})
    counts = merge_legacy_item(item, theirs, NOW)
    assert (item.name, item.price_cents, item.on_hand) == ("Renamed", 300, 12)
    assert {k: r.qty for k, r in item.reservations.items()} == {1: 3, 4: 1}
    assert (counts.items_updated, counts.reservations_created) == (1, 1)
    assert (counts.reservations_updated, counts.reservations_deleted) == (1, 1)
    assert item.events == []  # sync never records domain events: nothing is published


def test_our_restock_is_kept_until_the_legacy_shows_it_then_the_legacy_owns_it_again() -> None:
    item = synced(10)
    item.restock(5, NOW)
    counts = merge_legacy_item(item, legacy(10), NOW)  # the legacy has not caught up
    assert item.on_hand == 15 and counts.skipped == 1 and counts.changed == 0
    counts = merge_legacy_item(item, legacy(15), NOW)  # the event was applied
    assert item.origin == Origin.LEGACY and counts.changed == 0 and counts.skipped == 0
    merge_legacy_item(item, legacy(20), NOW)  # a restock made on the legacy (fallback)
    assert item.on_hand == 20


def test_name_and_price_always_follow_the_legacy_even_while_on_hand_is_pending() -> None:
    item = synced(10)
    item.restock(5, NOW)
    merge_legacy_item(item, LegacyItem("SKU-0001", "New name", 999, 10), NOW)
    assert (item.name, item.price_cents, item.on_hand) == ("New name", 999, 15)


def test_our_reservation_is_not_deleted_before_the_legacy_has_it() -> None:
    item = synced(10)
    item.reserve(7, 2, NOW)
    counts = merge_legacy_item(item, legacy(10), NOW)
    assert 7 in item.reservations and counts.skipped == 1
    merge_legacy_item(item, legacy(10, {7: 2}), NOW)
    assert item.reservations[7].origin == Origin.LEGACY
    merge_legacy_item(item, legacy(10), NOW)  # now the legacy released it (fallback cancel)
    assert 7 not in item.reservations


def test_our_release_is_not_undone_by_the_legacys_stale_copy() -> None:
    item = synced(10, {7: 2})
    item.release(7, NOW)
    counts = merge_legacy_item(item, legacy(10, {7: 2}), NOW)
    assert 7 not in item.reservations and counts.skipped == 1
    merge_legacy_item(item, legacy(10), NOW)  # the legacy applied the release
    assert item.released == {}
    merge_legacy_item(item, legacy(10, {7: 1}), NOW)  # a later legacy reservation is copied
    assert item.reservations[7].qty == 1


def test_new_service_reservations_are_never_touched() -> None:
    item = synced(10)
    item.reserve(BIG + 1, 2, NOW)
    item.reservations[BIG + 1].origin = Origin.LEGACY  # even once confirmed
    merge_legacy_item(item, legacy(10, {BIG + 2: 1}), NOW)
    assert set(item.reservations) == {BIG + 1}


def test_drift_lists_each_differing_record_with_both_values() -> None:
    ours = synced(10, {1: 2, 2: 1})
    ours.restock(5, NOW)
    theirs = LegacyItem("SKU-0001", "Widget", 250, 10, {1: 3, 2: 1, 9: 1})
    only_ours = Item("SKU-0002", "Other", 100, 1)
    drifts = find_drift({"SKU-0001": ours, "SKU-0002": only_ours}, {"SKU-0001": theirs})
    lines = [d.line() for d in drifts]
    assert lines == [
        "item SKU-0001 on_hand: legacy=10 inventory=15 "
        "(inventory change not yet applied by the legacy)",
        "reservation SKU-0001/1 qty: legacy=3 inventory=2",
        "reservation SKU-0001/9 qty: legacy=1 inventory=missing",
        "item SKU-0002 exists: legacy=missing inventory=True",
    ]
    assert find_drift({"SKU-0001": synced(10, {1: 2})}, {"SKU-0001": legacy(10, {1: 2})}) == []


def test_drift_compares_reservations_of_new_orders_too() -> None:
    ours = synced(10)
    ours.reservations[BIG] = Reservation("SKU-0001", BIG, 1, Origin.INVENTORY, NOW)
    assert [d.record for d in find_drift({"SKU-0001": ours}, {"SKU-0001": legacy(10)})] == [
        f"reservation SKU-0001/{BIG}"
    ]
