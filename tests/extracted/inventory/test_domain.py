"""The Item aggregate's rules, pure: the authority's writes and versions, the read copy's rule."""

from __future__ import annotations

from datetime import datetime

import pytest

from extracted.inventory.domain import (
    InsufficientStock,
    Item,
    ItemState,
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
    assert (it.reserved, it.version) == (2, 1)


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


def test_restock_grows_on_hand_and_marks_it_ours() -> None:
    it = item(10)
    it.restock(5, NOW)
    assert it.on_hand == 15 and it.origin == Origin.INVENTORY and it.updated_at == NOW
    assert it.events == [Restocked("SKU-0001", 5)]
    with pytest.raises(ValueError):
        it.restock(0, NOW)


def test_every_change_bumps_the_version_by_one_and_nothing_else_does() -> None:
    it = item(10)
    assert it.version == 0
    it.reserve(1, 2, NOW)
    it.reserve(1, 2, NOW)  # a repeat
    with pytest.raises(InsufficientStock):
        it.reserve(2, 99, NOW)
    it.release(5, NOW)  # nothing held
    assert it.version == 1
    it.release(1, NOW)
    it.restock(1, NOW)
    assert it.version == 3 and len(it.events) == 3


def test_reservations_sort_by_order_id() -> None:
    it = item(100)
    for order_id in (30, 2, 17):
        it.reserve(order_id, 1, NOW)
    assert [r.order_id for r in it.sorted_reservations()] == [2, 17, 30]
    assert it.state() == ItemState("SKU-0001", "Widget", 250, 100, {2: 1, 17: 1, 30: 1})


# --- read copy --------------------------------------------------------------------------------


def state(on_hand: int, reservations: dict[int, int], name: str = "Widget") -> ItemState:
    return ItemState("SKU-0001", name, 250, on_hand, reservations)


def test_apply_state_replaces_everything_when_newer_and_records_no_event() -> None:
    it = item(10)
    it.reservations.clear()
    assert it.apply_state(state(12, {4: 1, 2: 3}, "New name"), 3, NOW)
    assert it.state() == state(12, {2: 3, 4: 1}, "New name")
    assert (it.version, it.origin, it.events) == (3, Origin.LEGACY, [])
    assert not it.apply_state(state(1, {}), 3, NOW)  # a duplicate
    assert not it.apply_state(state(1, {}), 2, NOW)  # older
    assert it.on_hand == 12


def test_a_confirmed_write_shows_at_once_and_hides_older_events() -> None:
    it = item(10)
    it.apply_state(state(10, {}), 4, NOW)
    assert it.confirm_reserve(7, 2, version=6, now=NOW)
    assert (it.reservations[7].qty, it.version, it.floor) == (2, 4, 6)
    assert not it.apply_state(state(10, {}), 5, NOW)  # older than our write: would hide it
    assert it.apply_state(state(11, {7: 2, 8: 1}), 6, NOW)  # the write's own event
    assert (it.state(), it.version) == (state(11, {7: 2, 8: 1}), 6)


def test_a_confirmation_the_stream_already_passed_changes_nothing() -> None:
    it = item(10)
    it.apply_state(state(10, {}), 7, NOW)  # v7 released what v6 reserved
    assert not it.confirm_reserve(7, 2, version=6, now=NOW)
    assert not it.confirm_release(7, version=7)
    assert not it.confirm_on_hand(99, version=5, now=NOW)
    assert (it.reservations, it.on_hand, it.floor) == ({}, 10, 0)


def test_an_older_confirmation_after_a_newer_one_is_ignored() -> None:
    it = item(10)
    assert it.confirm_release(7, version=9)
    assert not it.confirm_reserve(7, 2, version=8, now=NOW)
    assert 7 not in it.reservations
    assert it.confirm_on_hand(20, version=10, now=NOW)
    assert (it.on_hand, it.floor, it.version, it.events) == (20, 10, 0, [])
