"""Every error the extracted services answer: status, code and detail text, in one place.

Copied on purpose from `legacy_monolith/errors.py` (the contract's reference): the texts must
stay byte-for-byte equal, and `tests/extracted/contract/test_legacy_parity.py` checks that
they do. Bodies are `{"error": "<code>", "detail": "<text>"}`.
"""

from __future__ import annotations

from typing import Any

# Texts without parameters.
PATH_NOT_FOUND = "no such resource"
INVALID_JSON = "request body is not valid JSON"
NOT_AN_OBJECT = "request body must be a JSON object"
IDEMPOTENCY_KEY_REUSED = "Idempotency-Key was already used with a different request body"
DATABASE_UNAVAILABLE = "database unavailable"
# Werkzeug's 413 text, which the legacy pins.
BODY_TOO_LARGE = "The data value transmitted exceeds the capacity limit."
INTERNAL_ERROR = "internal server error"

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
DUPLICATE_SKU = "duplicate sku"
LIMIT_RANGE = "must be an integer between 1 and 500"
OFFSET_RANGE = "must be an integer >= 0"
KEY_TOO_LONG = "must be at most 255 characters"


class ContractError(Exception):
    """An error answer: HTTP `status`, snake_case `code` and human `detail`.

    The services' own error hierarchies derive from it, so every error they raise already is
    its answer; the edge only renders `body()` with `status`.
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body, keys in contract order."""
        return {"error": self.code, "detail": self.detail}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.detail!r})"


class ServiceError(ContractError):
    """Base of a service's own error hierarchy: each error is built from one contract answer."""

    def __init__(self, answer: ContractError) -> None:
        super().__init__(answer.status, answer.code, answer.detail)


def path_not_found() -> ContractError:
    """404 for a path that names no resource."""
    return ContractError(404, "not_found", PATH_NOT_FOUND)


def order_not_found(order_id: int | str) -> ContractError:
    """404 for `/api/orders/{id}` with an unknown id (or text that cannot be an id)."""
    return ContractError(404, "not_found", f"order {order_id} not found")


def item_not_found(sku: str) -> ContractError:
    """404 for `/api/inventory/{sku}...` with an unknown sku."""
    return ContractError(404, "not_found", f"item {sku} not found")


def validation_error(field: str, reason: str) -> ContractError:
    """422 for a bad field: detail `"<field>: <reason>"` (field paths like `items[1].qty`)."""
    return ContractError(422, "validation_error", f"{field}: {reason}")


def invalid_body(detail: str) -> ContractError:
    """422 for a body that is not JSON, or not an object (`INVALID_JSON`, `NOT_AN_OBJECT`)."""
    return ContractError(422, "validation_error", detail)


def unknown_customer(customer_id: int) -> ContractError:
    """404 when an order names a customer that does not exist."""
    return ContractError(404, "unknown_customer", f"customer {customer_id} does not exist")


def unknown_sku(sku: str) -> ContractError:
    """422 when an order names a sku that does not exist (the first one, in request order)."""
    return ContractError(422, "unknown_sku", f"sku {sku} does not exist")


def insufficient_stock(sku: str) -> ContractError:
    """409 when `sku` has less available than asked."""
    return ContractError(409, "insufficient_stock", f"insufficient stock for {sku}")


def reservation_conflict(sku: str, order_id: int) -> ContractError:
    """409 when (sku, order_id) is already reserved with another qty."""
    return ContractError(
        409,
        "reservation_conflict",
        f"order {order_id} already holds a reservation for {sku} with another qty",
    )


def idempotency_key_reused() -> ContractError:
    """422 when an Idempotency-Key comes back with a different body."""
    return ContractError(422, "idempotency_key_reused", IDEMPOTENCY_KEY_REUSED)


def dependency_unavailable(name: str) -> ContractError:
    """503 when a dependency (the database, another service, the legacy) does not answer."""
    return ContractError(503, "dependency_unavailable", f"{name} unavailable")


def body_too_large() -> ContractError:
    """413 for a request body over the limit (1 MiB, aiohttp's default client_max_size)."""
    return ContractError(413, "request_entity_too_large", BODY_TOO_LARGE)


def method_not_allowed(method: str) -> ContractError:
    """405 for a method the path does not serve."""
    return ContractError(405, "method_not_allowed", f"method {method} not allowed")


def internal_error() -> ContractError:
    """500 for a failure nothing else describes (logged with its traceback)."""
    return ContractError(500, "internal_error", INTERNAL_ERROR)
