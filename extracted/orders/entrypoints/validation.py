"""Request parsing, a copy of the legacy's rules: the first failing field is reported (422)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extracted.orders.domain import texts
from extracted.orders.domain.commands import LineRequest, PlaceOrder
from extracted.orders.domain.errors import NotFound, ValidationError
from extracted.orders.domain.idempotency import MAX_KEY_LENGTH

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_DIGITS = re.compile(r"[0-9]+")
# Path ids beyond this cannot exist (BIGINT): 404 rather than a database overflow.
_MAX_PATH_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Page:
    """`limit` / `offset` of a list request."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _invalid(field: str, reason: str) -> ValidationError:
    return ValidationError(texts.validation(field, reason))


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError(texts.INVALID_JSON) from None
    if not isinstance(value, dict):
        raise ValidationError(texts.NOT_AN_OBJECT)
    return value


def _field(obj: Mapping[str, Any], name: str, path: str) -> Any:
    if name not in obj:
        raise _invalid(path, texts.MISSING)
    return obj[name]


def _positive_int(value: Any, path: str) -> int:
    # bool is a subclass of int and 1.0 is a float: neither is an integer here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(path, texts.NOT_INTEGER)
    if value < 1:
        raise _invalid(path, texts.NOT_POSITIVE)
    if value > texts.MAX_INT:
        raise _invalid(path, texts.TOO_LARGE)
    return value


def _non_empty_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _invalid(path, texts.NOT_STRING)
    if value == "":
        raise _invalid(path, texts.EMPTY_STRING)
    return value


def parse_place_order(raw: bytes) -> tuple[PlaceOrder, dict[str, Any]]:
    """Validate `{"customer_id", "items": [{"sku", "qty"}]}`; also return the parsed body."""
    body = parse_json_object(raw)
    customer_id = _positive_int(_field(body, "customer_id", "customer_id"), "customer_id")
    items = _field(body, "items", "items")
    if not isinstance(items, list):
        raise _invalid("items", texts.NOT_LIST)
    if not items:
        raise _invalid("items", texts.EMPTY_LIST)
    lines: list[LineRequest] = []
    seen: set[str] = set()
    for index, entry in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(entry, dict):
            raise _invalid(where, texts.NOT_OBJECT)
        sku = _non_empty_str(_field(entry, "sku", f"{where}.sku"), f"{where}.sku")
        qty = _positive_int(_field(entry, "qty", f"{where}.qty"), f"{where}.qty")
        if sku in seen:
            raise _invalid(f"{where}.sku", texts.DUPLICATE_SKU)
        seen.add(sku)
        lines.append(LineRequest(sku=sku, qty=qty))
    return PlaceOrder(customer_id=customer_id, lines=tuple(lines)), body


def parse_page(args: Mapping[str, str]) -> Page:
    """`limit` (default 50, 1..500) and `offset` (default 0, >= 0) from a query string."""
    limit = DEFAULT_LIMIT
    offset = 0
    if "limit" in args:
        raw = args["limit"]
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            raise _invalid("limit", texts.LIMIT_RANGE)
        limit = int(raw)
    if "offset" in args:
        raw = args["offset"]
        if not _DIGITS.fullmatch(raw):
            raise _invalid("offset", texts.OFFSET_RANGE)
        # Past every row anyway; clamped so the database never sees an out-of-range OFFSET.
        offset = min(int(raw), _MAX_PATH_ID)
    return Page(limit=limit, offset=offset)


def parse_customer_filter(args: Mapping[str, str]) -> int | None:
    """The optional `customer_id` query filter (a positive integer)."""
    if "customer_id" not in args:
        return None
    raw = args["customer_id"]
    if not _DIGITS.fullmatch(raw):
        raise _invalid("customer_id", texts.NOT_INTEGER)
    value = int(raw)
    if value < 1:
        raise _invalid("customer_id", texts.NOT_POSITIVE)
    if value > texts.MAX_INT:
        raise _invalid("customer_id", texts.TOO_LARGE)
    return value


def parse_order_id(raw: str) -> int:
    """An order id from a URL path; anything that cannot be an id is 404 (with the raw text)."""
    if not _DIGITS.fullmatch(raw):
        raise NotFound.order(raw)
    value = int(raw)
    if value < 1 or value > _MAX_PATH_ID:
        raise NotFound.order(raw)
    return value


def check_key(key: str) -> None:
    """Refuse an Idempotency-Key longer than the legacy stores."""
    if len(key) > MAX_KEY_LENGTH:
        raise _invalid("Idempotency-Key", texts.KEY_TOO_LONG)
