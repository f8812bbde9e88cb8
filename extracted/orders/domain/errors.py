"""One exception hierarchy for the orders service; the edge maps each to one status + JSON body."""

from __future__ import annotations

from extracted.orders.domain import texts


class OrdersError(Exception):
    """Base of every error the orders service answers with; `code` is the JSON `error`."""

    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationError(OrdersError):
    """A malformed request (422)."""

    code = "validation_error"


class NotFound(OrdersError):
    """An unknown id or path (404)."""

    code = "not_found"

    @classmethod
    def order(cls, order_id: int | str) -> NotFound:
        """The order `order_id` does not exist (or is not visible)."""
        return cls(texts.order_not_found(order_id))


class MethodNotAllowed(OrdersError):
    """A known path with the wrong method (405)."""

    code = "method_not_allowed"


class UnknownCustomer(OrdersError):
    """The order's customer does not exist in the monolith (404)."""

    code = "unknown_customer"

    def __init__(self, customer_id: int) -> None:
        super().__init__(texts.unknown_customer(customer_id))
        self.customer_id = customer_id


class UnknownSku(OrdersError):
    """A line's sku does not exist in inventory (422)."""

    code = "unknown_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(texts.unknown_sku(sku))
        self.sku = sku


class InsufficientStock(OrdersError):
    """Not enough stock available for a line (409)."""

    code = "insufficient_stock"

    def __init__(self, sku: str, requested: int, available: int | None = None) -> None:
        super().__init__(texts.insufficient_stock(sku, requested, available))
        self.sku = sku
        self.requested = requested
        self.available = available


class ReservationConflict(OrdersError):
    """Inventory holds a different reservation for the same (sku, order) (409)."""

    code = "reservation_conflict"

    def __init__(self, sku: str, order_id: int) -> None:
        super().__init__(texts.reservation_conflict(sku, order_id))


class IdempotencyKeyReused(OrdersError):
    """An Idempotency-Key was reused with another body (422)."""

    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(texts.idempotency_key_reused())


class DependencyUnavailable(OrdersError):
    """Inventory, the monolith or the database did not answer usably (503)."""

    code = "dependency_unavailable"

    def __init__(self, dependency: str, *, maybe_done: bool = True) -> None:
        super().__init__(texts.dependency_unavailable(dependency))
        self.dependency = dependency
        # False only when the request certainly never reached the dependency (breaker open,
        # connection refused): then nothing changed there. A timeout may have done the work.
        self.maybe_done = maybe_done
