"""Legacy -> new copy rules (pure): merge one legacy item into ours, and find drift.

The no-echo rule, per record:

* Every stored record carries `origin`. Records the sync writes get origin "legacy"; records
  this service changes (a restock's `on_hand`, a reservation made or released through the
  API) get origin "inventory" and are announced to the legacy through `inventory.changed`
  events. Sync itself never records domain events, so nothing it writes is echoed back.
* `name` and `price_cents` belong to the legacy (this service never changes them): copied
  whenever they differ.
* `on_hand` with origin "legacy" follows the legacy. With origin "inventory" our change has
  not been confirmed yet: while the legacy shows another value it has not caught up, so ours
  is kept (counted as skipped); once it shows our value, the record flips back to origin
  "legacy" and later legacy changes (e.g. restocks made while the legacy served as fallback)
  are copied again.
* Reservations of orders >= NEW_SERVICES_ID_FLOOR belong to the new services: sync never
  creates, updates or deletes them.
* Other reservations follow the same rule as `on_hand`: origin "legacy" follows the legacy
  (created, updated, deleted); origin "inventory" is kept until the legacy shows the same
  qty, then flips to "legacy". A reservation this service released leaves a tombstone, so the
  legacy's stale copy is not resurrected; the tombstone goes once the legacy dropped it too.
* Items are never deleted (the contract has no way to delete one).

When both sides changed the same record (our change unconfirmed, the legacy changed it
meanwhile), ours wins and `sync --check` reports the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from extracted.inventory.domain.model import NEW_SERVICES_ID_FLOOR, Item, Origin, Reservation


@dataclass(frozen=True)
class LegacyItem:
    """The legacy's copy of one item: its fields and its reservations (order_id -> qty)."""

    sku: str
    name: str
    price_cents: int
    on_hand: int
    reservations: dict[int, int] = field(default_factory=dict)


@dataclass
class SyncCounts:
    """What one sync run did, per record kind."""

    items_created: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    reservations_created: int = 0
    reservations_updated: int = 0
    reservations_deleted: int = 0
    reservations_unchanged: int = 0
    skipped: int = 0  # our unconfirmed changes kept although the legacy differs

    def add(self, other: SyncCounts) -> None:
        """Accumulate `other` into self."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def changed(self) -> int:
        """Records written with new data (0 on an idempotent second run)."""
        return (
            self.items_created
            + self.items_updated
            + self.reservations_created
            + self.reservations_updated
            + self.reservations_deleted
        )

    def summary(self) -> str:
        """One line for the CLI: created/updated/unchanged per kind."""
        return (
            f"items: created={self.items_created} updated={self.items_updated} "
            f"unchanged={self.items_unchanged}; reservations: "
            f"created={self.reservations_created} updated={self.reservations_updated} "
            f"deleted={self.reservations_deleted} unchanged={self.reservations_unchanged}; "
            f"skipped={self.skipped}"
        )


def new_item_from_legacy(legacy: LegacyItem, now: datetime) -> tuple[Item, SyncCounts]:
    """An item we do not have yet, copied whole from the legacy (origin "legacy")."""
    item = Item(legacy.sku, legacy.name, legacy.price_cents, legacy.on_hand, Origin.LEGACY, now)
    counts = SyncCounts(items_created=1)
    for order_id, qty in legacy.reservations.items():
        if order_id >= NEW_SERVICES_ID_FLOOR:
            continue
        item.reservations[order_id] = Reservation(legacy.sku, order_id, qty, Origin.LEGACY, now)
        counts.reservations_created += 1
    return item, counts


def merge_legacy_item(item: Item, legacy: LegacyItem, now: datetime) -> SyncCounts:
    """Apply the legacy's copy to `item` in place following the module's rule; no events."""
    counts = SyncCounts()
    changed = False
    if (item.name, item.price_cents) != (legacy.name, legacy.price_cents):
        item.name, item.price_cents = legacy.name, legacy.price_cents
        changed = True
    if item.origin == Origin.LEGACY:
        if item.on_hand != legacy.on_hand:
            item.on_hand = legacy.on_hand
            changed = True
    elif item.on_hand == legacy.on_hand:
        item.origin = Origin.LEGACY  # the legacy caught up: it owns the value again
    else:
        counts.skipped += 1
    if changed:
        item.updated_at = now
        counts.items_updated += 1
    else:
        counts.items_unchanged += 1
    _merge_reservations(item, legacy, now, counts)
    return counts


def _merge_reservations(item: Item, legacy: LegacyItem, now: datetime, counts: SyncCounts) -> None:
    order_ids = set(item.reservations) | set(legacy.reservations) | set(item.released)
    for order_id in sorted(order_ids):
        if order_id >= NEW_SERVICES_ID_FLOOR:
            continue
        ours = item.reservations.get(order_id)
        theirs = legacy.reservations.get(order_id)
        if ours is None:
            if order_id in item.released:
                if theirs is None:
                    del item.released[order_id]  # the legacy applied our release
                else:
                    counts.skipped += 1
            elif theirs is not None:
                item.reservations[order_id] = Reservation(
                    item.sku, order_id, theirs, Origin.LEGACY, now
                )
                counts.reservations_created += 1
        elif ours.origin != Origin.LEGACY:
            if theirs == ours.qty:
                ours.origin = Origin.LEGACY
                counts.reservations_unchanged += 1
            else:
                counts.skipped += 1
        elif theirs is None:
            del item.reservations[order_id]
            counts.reservations_deleted += 1
        elif theirs != ours.qty:
            ours.qty, ours.updated_at = theirs, now
            counts.reservations_updated += 1
        else:
            counts.reservations_unchanged += 1


@dataclass(frozen=True)
class Drift:
    """One record whose two copies differ (None = the record is missing on that side)."""

    record: str  # "item SKU-0001" or "reservation SKU-0001/17"
    field: str
    legacy: object
    inventory: object
    pending: bool = False  # our unconfirmed change: the legacy has not caught up yet

    def line(self) -> str:
        """A human line: the record, the field and both values."""
        note = " (inventory change not yet applied by the legacy)" if self.pending else ""
        return (
            f"{self.record} {self.field}: legacy={_show(self.legacy)} "
            f"inventory={_show(self.inventory)}{note}"
        )


def _show(value: object) -> str:
    return "missing" if value is None else repr(value) if isinstance(value, str) else str(value)


def find_drift(ours: dict[str, Item], legacy: dict[str, LegacyItem]) -> list[Drift]:
    """Every record (items' fields, reservations' qty) that differs between the two copies."""
    drifts: list[Drift] = []
    for sku in sorted(set(ours) | set(legacy)):
        mine, theirs = ours.get(sku), legacy.get(sku)
        record = f"item {sku}"
        if mine is None or theirs is None:
            drifts.append(
                Drift(record, "exists", theirs is not None or None, mine is not None or None)
            )
            continue
        for name in ("name", "price_cents", "on_hand"):
            a, b = getattr(theirs, name), getattr(mine, name)
            if a != b:
                pending = name == "on_hand" and mine.origin != Origin.LEGACY
                drifts.append(Drift(record, name, a, b, pending))
        for order_id in sorted(set(mine.reservations) | set(theirs.reservations)):
            ours_r = mine.reservations.get(order_id)
            qty_ours = ours_r.qty if ours_r else None
            qty_theirs = theirs.reservations.get(order_id)
            if qty_ours != qty_theirs:
                pending = (ours_r is not None and ours_r.origin != Origin.LEGACY) or (
                    order_id in mine.released
                )
                drifts.append(
                    Drift(f"reservation {sku}/{order_id}", "qty", qty_theirs, qty_ours, pending)
                )
    return drifts
