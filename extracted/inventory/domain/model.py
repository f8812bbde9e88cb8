"""Item and Reservation: the inventory aggregate and its rules (available = on_hand - reserved).

Two roles, set per deployment by STOCK_AUTHORITY (SPEC §3 "One stock authority"):

* authority: `reserve`, `release` and `restock` decide availability; every change bumps the
  item's `version` by one and records a domain event (the unit of work turns it into ONE
  `inventory.changed` outbox row at that version, in the same transaction).
* read copy: the item mirrors the legacy's record. `apply_state` takes a whole versioned state
  from the legacy's events; the `confirm_*` methods apply one of our forwarded writes the
  legacy confirmed at a version (read-your-writes), raising `floor` so that older events can
  no longer hide it. Neither records domain events: nothing applied is ever published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from extracted.inventory.domain.errors import InsufficientStock, ReservationConflict


class Origin(StrEnum):
    """Who wrote a stored record (never exposed in JSON)."""

    LEGACY = "legacy"
    ORDERS = "orders"
    INVENTORY = "inventory"


@dataclass(frozen=True)
class ReservationMade:
    """Domain event: units were reserved for an order."""

    sku: str
    order_id: int
    qty: int


@dataclass(frozen=True)
class ReservationReleased:
    """Domain event: an order's reservation was released."""

    sku: str
    order_id: int
    qty: int


@dataclass(frozen=True)
class Restocked:
    """Domain event: on_hand grew by qty."""

    sku: str
    qty: int


DomainEvent = ReservationMade | ReservationReleased | Restocked


@dataclass(frozen=True)
class ItemState:
    """One item's stock record as a side holds it: fields and reservations (order_id -> qty)."""

    sku: str
    name: str
    price_cents: int
    on_hand: int
    reservations: dict[int, int] = field(default_factory=dict)


@dataclass
class Reservation:
    """`qty` units of `sku` held for `order_id`."""

    sku: str
    order_id: int
    qty: int
    origin: str = Origin.INVENTORY
    updated_at: datetime | None = None


@dataclass
class Item:
    """A stock-keeping unit with its reservations (the aggregate: one lock covers both).

    `version` is the per-sku version of the stock record: the authority's own counter, or on a
    read copy the version of the last legacy state applied. `floor` (read copy only) is the
    highest version of a forwarded write already mirrored here: events below it are stale.
    `origin`/`updated_at` say who last wrote the record.
    """

    sku: str
    name: str
    price_cents: int
    on_hand: int
    origin: str = Origin.LEGACY
    updated_at: datetime | None = None
    version: int = 0
    floor: int = 0
    reservations: dict[int, Reservation] = field(default_factory=dict)
    events: list[DomainEvent] = field(default_factory=list, compare=False)

    @property
    def reserved(self) -> int:
        """Sum of the qty of every reservation of this item."""
        return sum(r.qty for r in self.reservations.values())

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.on_hand - self.reserved

    def sorted_reservations(self) -> list[Reservation]:
        """The reservations ordered by order_id (the contract's list order)."""
        return [self.reservations[k] for k in sorted(self.reservations)]

    def state(self) -> ItemState:
        """The record as plain data (for comparisons)."""
        return ItemState(
            self.sku,
            self.name,
            self.price_cents,
            self.on_hand,
            {k: r.qty for k, r in sorted(self.reservations.items())},
        )

    # --- the authority's writes ------------------------------------------------------------

    def reserve(self, order_id: int, qty: int, now: datetime) -> tuple[Reservation, bool]:
        """Reserve `qty` for `order_id`; returns (reservation, created).

        The same (order_id, qty) again is an idempotent repeat (created=False, no new version);
        another qty for the same order is a conflict; more than `available` is insufficient
        stock.
        """
        existing = self.reservations.get(order_id)
        if existing is not None:
            if existing.qty == qty:
                return existing, False
            raise ReservationConflict(self.sku, order_id, existing.qty, qty)
        if qty > self.available:
            raise InsufficientStock(self.sku, qty, self.available)
        reservation = Reservation(self.sku, order_id, qty, Origin.INVENTORY, now)
        self.reservations[order_id] = reservation
        self._changed(ReservationMade(self.sku, order_id, qty))
        return reservation, True

    def release(self, order_id: int, now: datetime) -> bool:
        """Release `order_id`'s reservation; False when there was none (still a success)."""
        existing = self.reservations.pop(order_id, None)
        if existing is None:
            return False
        self._changed(ReservationReleased(self.sku, order_id, existing.qty))
        return True

    def restock(self, qty: int, now: datetime) -> None:
        """Add `qty` units to on_hand (the only way on_hand changes)."""
        if qty < 1:
            raise ValueError("restock qty must be >= 1")
        self.on_hand += qty
        self.origin = Origin.INVENTORY
        self.updated_at = now
        self._changed(Restocked(self.sku, qty))

    def _changed(self, event: DomainEvent) -> None:
        # One version per change: a use case makes one change per transaction.
        self.version += 1
        self.events.append(event)

    # --- the read copy ---------------------------------------------------------------------

    def accepts(self, version: int) -> bool:
        """Whether the legacy's state at `version` is newer than what this copy shows."""
        return version > self.version and version >= self.floor

    def apply_state(self, state: ItemState, version: int, now: datetime) -> bool:
        """Replace the record with the legacy's `state` at `version` if newer; True if applied."""
        if not self.accepts(version):
            return False
        self.name, self.price_cents, self.on_hand = state.name, state.price_cents, state.on_hand
        self.reservations = {
            order_id: Reservation(self.sku, order_id, qty, Origin.LEGACY, now)
            for order_id, qty in sorted(state.reservations.items())
        }
        self.origin, self.updated_at, self.version = Origin.LEGACY, now, version
        return True

    def confirm_reserve(self, order_id: int, qty: int, version: int, now: datetime) -> bool:
        """Mirror a reservation the legacy confirmed at `version` (read-your-writes)."""
        if not self._confirm(version):
            return False
        self.reservations[order_id] = Reservation(self.sku, order_id, qty, Origin.LEGACY, now)
        return True

    def confirm_release(self, order_id: int, version: int) -> bool:
        """Mirror a release the legacy confirmed at `version`."""
        if not self._confirm(version):
            return False
        self.reservations.pop(order_id, None)
        return True

    def confirm_on_hand(self, on_hand: int, version: int, now: datetime) -> bool:
        """Mirror the on_hand the legacy answered a restock with, at `version`."""
        if not self._confirm(version):
            return False
        self.on_hand, self.updated_at = on_hand, now
        return True

    def _confirm(self, version: int) -> bool:
        # At or below the applied version the event stream already holds this write (and maybe
        # later ones), below the floor a newer write was mirrored: either could be undone.
        if not self.accepts(version):
            return False
        # The applied version stays: the full state at `version` arrives as an event, and events
        # between the two would now hide this write, so they are skipped.
        self.floor = max(self.floor, version)
        return True
