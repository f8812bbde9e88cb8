"""Idempotency-Key rules: when two request bodies count as the same (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

#: The parsed value of a body that is not JSON: never equal to anything stored.
UNPARSABLE: Any = object()
#: Keys longer than this are refused (422), like the legacy does.
MAX_KEY_LENGTH = 255


def loose_json(raw: bytes) -> Any:
    """The parsed body, or UNPARSABLE (a bad body may still be a reused key's answer)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UNPARSABLE


def json_equal(a: Any, b: Any) -> bool:
    """Equal parsed JSON, where `true` is not `1` (Python's `==` alone says it is)."""
    if a is UNPARSABLE or b is UNPARSABLE:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


@dataclass(frozen=True)
class KeyRecord:
    """An Idempotency-Key with the request body it came with and the 201 answer's JSON."""

    key: str
    request: Any
    response: dict[str, Any]
