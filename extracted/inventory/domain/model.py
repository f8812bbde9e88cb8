"""Item and Reservation: the inventory aggregate and its rules (available = on_hand - reserved)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from extracted.inventory.domain.errors import InsufficientStock, ReservationConflict

# Orders the new services create get ids from here up; the legacy allocates below it.
NEW_SERVICES_ID_FLOOR = 1_000_000_000


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

    `origin`/`updated_at` say who last wrote `on_hand`. `released` holds tombstones: order ids
    below NEW_SERVICES_ID_FLOOR whose reservation this service released, kept until the
    legacy's copy no longer shows them, so a sync cannot resurrect them.
    """

    sku: str
    name: str
    price_cents: int
    on_hand: int
    origin: str = Origin.LEGACY
    updated_at: datetime | None = None
    reservations: dict[int, Reservation] = field(default_factory=dict)
    released: dict[int, datetime] = field(default_factory=dict)
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

    def reserve(self, order_id: int, qty: int, now: datetime) -> tuple[Reservation, bool]:
        """Reserve `qty` for `order_id`; returns (reservation, created).

        The same (order_id, qty) again is an idempotent repeat (created=False); another qty
        for the same order is a conflict; more than `available` is insufficient stock.
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
        self.released.pop(order_id, None)
        self.events.append(ReservationMade(self.sku, order_id, qty))
        return reservation, True

    def release(self, order_id: int, now: datetime) -> bool:
        """Release `order_id`'s reservation; False when there was none (still a success)."""
        existing = self.reservations.pop(order_id, None)
        if existing is None:
            return False
        if order_id < NEW_SERVICES_ID_FLOOR:
            # The legacy may still hold this reservation; remember we dropped it (see sync).
            self.released[order_id] = now
        self.events.append(ReservationReleased(self.sku, order_id, existing.qty))
        return True

    def restock(self, qty: int, now: datetime) -> None:
        """Add `qty` units to on_hand (the only way on_hand changes)."""
        if qty < 1:
            raise ValueError("restock qty must be >= 1")
        self.on_hand += qty
        self.origin = Origin.INVENTORY
        self.updated_at = now
        self.events.append(Restocked(self.sku, qty))
