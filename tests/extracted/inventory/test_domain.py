"""The Item aggregate's rules, pure."""

from __future__ import annotations

from datetime import datetime

import pytest

from extracted.inventory.domain import (
    NEW_SERVICES_ID_FLOOR,
    InsufficientStock,
    Item,
    Origin,
    ReservationConflict,
    ReservationMade,
    ReservationReleased,
    Restocked,
)

NOW = datetime(2026, 1, 1, 12, 0, 0)


def item(on_hand: int = 10) -> Item:
    return Item("SKU-0001", "Widget", 250, on_hand)


def test_available_is_on_hand_minus_the_sum_of_reservations() -> None:
    it = item(10)
    it.reserve(1, 3, NOW)
    it.reserve(2, 4, NOW)
    assert (it.reserved, it.available) == (7, 3)


def test_reserve_creates_once_and_repeats_idempotently() -> None:
    it = item()
    first, created = it.reserve(7, 2, NOW)
    again, created_again = it.reserve(7, 2, NOW)
    assert created and not created_again
    assert again == first and it.reserved == 2
    assert it.events == [ReservationMade("SKU-0001", 7, 2)]


def test_same_order_other_qty_is_a_conflict_and_changes_nothing() -> None:
    it = item()
    it.reserve(7, 2, NOW)
    with pytest.raises(ReservationConflict) as exc:
        it.reserve(7, 3, NOW)
    assert (exc.value.existing_qty, exc.value.requested_qty) == (2, 3)
    assert it.reserved == 2


def test_more_than_available_is_insufficient_stock() -> None:
    it = item(5)
    it.reserve(1, 4, NOW)
    with pytest.raises(InsufficientStock) as exc:
        it.reserve(2, 2, NOW)
    assert exc.value.available == 1
    it.reserve(3, 1, NOW)  # exactly the rest is fine
    assert it.available == 0


def test_release_drops_the_reservation_and_is_a_noop_when_absent() -> None:
    it = item()
    it.reserve(1, 3, NOW)
    assert it.release(1, NOW) is True
    assert it.release(1, NOW) is False
    assert it.reserved == 0
    assert it.events[-1] == ReservationReleased("SKU-0001", 1, 3)
    assert len(it.events) == 2


def test_release_of_a_legacy_order_leaves_a_tombstone_new_orders_do_not() -> None:
    it = item()
    it.reserve(5, 1, NOW)
    it.reserve(NEW_SERVICES_ID_FLOOR, 1, NOW)
    it.release(5, NOW)
    it.release(NEW_SERVICES_ID_FLOOR, NOW)
    assert it.released == {5: NOW}
    it.reserve(5, 1, NOW)  # reserving again clears the tombstone
    assert it.released == {}


def test_restock_grows_on_hand_and_marks_it_ours() -> None:
    it = item(10)
    it.restock(5, NOW)
    assert it.on_hand == 15 and it.origin == Origin.INVENTORY and it.updated_at == NOW
    assert it.events == [Restocked("SKU-0001", 5)]
    with pytest.raises(ValueError):
        it.restock(0, NOW)


def test_reservations_sort_by_order_id() -> None:
    it = item(100)
    for order_id in (30, 2, 17):
        it.reserve(order_id, 1, NOW)
    assert [r.order_id for r in it.sorted_reservations()] == [2, 17, 30]
