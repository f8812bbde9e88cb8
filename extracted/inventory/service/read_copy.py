"""Use cases of the read copy (while the legacy is the stock authority).

The copy changes in exactly two ways, both by version (rules: `Item.accepts`):

* `apply_changed`: the legacy's `inventory.changed` state of one item, from the event bus.
  Unknown skus are inserted. Nothing applied is ever published (no domain events).
* `confirm_*`: one of our forwarded writes, as the legacy confirmed it (answer + version), so a
  client reads its own write at once; the item's `floor` then hides older events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from extracted.events import INVENTORY_CHANGED, Event
from extracted.inventory.domain.model import Item, ItemState, Origin
from extracted.inventory.service.handlers import Clock, utc_now
from extracted.inventory.service.ports import UnitOfWorkFactory
from extracted.inventory.service.views import state_of_changed
from extracted.stock_authority import Authority

log = logging.getLogger("extracted.inventory.read_copy")


class Applied(StrEnum):
    """What `apply_changed` did."""

    INSERTED = "inserted"
    APPLIED = "applied"
    STALE = "stale"  # not newer than the copy (a duplicate, reordered, or below the floor)


def apply_changed(
    state: ItemState, version: int, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now
) -> Applied:
    """Apply the legacy's state of one item at `version`, in one locking transaction."""
    with uow_factory(True) as uow:
        item = uow.items.get(state.sku)
        if item is None:
            item = Item(state.sku, state.name, state.price_cents, state.on_hand, Origin.LEGACY)
            item.apply_state(state, version, clock())
            uow.items.add(item)
            uow.commit()
            return Applied.INSERTED
        if not item.apply_state(state, version, clock()):
            return Applied.STALE
        uow.commit()
        return Applied.APPLIED


def confirm_reserve(
    sku: str,
    order_id: int,
    qty: int,
    version: int,
    uow_factory: UnitOfWorkFactory,
    clock: Clock = utc_now,
) -> bool:
    """Mirror a reservation the legacy answered 200/201 with `version`; True if applied."""
    return _confirm(
        sku, uow_factory, lambda item: item.confirm_reserve(order_id, qty, version, clock())
    )


def confirm_release(sku: str, order_id: int, version: int, uow_factory: UnitOfWorkFactory) -> bool:
    """Mirror a release the legacy answered 204 with `version`; True if applied."""
    return _confirm(sku, uow_factory, lambda item: item.confirm_release(order_id, version))


def confirm_restock(
    sku: str, on_hand: int, version: int, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now
) -> bool:
    """Mirror the on_hand the legacy answered a restock with at `version`; True if applied."""
    return _confirm(sku, uow_factory, lambda item: item.confirm_on_hand(on_hand, version, clock()))


def _confirm(sku: str, uow_factory: UnitOfWorkFactory, change: Callable[[Item], bool]) -> bool:
    with uow_factory(True) as uow:
        item = uow.items.get(sku)
        # An item the copy does not hold yet arrives whole with its event.
        if item is None or not change(item):
            return False
        uow.commit()
        return True


def handle_event(
    event: Event, authority: Authority, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now
) -> str:
    """What the follower does with one event from the bus; returns the outcome (for logs).

    Only the legacy's `inventory.changed` is applied, and only while the legacy is the stock
    authority. Order events never touch stock (their writer did that through the authority);
    our own events are skipped (no echo).
    """
    if event.type != INVENTORY_CHANGED:
        return "skipped (not a stock event)"
    if event.origin != "legacy":
        return f"skipped (origin {event.origin})"
    if authority == "inventory":
        log.warning(
            "inventory.changed from the legacy for %s v%d while this service is the stock "
            "authority: ignored (is STOCK_AUTHORITY the same on every process?)",
            event.aggregate,
            event.aggregate_version,
        )
        return "ignored (this service is the authority)"
    state = state_of_changed(event.data)
    return apply_changed(state, event.aggregate_version, uow_factory, clock).value
