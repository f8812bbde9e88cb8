"""Pure inventory domain: no I/O imports here."""

from extracted.inventory.domain.errors import (
    InsufficientStock,
    InventoryError,
    ItemNotFound,
    ReservationConflict,
)
from extracted.inventory.domain.model import (
    DomainEvent,
    Item,
    ItemState,
    Origin,
    Reservation,
    ReservationMade,
    ReservationReleased,
    Restocked,
)

__all__ = [
    "DomainEvent",
    "InsufficientStock",
    "InventoryError",
    "Item",
    "ItemNotFound",
    "ItemState",
    "Origin",
    "Reservation",
    "ReservationConflict",
    "ReservationMade",
    "ReservationReleased",
    "Restocked",
]
