"""Error answers, with the legacy's exact texts (legacy_monolith/errors.py is the reference).

Copied, not imported: the extracted service deploys without the monolith's code.
"""

from __future__ import annotations

from typing import Any

from extracted.inventory.domain.errors import (
    DependencyUnavailable,
    InsufficientStock,
    InventoryError,
    ItemNotFound,
    ReservationConflict,
)

PATH_NOT_FOUND = "no such resource"
INVALID_JSON = "request body is not valid JSON"
NOT_AN_OBJECT = "request body must be a JSON object"
DATABASE_UNAVAILABLE = "database unavailable"
# Werkzeug's 413 text, which the legacy pins.
BODY_TOO_LARGE = "The data value transmitted exceeds the capacity limit."
MISSING = "is required"
NOT_INTEGER = "must be an integer"
NOT_POSITIVE = "must be >= 1"
MAX_INT = 2_147_483_647  # bodies' integers are bounded so no column can overflow
TOO_LARGE = f"must be <= {MAX_INT}"
LIMIT_RANGE = "must be an integer between 1 and 500"
OFFSET_RANGE = "must be an integer >= 0"


class ApiError(Exception):
    """An error answer: HTTP `status`, snake_case `code`, human `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """`{"error","detail"}` in contract order."""
        return {"error": self.code, "detail": self.detail}


def path_not_found() -> ApiError:
    """404 for a path that names no resource."""
    return ApiError(404, "not_found", PATH_NOT_FOUND)


def item_not_found(sku: str) -> ApiError:
    """404 for an unknown sku."""
    return ApiError(404, "not_found", f"item {sku} not found")


def method_not_allowed(method: str) -> ApiError:
    """405 for a method the path does not serve."""
    return ApiError(405, "method_not_allowed", f"method {method} not allowed")


def validation_error(field: str, reason: str) -> ApiError:
    """422 `"<field>: <reason>"`."""
    return ApiError(422, "validation_error", f"{field}: {reason}")


def invalid_body(detail: str) -> ApiError:
    """422 for a body that is not JSON or not an object."""
    return ApiError(422, "validation_error", detail)


def insufficient_stock(sku: str) -> ApiError:
    """409 when fewer units are available than asked."""
    return ApiError(409, "insufficient_stock", f"insufficient stock for {sku}")


def reservation_conflict(sku: str, order_id: int) -> ApiError:
    """409 when (sku, order_id) is already reserved with another qty."""
    return ApiError(
        409,
        "reservation_conflict",
        f"order {order_id} already holds a reservation for {sku} with another qty",
    )


def body_too_large() -> ApiError:
    """413 for a request body over the limit (1 MiB, aiohttp's default client_max_size)."""
    return ApiError(413, "request_entity_too_large", BODY_TOO_LARGE)


def database_unavailable() -> ApiError:
    """503 when the database does not answer."""
    return dependency_unavailable("database")


def dependency_unavailable(name: str) -> ApiError:
    """503 when a dependency (the legacy, while it is the stock authority) does not answer."""
    return ApiError(503, "dependency_unavailable", f"{name} unavailable")


def from_domain(exc: InventoryError) -> ApiError:
    """The one mapping of domain errors to HTTP answers."""
    if isinstance(exc, DependencyUnavailable):
        return dependency_unavailable(exc.dependency)
    if isinstance(exc, ItemNotFound):
        return item_not_found(exc.sku)
    if isinstance(exc, ReservationConflict):
        return reservation_conflict(exc.sku, exc.order_id)
    if isinstance(exc, InsufficientStock):
        return insufficient_stock(exc.sku)
    raise TypeError(f"unmapped inventory error {exc!r}")
