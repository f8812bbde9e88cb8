"""Pure inventory domain: no I/O imports here."""

from extracted.inventory.domain.errors import (
    InsufficientStock,
    InventoryError,
    ItemNotFound,
    ReservationConflict,
)
from extracted.inventory.domain.model import (
    NEW_SERVICES_ID_FLOOR,
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
    "NEW_SERVICES_ID_FLOOR",
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
