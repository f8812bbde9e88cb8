"""The inventory's business errors; each is its contract answer (status, code, detail).

Texts come from `extracted.contract.errors` (the legacy's), so the edge only renders them.
"""

from __future__ import annotations

from extracted.contract import errors as contract
from extracted.contract.errors import ServiceError


class InventoryError(ServiceError):
    """Base of every inventory business error."""


class ItemNotFound(InventoryError):
    """No item has this sku (404)."""

    def __init__(self, sku: str) -> None:
        super().__init__(contract.item_not_found(sku))
        self.sku = sku


class ReservationConflict(InventoryError):
    """The (sku, order_id) pair is already reserved with another qty (409)."""

    def __init__(self, sku: str, order_id: int, existing_qty: int, requested_qty: int) -> None:
        super().__init__(contract.reservation_conflict(sku, order_id))
        self.sku = sku
        self.order_id = order_id
        self.existing_qty = existing_qty
        self.requested_qty = requested_qty


class InsufficientStock(InventoryError):
    """Fewer units are available than requested (409)."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(contract.insufficient_stock(sku))
        self.sku = sku
        self.requested = requested
        self.available = available


class DependencyUnavailable(InventoryError):
    """The stock authority (the legacy, while it is one) cannot be reached now (503)."""

    def __init__(self, dependency: str) -> None:
        super().__init__(contract.dependency_unavailable(dependency))
        self.dependency = dependency
