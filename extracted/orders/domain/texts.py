"""Error `detail` texts, copied from the legacy's `legacy_monolith/errors.py` (the reference).

Bodies must be byte-for-byte equal to the legacy's, so these are copies, not paraphrases;
the services do not import each other's code.
"""

from __future__ import annotations

PATH_NOT_FOUND = "no such resource"
INVALID_JSON = "request body is not valid JSON"
NOT_AN_OBJECT = "request body must be a JSON object"
IDEMPOTENCY_KEY_REUSED = "Idempotency-Key was already used with a different request body"
DATABASE_UNAVAILABLE = "database unavailable"
BODY_TOO_LARGE = "The data value transmitted exceeds the capacity limit."  # werkzeug's 413 text

# Reasons used in validation details, always as "<field>: <reason>".
MISSING = "is required"
NOT_INTEGER = "must be an integer"
NOT_STRING = "must be a string"
NOT_LIST = "must be a list"
NOT_OBJECT = "must be an object"
EMPTY_STRING = "must not be empty"
EMPTY_LIST = "must not be empty"
NOT_POSITIVE = "must be >= 1"
MAX_INT = 2_147_483_647  # bounded so that no database column can overflow
TOO_LARGE = f"must be <= {MAX_INT}"
DUPLICATE_SKU = "duplicate sku"
LIMIT_RANGE = "must be an integer between 1 and 500"
OFFSET_RANGE = "must be an integer >= 0"
KEY_TOO_LONG = "must be at most 255 characters"


def order_not_found(order_id: int | str) -> str:
    return f"order {order_id} not found"


def validation(field: str, reason: str) -> str:
    return f"{field}: {reason}"


def unknown_customer(customer_id: int) -> str:
    return f"customer {customer_id} does not exist"


def unknown_sku(sku: str) -> str:
    return f"sku {sku} does not exist"


def insufficient_stock(sku: str, requested: int, available: int | None) -> str:
    return f"insufficient stock for {sku}"


def reservation_conflict(sku: str, order_id: int) -> str:
    return f"order {order_id} already holds a reservation for {sku} with another qty"


def idempotency_key_reused() -> str:
    return IDEMPOTENCY_KEY_REUSED


def dependency_unavailable(name: str) -> str:
    return f"{name} unavailable"


def method_not_allowed(method: str) -> str:
    return f"method {method} not allowed"
