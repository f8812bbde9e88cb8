"""The inventory's business errors; entrypoints map each to one HTTP status and body."""

from __future__ import annotations


class InventoryError(Exception):
    """Base of every inventory business error."""


class ItemNotFound(InventoryError):
    """No item has this sku."""

    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku


class ReservationConflict(InventoryError):
    """The (sku, order_id) pair is already reserved with another qty."""

    def __init__(self, sku: str, order_id: int, existing_qty: int, requested_qty: int) -> None:
        super().__init__(sku, order_id)
        self.sku = sku
        self.order_id = order_id
        self.existing_qty = existing_qty
        self.requested_qty = requested_qty


class InsufficientStock(InventoryError):
    """Fewer units are available than requested."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(sku, requested, available)
        self.sku = sku
        self.requested = requested
        self.available = available


class DependencyUnavailable(InventoryError):
    """The stock authority (the legacy, while it is one) cannot be reached now."""

    def __init__(self, dependency: str) -> None:
        super().__init__(dependency)
        self.dependency = dependency
