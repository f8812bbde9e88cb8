"""Request parsing (bodies, pagination, path ids); failures raise 422/404 `ApiError`s.

Mirrors the legacy's validation: fields in contract order, first failure reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from extracted.inventory.entrypoints import errors

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_DIGITS = re.compile(r"[0-9]+")
_MAX_PATH_ID = 2**63 - 1  # BIGINT: larger path ids cannot exist


def json_object(raw: bytes) -> dict[str, Any]:
    """Parse a body that must be a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.invalid_body(errors.INVALID_JSON) from None
    if not isinstance(value, dict):
        raise errors.invalid_body(errors.NOT_AN_OBJECT)
    return value


def positive_int(body: Mapping[str, Any], name: str) -> int:
    """`body[name]` as an int in 1..MAX_INT (a bool or a float is not an int)."""
    if name not in body:
        raise errors.validation_error(name, errors.MISSING)
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.validation_error(name, errors.NOT_INTEGER)
    if value < 1:
        raise errors.validation_error(name, errors.NOT_POSITIVE)
    if value > errors.MAX_INT:
        raise errors.validation_error(name, errors.TOO_LARGE)
    return value


def reservation_body(raw: bytes) -> tuple[int, int]:
    """`{"order_id","qty"}` -> (order_id, qty)."""
    body = json_object(raw)
    return positive_int(body, "order_id"), positive_int(body, "qty")


def restock_body(raw: bytes) -> int:
    """`{"qty"}` -> qty."""
    return positive_int(json_object(raw), "qty")


def page(query: Mapping[str, str]) -> tuple[int, int]:
    """(limit, offset) from the query: limit 1..500 (default 50), offset >= 0 (default 0)."""
    limit, offset = DEFAULT_LIMIT, 0
    if "limit" in query:
        raw = query["limit"]
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            raise errors.validation_error("limit", errors.LIMIT_RANGE)
        limit = int(raw)
    if "offset" in query:
        raw = query["offset"]
        if not _DIGITS.fullmatch(raw):
            raise errors.validation_error("offset", errors.OFFSET_RANGE)
        offset = min(int(raw), _MAX_PATH_ID)  # past every row anyway; keeps OFFSET in range
    return limit, offset


def path_order_id(raw: str) -> int:
    """The order id of a release path: any digits (a huge one holds nothing; clamped), else 404."""
    if not _DIGITS.fullmatch(raw):
        raise errors.path_not_found()
    return min(int(raw), _MAX_PATH_ID)
