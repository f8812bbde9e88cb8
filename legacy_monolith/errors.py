"""Every error the shop answers: code, HTTP status and detail text, in one place.

The legacy's texts are the contract's reference: the extracted services copy these texts so
that error bodies are byte-for-byte identical (SPEC §3). Bodies are
``{"error": "<code>", "detail": "<text>"}``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BODY_TOO_LARGE",
    "DATABASE_UNAVAILABLE",
    "IDEMPOTENCY_KEY_REUSED",
    "INVALID_JSON",
    "NOT_AN_OBJECT",
    "PATH_NOT_FOUND",
    "ShopError",
    "body_too_large",
    "customer_not_found",
    "dependency_unavailable",
    "duplicate_email",
    "idempotency_key_reused",
    "insufficient_stock",
    "invalid_body",
    "item_not_found",
    "method_not_allowed",
    "order_not_found",
    "path_not_found",
    "reservation_conflict",
    "unknown_customer",
    "unknown_sku",
    "validation_error",
]

# Texts without parameters.
PATH_NOT_FOUND = "no such resource"
INVALID_JSON = "request body is not valid JSON"
NOT_AN_OBJECT = "request body must be a JSON object"
IDEMPOTENCY_KEY_REUSED = "Idempotency-Key was already used with a different request body"
DATABASE_UNAVAILABLE = "database unavailable"
# Werkzeug's 413 text, pinned here so that it cannot drift with a Werkzeug upgrade.
BODY_TOO_LARGE = "The data value transmitted exceeds the capacity limit."

# Reasons used in validation details, always as "<field>: <reason>" (see `validation_error`).
MISSING = "is required"
NOT_INTEGER = "must be an integer"
NOT_STRING = "must be a string"
NOT_LIST = "must be a list"
NOT_OBJECT = "must be an object"
EMPTY_STRING = "must not be empty"
EMPTY_LIST = "must not be empty"
NOT_POSITIVE = "must be >= 1"
# Integers in bodies and queries are bounded so that no database column can overflow.
MAX_INT = 2_147_483_647
TOO_LARGE = f"must be <= {MAX_INT}"
NOT_EMAIL = "must be an email address"
DUPLICATE_SKU = "duplicate sku"
LIMIT_RANGE = "must be an integer between 1 and 500"
OFFSET_RANGE = "must be an integer >= 0"
KEY_TOO_LONG = "must be at most 255 characters"


class ShopError(Exception):
    """An error answer: HTTP `status`, snake_case `code` and human `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body, keys in contract order."""
        return {"error": self.code, "detail": self.detail}

    def __repr__(self) -> str:
        return f"ShopError({self.status}, {self.code!r}, {self.detail!r})"


def path_not_found() -> ShopError:
    """404 for a path under /api that names no resource."""
    return ShopError(404, "not_found", PATH_NOT_FOUND)


def customer_not_found(customer_id: int | str) -> ShopError:
    """404 for ``/api/customers/{id}`` with an unknown id."""
    return ShopError(404, "not_found", f"customer {customer_id} not found")


def order_not_found(order_id: int | str) -> ShopError:
    """404 for ``/api/orders/{id}`` with an unknown id."""
    return ShopError(404, "not_found", f"order {order_id} not found")


def item_not_found(sku: str) -> ShopError:
    """404 for ``/api/inventory/{sku}...`` with an unknown sku."""
    return ShopError(404, "not_found", f"item {sku} not found")


def validation_error(field: str, reason: str) -> ShopError:
    """422 for a bad field: detail ``"<field>: <reason>"`` (field paths like ``items[1].qty``)."""
    return ShopError(422, "validation_error", f"{field}: {reason}")


def invalid_body(detail: str) -> ShopError:
    """422 for a body that is not JSON, or not an object (`INVALID_JSON`, `NOT_AN_OBJECT`)."""
    return ShopError(422, "validation_error", detail)


def unknown_customer(customer_id: int) -> ShopError:
    """404 when an order names a customer that does not exist."""
    return ShopError(404, "unknown_customer", f"customer {customer_id} does not exist")


def unknown_sku(sku: str) -> ShopError:
    """422 when an order names a sku that does not exist (the first one, in request order)."""
    return ShopError(422, "unknown_sku", f"sku {sku} does not exist")


def insufficient_stock(sku: str) -> ShopError:
    """409 when `sku` has less available than asked (the first such line, in request order)."""
    return ShopError(409, "insufficient_stock", f"insufficient stock for {sku}")


def reservation_conflict(sku: str, order_id: int) -> ShopError:
    """409 when (sku, order_id) is already reserved with another qty."""
    return ShopError(
        409,
        "reservation_conflict",
        f"order {order_id} already holds a reservation for {sku} with another qty",
    )


def idempotency_key_reused() -> ShopError:
    """422 when an Idempotency-Key comes back with a different body."""
    return ShopError(422, "idempotency_key_reused", IDEMPOTENCY_KEY_REUSED)


def duplicate_email(email: str) -> ShopError:
    """409 when a customer with this email already exists."""
    return ShopError(409, "duplicate_email", f"a customer with email {email} already exists")


def dependency_unavailable(name: str) -> ShopError:
    """503 when a dependency (the database; for services, another service) does not answer."""
    return ShopError(503, "dependency_unavailable", f"{name} unavailable")


def body_too_large() -> ShopError:
    """413 for a request body over the limit (1 MiB)."""
    return ShopError(413, "request_entity_too_large", BODY_TOO_LARGE)


def method_not_allowed(method: str) -> ShopError:
    """405 for a method the path does not serve."""
    return ShopError(405, "method_not_allowed", f"method {method} not allowed")
