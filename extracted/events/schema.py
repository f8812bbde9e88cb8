"""The versioned JSON envelope of shop events, and validation of each known type's payload.

Parsing is strict: an unknown `version` or `type`, a missing field or a wrongly typed one raises
`ValueError`, so a consumer never applies half-understood data (the bus parks it: counted,
logged and left unacked for a consumer that understands it).

Schema version 2 (SPEC §3 "Versioned change streams"): every event names its `aggregate`
(``order:<id>`` or ``item:<sku>``) and that record's `aggregate_version`, strictly increasing at
its writer. Orders merge by the status lattice (``placed`` = 1 < ``cancelled`` = 2), items by
version (only the stock authority publishes them). `idempotency_key` is the order's key, if any.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from extracted.contract import shapes

ORDER_PLACED = "order.placed"
ORDER_CANCELLED = "order.cancelled"
INVENTORY_CHANGED = "inventory.changed"

EVENT_TYPES = frozenset({ORDER_PLACED, ORDER_CANCELLED, INVENTORY_CHANGED})
VERSION = 2
SUPPORTED_VERSIONS = frozenset({VERSION})
# The status lattice of orders: an order event's aggregate_version is its status's rank.
ORDER_STATUS_RANK = {"placed": 1, "cancelled": 2}
ORIGINS = frozenset({"orders", "inventory", "legacy"})
TIMESTAMP_FORMAT = shapes.TIMESTAMP_FORMAT  # the contract's, in envelopes too

_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_EVENT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ENVELOPE_KEYS = (
    "event_id",
    "type",
    "version",
    "aggregate",
    "aggregate_version",
    "occurred_at",
    "origin",
    "idempotency_key",
    "data",
)


def utc_now() -> str:
    """The current UTC time in the shop's timestamp format (second precision)."""
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


@dataclass(frozen=True)
class Event:
    """One shop event: an immutable, versioned envelope around a type-specific `data` dict."""

    event_id: str
    type: str
    version: int
    aggregate: str
    aggregate_version: int
    occurred_at: str
    origin: str
    idempotency_key: str | None
    data: dict[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        _check_envelope(self._as_dict())

    def _as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _ENVELOPE_KEYS}

    def to_json(self) -> bytes:
        """Compact JSON with the envelope keys in their documented order."""
        return orjson.dumps(self._as_dict())

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
        if obj["version"] not in SUPPORTED_VERSIONS:
            # checked first: a newer schema is parked as "unknown version", not as malformed
            raise ValueError(f"unsupported event version {obj['version']!r}")
        return cls(**{k: obj[k] for k in _ENVELOPE_KEYS})


def new_event(
    type: str,
    data: dict[str, Any],
    origin: str,
    *,
    aggregate: str,
    aggregate_version: int,
    idempotency_key: str | None = None,
) -> Event:
    """A fresh event (new uuid4 hex id, occurred now, current schema); validated like `from_json`."""
    return Event(
        event_id=uuid.uuid4().hex,
        type=type,
        version=VERSION,
        aggregate=aggregate,
        aggregate_version=aggregate_version,
        occurred_at=utc_now(),
        origin=origin,
        idempotency_key=idempotency_key,
        data=data,
    )


def order_event(
    order: dict[str, Any],
    origin: str,
    *,
    idempotency: dict[str, Any] | None = None,
) -> Event:
    """`order.placed` or `order.cancelled` (by the order's status) for a contract-shaped order.

    `idempotency` is ``{"key", "request", "response"}`` when the order was placed under an
    Idempotency-Key, so the other side's key table learns it.
    """
    status = order.get("status")
    kind = ORDER_CANCELLED if status == "cancelled" else ORDER_PLACED
    data: dict[str, Any] = {"order": order}
    if idempotency is not None:
        data["idempotency"] = idempotency
    return new_event(
        kind,
        data,
        origin,
        aggregate=f"order:{order.get('id')}",
        aggregate_version=ORDER_STATUS_RANK.get(str(status), 0),
        idempotency_key=None if idempotency is None else idempotency.get("key"),
    )


def inventory_changed(
    item: dict[str, Any], reservations: list[dict[str, Any]], origin: str, version: int
) -> Event:
    """`inventory.changed`: the stock authority's own record of one item at `version`."""
    return new_event(
        INVENTORY_CHANGED,
        {"item": item, "reservations": reservations},
        origin,
        aggregate=f"item:{item.get('sku')}",
        aggregate_version=version,
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
    if not _is_int(obj["aggregate_version"]) or obj["aggregate_version"] < 1:
        raise ValueError("aggregate_version must be an integer >= 1")
    key = obj["idempotency_key"]
    if key is not None and (not isinstance(key, str) or not key or len(key) > 255):
        raise ValueError("idempotency_key must be null or a string of 1..255 characters")
    if obj["type"] not in EVENT_TYPES:
        raise ValueError(f"unknown event type {obj['type']!r}")
    _check_timestamp(obj["occurred_at"], "occurred_at")
    if obj["origin"] not in ORIGINS:
        raise ValueError(f"unknown origin {obj['origin']!r}")
    if not isinstance(obj["data"], dict):
        raise ValueError("data must be an object")
    validate_data(obj["type"], obj["data"])
    _check_aggregate(obj)


def _check_aggregate(obj: dict[str, Any]) -> None:
    data = obj["data"]
    if obj["type"] == INVENTORY_CHANGED:
        expected = f"item:{data['item']['sku']}"
    else:
        order = data["order"]
        expected = f"order:{order['id']}"
        rank = ORDER_STATUS_RANK[order["status"]]
        if obj["aggregate_version"] != rank:
            raise ValueError(f"aggregate_version of a {order['status']} order must be {rank}")
        wanted = ORDER_CANCELLED if order["status"] == "cancelled" else ORDER_PLACED
        if obj["type"] != wanted:
            raise ValueError(f"a {order['status']} order cannot travel as {obj['type']}")
        idem = data.get("idempotency")
        if idem is not None:
            if not isinstance(idem, dict) or not isinstance(idem.get("key"), str):
                raise ValueError("data.idempotency must be an object with a string key")
            if "request" not in idem or not isinstance(idem.get("response"), dict):
                raise ValueError("data.idempotency needs request and response")
            if idem["key"] != obj["idempotency_key"]:
                raise ValueError("data.idempotency.key differs from idempotency_key")
    if obj["aggregate"] != expected:
        raise ValueError(f"aggregate must be {expected!r}")


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
