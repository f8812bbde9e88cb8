"""Request parsing: JSON bodies, fields, pagination. Every failure is a 422 ``ShopError``.

Fields are checked in the order the contract lists them; the first failure is reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from legacy_monolith import errors
from legacy_monolith.errors import ShopError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "NewCustomer",
    "OrderLineRequest",
    "Page",
    "PlaceOrder",
    "parse_customer_filter",
    "parse_json_object",
    "parse_new_customer",
    "parse_page",
    "parse_path_id",
    "parse_place_order",
    "parse_reservation",
    "parse_restock",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_DIGITS = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# Path ids beyond this cannot exist (BIGINT); answering 404 avoids a database overflow error.
_MAX_PATH_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Page:
    """``limit`` / ``offset`` of a list request."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """Body of ``POST /api/customers``."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class OrderLineRequest:
    """One requested line of an order."""

    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Body of ``POST /api/orders``."""

    customer_id: int
    lines: tuple[OrderLineRequest, ...]


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.invalid_body(errors.INVALID_JSON) from None
    if not isinstance(value, dict):
        raise errors.invalid_body(errors.NOT_AN_OBJECT)
    return value


def _field(obj: Mapping[str, Any], name: str, path: str) -> Any:
    if name not in obj:
        raise errors.validation_error(path, errors.MISSING)
    return obj[name]


def _positive_int(value: Any, path: str) -> int:
    # bool is a subclass of int and 1.0 is a float: neither is an integer here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.validation_error(path, errors.NOT_INTEGER)
    if value < 1:
        raise errors.validation_error(path, errors.NOT_POSITIVE)
    if value > errors.MAX_INT:
        raise errors.validation_error(path, errors.TOO_LARGE)
    return value


def _non_empty_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise errors.validation_error(path, errors.NOT_STRING)
    if value == "":
        raise errors.validation_error(path, errors.EMPTY_STRING)
    return value


def parse_new_customer(raw: bytes) -> NewCustomer:
    """Validate ``{"name", "email"}``: non-empty strings, the email shaped ``local@domain``."""
    body = parse_json_object(raw)
    name = _non_empty_str(_field(body, "name", "name"), "name")
    email = _non_empty_str(_field(body, "email", "email"), "email")
    if not _EMAIL.fullmatch(email):
        raise errors.validation_error("email", errors.NOT_EMAIL)
    return NewCustomer(name=name, email=email)


def parse_place_order(raw: bytes) -> tuple[PlaceOrder, dict[str, Any]]:
    """Validate ``{"customer_id", "items": [{"sku", "qty"}]}``; also return the parsed body."""
    body = parse_json_object(raw)
    customer_id = _positive_int(_field(body, "customer_id", "customer_id"), "customer_id")
    items = _field(body, "items", "items")
    if not isinstance(items, list):
        raise errors.validation_error("items", errors.NOT_LIST)
    if not items:
        raise errors.validation_error("items", errors.EMPTY_LIST)
    lines: list[OrderLineRequest] = []
    seen: set[str] = set()
    for index, entry in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(entry, dict):
            raise errors.validation_error(where, errors.NOT_OBJECT)
        sku = _non_empty_str(_field(entry, "sku", f"{where}.sku"), f"{where}.sku")
        qty = _positive_int(_field(entry, "qty", f"{where}.qty"), f"{where}.qty")
        if sku in seen:
            raise errors.validation_error(f"{where}.sku", errors.DUPLICATE_SKU)
        seen.add(sku)
        lines.append(OrderLineRequest(sku=sku, qty=qty))
    return PlaceOrder(customer_id=customer_id, lines=tuple(lines)), body


def parse_reservation(raw: bytes) -> tuple[int, int]:
    """Validate ``{"order_id", "qty"}`` and return them."""
    body = parse_json_object(raw)
    order_id = _positive_int(_field(body, "order_id", "order_id"), "order_id")
    qty = _positive_int(_field(body, "qty", "qty"), "qty")
    return order_id, qty


def parse_restock(raw: bytes) -> int:
    """Validate ``{"qty"}`` and return it."""
    body = parse_json_object(raw)
    return _positive_int(_field(body, "qty", "qty"), "qty")


def parse_page(args: Mapping[str, str]) -> Page:
    """``limit`` (default 50, 1..500) and ``offset`` (default 0, >= 0) from a query string."""
    limit = DEFAULT_LIMIT
    offset = 0
    if "limit" in args:
        raw = args["limit"]
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            raise errors.validation_error("limit", errors.LIMIT_RANGE)
        limit = int(raw)
    if "offset" in args:
        raw = args["offset"]
        if not _DIGITS.fullmatch(raw):
            raise errors.validation_error("offset", errors.OFFSET_RANGE)
        # Past every row anyway; clamped so the database never sees an out-of-range OFFSET.
        offset = min(int(raw), _MAX_PATH_ID)
    return Page(limit=limit, offset=offset)


def parse_customer_filter(args: Mapping[str, str]) -> int | None:
    """The optional ``customer_id`` query filter of ``GET /api/orders`` (a positive integer)."""
    if "customer_id" not in args:
        return None
    raw = args["customer_id"]
    if not _DIGITS.fullmatch(raw):
        raise errors.validation_error("customer_id", errors.NOT_INTEGER)
    value = int(raw)
    if value < 1:
        raise errors.validation_error("customer_id", errors.NOT_POSITIVE)
    if value > errors.MAX_INT:
        raise errors.validation_error("customer_id", errors.TOO_LARGE)
    return value


def parse_path_id(raw: str, not_found: ShopError) -> int:
    """An id from a URL path; anything that cannot be an id raises `not_found` (404)."""
    if not _DIGITS.fullmatch(raw):
        raise not_found
    value = int(raw)
    if value < 1 or value > _MAX_PATH_ID:
        raise not_found
    return value
