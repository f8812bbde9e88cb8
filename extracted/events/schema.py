"""The versioned JSON envelope of shop events, and validation of each known type's payload.

Parsing is strict: an unknown `version` or `type`, a missing field or a wrongly typed one raises
`ValueError`, so a consumer never applies half-understood data (it skips and logs instead).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

ORDER_PLACED = "order.placed"
ORDER_CANCELLED = "order.cancelled"
INVENTORY_CHANGED = "inventory.changed"

EVENT_TYPES = frozenset({ORDER_PLACED, ORDER_CANCELLED, INVENTORY_CHANGED})
VERSION = 1
SUPPORTED_VERSIONS = frozenset({VERSION})
ORIGINS = frozenset({"orders", "inventory", "legacy"})
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_EVENT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ENVELOPE_KEYS = ("event_id", "type", "version", "occurred_at", "origin", "data")


def utc_now() -> str:
    """The current UTC time in the shop's timestamp format (second precision)."""
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


@dataclass(frozen=True)
class Event:
    """One shop event: an immutable, versioned envelope around a type-specific `data` dict."""

    event_id: str
    type: str
    version: int
    occurred_at: str
    origin: str
    data: dict[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        _check_envelope(
            {
                "event_id": self.event_id,
                "type": self.type,
                "version": self.version,
                "occurred_at": self.occurred_at,
                "origin": self.origin,
                "data": self.data,
            }
        )

    def to_json(self) -> bytes:
        """Compact JSON with the envelope keys in their documented order."""
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "type": self.type,
                "version": self.version,
                "occurred_at": self.occurred_at,
                "origin": self.origin,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse and validate one event; raises ValueError for anything this version cannot apply."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"event is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ValueError("event is not a JSON object")
        missing = [k for k in _ENVELOPE_KEYS if k not in obj]
        if missing:
            raise ValueError(f"event lacks {', '.join(missing)}")
        return cls(
            event_id=obj["event_id"],
            type=obj["type"],
            version=obj["version"],
            occurred_at=obj["occurred_at"],
            origin=obj["origin"],
            data=obj["data"],
        )


def new_event(type: str, data: dict[str, Any], origin: str) -> Event:
    """A fresh event (new uuid4 hex id, occurred now, version 1); validates like `from_json`."""
    return Event(
        event_id=uuid.uuid4().hex,
        type=type,
        version=VERSION,
        occurred_at=utc_now(),
        origin=origin,
        data=data,
    )


# --- validation ------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but true/false is never a valid count, id or price
    return isinstance(value, int) and not isinstance(value, bool)


def _need_int(obj: dict[str, Any], key: str, where: str, minimum: int | None = None) -> None:
    if key not in obj:
        raise ValueError(f"{where} lacks {key!r}")
    value = obj[key]
    if not _is_int(value):
        raise ValueError(f"{where}.{key} must be an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}.{key} must be >= {minimum}")


def _need_str(obj: dict[str, Any], key: str, where: str) -> None:
    if key not in obj:
        raise ValueError(f"{where} lacks {key!r}")
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}.{key} must be a non-empty string")


def _need_dict(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{where}.{key} must be an object")
    return value


def _need_list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{where}.{key} must be a list")
    return value


def _check_timestamp(value: object, where: str) -> None:
    if not isinstance(value, str) or not _TIMESTAMP_RE.match(value):
        raise ValueError(f"{where} must be a UTC timestamp like 2026-01-31T12:00:00Z")


def _check_envelope(obj: dict[str, Any]) -> None:
    if not isinstance(obj["event_id"], str) or not _EVENT_ID_RE.match(obj["event_id"]):
        raise ValueError("event_id must be 32 lowercase hex digits")
    if not _is_int(obj["version"]) or obj["version"] not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported event version {obj['version']!r}")
    if obj["type"] not in EVENT_TYPES:
        raise ValueError(f"unknown event type {obj['type']!r}")
    _check_timestamp(obj["occurred_at"], "occurred_at")
    if obj["origin"] not in ORIGINS:
        raise ValueError(f"unknown origin {obj['origin']!r}")
    if not isinstance(obj["data"], dict):
        raise ValueError("data must be an object")
    validate_data(obj["type"], obj["data"])


def validate_data(type: str, data: dict[str, Any]) -> None:
    """Check `data` against the version-1 payload of `type`; raises ValueError."""
    if type in (ORDER_PLACED, ORDER_CANCELLED):
        _check_order(_need_dict(data, "order", "data"))
    elif type == INVENTORY_CHANGED:
        item = _need_dict(data, "item", "data")
        _check_item(item)
        for i, res in enumerate(_need_list(data, "reservations", "data")):
            where = f"data.reservations[{i}]"
            if not isinstance(res, dict):
                raise ValueError(f"{where} must be an object")
            _need_str(res, "sku", where)
            _need_int(res, "order_id", where, 1)
            _need_int(res, "qty", where, 1)
            if res["sku"] != item["sku"]:
                raise ValueError(f"{where}.sku differs from data.item.sku")
    else:
        raise ValueError(f"unknown event type {type!r}")


def _check_order(order: dict[str, Any]) -> None:
    where = "data.order"
    _need_int(order, "id", where, 1)
    _need_int(order, "customer_id", where, 1)
    if order.get("status") not in ("placed", "cancelled"):
        raise ValueError(f"{where}.status must be 'placed' or 'cancelled'")
    _need_int(order, "total_cents", where, 0)
    _check_timestamp(order.get("placed_at"), f"{where}.placed_at")
    lines = _need_list(order, "items", where)
    if not lines:
        raise ValueError(f"{where}.items must not be empty")
    for i, line in enumerate(lines):
        lwhere = f"{where}.items[{i}]"
        if not isinstance(line, dict):
            raise ValueError(f"{lwhere} must be an object")
        _need_str(line, "sku", lwhere)
        _need_int(line, "qty", lwhere, 1)
        _need_int(line, "price_cents", lwhere, 0)


def _check_item(item: dict[str, Any]) -> None:
    where = "data.item"
    _need_str(item, "sku", where)
    _need_str(item, "name", where)
    _need_int(item, "price_cents", where, 0)
    _need_int(item, "on_hand", where, 0)
    _need_int(item, "reserved", where, 0)
    _need_int(item, "available", where)
