"""One exception hierarchy for the orders service; each error is its contract answer.

Status, code and detail come from `extracted.contract.errors` (the legacy's texts), so the
edge only renders them.
"""

from __future__ import annotations

from extracted.contract import errors as contract
from extracted.contract.errors import ServiceError


class OrdersError(ServiceError):
    """Base of every error the orders service answers with."""


class NotFound(OrdersError):
    """An unknown order (404)."""

    @classmethod
    def order(cls, order_id: int | str) -> NotFound:
        """The order `order_id` does not exist (or is not visible)."""
        return cls(contract.order_not_found(order_id))


class UnknownCustomer(OrdersError):
    """The order's customer does not exist in the monolith (404)."""

    def __init__(self, customer_id: int) -> None:
        super().__init__(contract.unknown_customer(customer_id))
        self.customer_id = customer_id


class UnknownSku(OrdersError):
    """A line's sku does not exist in inventory (422)."""

    def __init__(self, sku: str) -> None:
        super().__init__(contract.unknown_sku(sku))
        self.sku = sku


class InsufficientStock(OrdersError):
    """Not enough stock available for a line (409)."""

    def __init__(self, sku: str, requested: int, available: int | None = None) -> None:
        super().__init__(contract.insufficient_stock(sku))
        self.sku = sku
        self.requested = requested
        self.available = available


class ReservationConflict(OrdersError):
    """Inventory holds a different reservation for the same (sku, order) (409)."""

    def __init__(self, sku: str, order_id: int) -> None:
        super().__init__(contract.reservation_conflict(sku, order_id))


class IdempotencyKeyReused(OrdersError):
    """An Idempotency-Key was reused with another body (422)."""

    def __init__(self) -> None:
        super().__init__(contract.idempotency_key_reused())


class DependencyUnavailable(OrdersError):
    """Inventory, the monolith or the database did not answer usably (503)."""

    def __init__(self, dependency: str, *, maybe_done: bool = True) -> None:
        super().__init__(contract.dependency_unavailable(dependency))
        self.dependency = dependency
        # False only when the request certainly never reached the dependency (breaker open,
        # connection refused): then nothing changed there. A timeout may have done the work.
        self.maybe_done = maybe_done
