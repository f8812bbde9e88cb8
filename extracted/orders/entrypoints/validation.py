"""The orders requests' parsing, on the contract's shared rules (first failing field reported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extracted.contract import errors
from extracted.contract.validation import (
    non_empty_str,
    parse_json_object,
    parse_path_id,
    parse_query_positive_int,
    positive_int,
    required,
)
from extracted.orders.domain.commands import LineRequest, PlaceOrder
from extracted.orders.domain.errors import NotFound
from extracted.orders.domain.idempotency import MAX_KEY_LENGTH


def parse_place_order(raw: bytes) -> tuple[PlaceOrder, dict[str, Any]]:
    """Validate `{"customer_id", "items": [{"sku", "qty"}]}`; also return the parsed body."""
    body = parse_json_object(raw)
    customer_id = positive_int(required(body, "customer_id", "customer_id"), "customer_id")
    items = required(body, "items", "items")
    if not isinstance(items, list):
        raise errors.validation_error("items", errors.NOT_LIST)
    if not items:
        raise errors.validation_error("items", errors.EMPTY_LIST)
    lines: list[LineRequest] = []
    seen: set[str] = set()
    for index, entry in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(entry, dict):
            raise errors.validation_error(where, errors.NOT_OBJECT)
        sku = non_empty_str(required(entry, "sku", f"{where}.sku"), f"{where}.sku")
        qty = positive_int(required(entry, "qty", f"{where}.qty"), f"{where}.qty")
        if sku in seen:
            raise errors.validation_error(f"{where}.sku", errors.DUPLICATE_SKU)
        seen.add(sku)
        lines.append(LineRequest(sku=sku, qty=qty))
    return PlaceOrder(customer_id=customer_id, lines=tuple(lines)), body


def parse_customer_filter(args: Mapping[str, str]) -> int | None:
    """The optional `customer_id` query filter (a positive integer)."""
    return parse_query_positive_int(args, "customer_id")


def parse_order_id(raw: str) -> int:
    """An order id from a URL path; anything that cannot be an id is 404 (with the raw text)."""
    return parse_path_id(raw, NotFound.order(raw))


def check_key(key: str) -> None:
    """Refuse an Idempotency-Key longer than the legacy stores."""
    if len(key) > MAX_KEY_LENGTH:
        raise errors.validation_error("Idempotency-Key", errors.KEY_TOO_LONG)
