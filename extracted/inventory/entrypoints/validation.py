"""The inventory requests' parsing, on the contract's shared rules (first failure reported)."""

from __future__ import annotations

from extracted.contract import errors
from extracted.contract.validation import (
    MAX_PATH_ID,
    is_digits,
    parse_json_object,
    positive_int,
    required,
)


def reservation_body(raw: bytes) -> tuple[int, int]:
    """`{"order_id","qty"}` -> (order_id, qty)."""
    body = parse_json_object(raw)
    order_id = positive_int(required(body, "order_id", "order_id"), "order_id")
    return order_id, positive_int(required(body, "qty", "qty"), "qty")


def restock_body(raw: bytes) -> int:
    """`{"qty"}` -> qty."""
    return positive_int(required(parse_json_object(raw), "qty", "qty"), "qty")


def path_order_id(raw: str) -> int:
    """The order id of a release path: any digits (a huge one holds nothing; clamped), else 404."""
    if not is_digits(raw):
        raise errors.path_not_found()
    return min(int(raw), MAX_PATH_ID)
