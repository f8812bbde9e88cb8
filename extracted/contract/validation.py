"""Request parsing both services share; every failure is a `ContractError` (422, or 404 for paths).

Copied on purpose from `legacy_monolith/validation.py`: fields are checked in the order the
contract lists them and the first failure is reported, with the legacy's texts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extracted.contract import errors

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Path ids beyond this cannot exist (BIGINT): 404 rather than a database overflow.
MAX_PATH_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Page:
    """`limit` / `offset` of a list request."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


def is_digits(raw: str) -> bool:
    """Whether `raw` is ASCII digits only (no sign, no blanks): the shape of an id or a count."""
    return _DIGITS.fullmatch(raw) is not None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.invalid_body(errors.INVALID_JSON) from None
    if not isinstance(value, dict):
        raise errors.invalid_body(errors.NOT_AN_OBJECT)
    return value


def required(obj: Mapping[str, Any], name: str, path: str) -> Any:
    """`obj[name]`, or 422 `"<path>: is required"`."""
    if name not in obj:
        raise errors.validation_error(path, errors.MISSING)
    return obj[name]


def positive_int(value: Any, path: str) -> int:
    """`value` as an int in 1..MAX_INT."""
    # bool is a subclass of int and 1.0 is a float: neither is an integer here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.validation_error(path, errors.NOT_INTEGER)
    if value < 1:
        raise errors.validation_error(path, errors.NOT_POSITIVE)
    if value > errors.MAX_INT:
        raise errors.validation_error(path, errors.TOO_LARGE)
    return value


def non_empty_str(value: Any, path: str) -> str:
    """`value` as a string that is not empty."""
    if not isinstance(value, str):
        raise errors.validation_error(path, errors.NOT_STRING)
    if value == "":
        raise errors.validation_error(path, errors.EMPTY_STRING)
    return value


def parse_page(args: Mapping[str, str]) -> Page:
    """`limit` (default 50, 1..500) and `offset` (default 0, >= 0) from a query string."""
    limit = DEFAULT_LIMIT
    offset = 0
    if "limit" in args:
        raw = args["limit"]
        if not is_digits(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            raise errors.validation_error("limit", errors.LIMIT_RANGE)
        limit = int(raw)
    if "offset" in args:
        raw = args["offset"]
        if not is_digits(raw):
            raise errors.validation_error("offset", errors.OFFSET_RANGE)
        # Past every row anyway; clamped so the database never sees an out-of-range OFFSET.
        offset = min(int(raw), MAX_PATH_ID)
    return Page(limit=limit, offset=offset)


def parse_query_positive_int(args: Mapping[str, str], name: str) -> int | None:
    """The optional query parameter `name` as an int in 1..MAX_INT (None when absent)."""
    if name not in args:
        return None
    raw = args[name]
    if not is_digits(raw):
        raise errors.validation_error(name, errors.NOT_INTEGER)
    value = int(raw)
    if value < 1:
        raise errors.validation_error(name, errors.NOT_POSITIVE)
    if value > errors.MAX_INT:
        raise errors.validation_error(name, errors.TOO_LARGE)
    return value


def parse_path_id(raw: str, not_found: errors.ContractError) -> int:
    """An id from a URL path; anything that cannot be an id raises `not_found` (404)."""
    if not is_digits(raw):
        raise not_found
    value = int(raw)
    if value < 1 or value > MAX_PATH_ID:
        raise not_found
    return value
