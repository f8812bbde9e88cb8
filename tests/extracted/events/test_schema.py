"""The event envelope: round trip, strict validation, versioning."""

from __future__ import annotations

import orjson
import pytest

from extracted.events import INVENTORY_CHANGED, ORDER_PLACED, Event, new_event
from extracted.events import order_event as _order_event
from tests.extracted.events.factories import inventory_event, order_event, order_json


def test_round_trip_keeps_every_field_and_key_order() -> None:
    event = order_event()
    raw = event.to_json()
    assert list(orjson.loads(raw)) == [
        "event_id",
        "type",
        "version",
        "aggregate",
        "aggregate_version",
        "occurred_at",
        "origin",
        "idempotency_key",
        "data",
    ]
    assert Event.from_json(raw) == event
    assert Event.from_json(raw.decode()) == event


def test_new_event_fills_the_envelope() -> None:
    event = inventory_event(reservations=[(1_000_000_001, 2)])
    assert len(event.event_id) == 32 and int(event.event_id, 16) >= 0
    assert event.version == 2
    assert event.type == INVENTORY_CHANGED
    assert (event.aggregate, event.aggregate_version) == ("item:SKU-0001", 1)
    placed = order_event(1_000_000_005)
    assert (placed.aggregate, placed.aggregate_version) == ("order:1000000005", 1)
    cancelled = order_event(1_000_000_005, status="cancelled")
    assert (cancelled.type, cancelled.aggregate_version) == ("order.cancelled", 2)
    assert event.occurred_at.endswith("Z") and len(event.occurred_at) == 20
    assert order_event().event_id != event.event_id


def _mutated(**changes: object) -> bytes:
    obj = orjson.loads(order_event().to_json())
    obj.update(changes)
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        _mutated(version=1),
        _mutated(version=3),
        _mutated(aggregate="order:7"),
        _mutated(aggregate_version=2),
        _mutated(aggregate_version=0),
        _mutated(idempotency_key=""),
        _mutated(type="order.cancelled"),
        _mutated(version="1"),
        _mutated(version=True),
        _mutated(type="order.exploded"),
        _mutated(origin="somebody"),
        _mutated(event_id="xyz"),
        _mutated(occurred_at="2026-11-25 12:00:00"),
        _mutated(data=[]),
        _mutated(data={}),
        _mutated(data={"order": {**order_json(), "id": True}}),
        _mutated(data={"order": {**order_json(), "id": 1.5}}),
        _mutated(data={"order": {**order_json(), "status": "shipped"}}),
        _mutated(data={"order": {**order_json(), "items": []}}),
        _mutated(
            data={"order": {**order_json(), "items": [{"sku": "S", "qty": 0, "price_cents": 1}]}}
        ),
    ],
)
def test_invalid_events_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Event.from_json(raw)


def test_missing_envelope_field_is_rejected() -> None:
    obj = orjson.loads(order_event().to_json())
    del obj["origin"]
    with pytest.raises(ValueError, match="origin"):
        Event.from_json(orjson.dumps(obj))


def test_inventory_reservations_must_match_the_item() -> None:
    event = inventory_event(reservations=[(7, 1)])
    obj = orjson.loads(event.to_json())
    obj["data"]["reservations"][0]["sku"] = "SKU-9999"
    with pytest.raises(ValueError, match="differs"):
        Event.from_json(orjson.dumps(obj))


def test_new_event_rejects_unknown_types_and_bad_data() -> None:
    with pytest.raises(ValueError):
        new_event(
            "order.exploded", {"order": order_json()}, "orders", aggregate="x", aggregate_version=1
        )
    with pytest.raises(ValueError):
        new_event(ORDER_PLACED, {"item": {}}, "orders", aggregate="x", aggregate_version=1)


def test_idempotency_travels_with_the_order() -> None:
    idem = {"key": "k-1", "request": {"customer_id": 1}, "response": order_json()}
    event = _order_event(order_json(), "legacy", idempotency=idem)
    assert event.idempotency_key == "k-1"
    assert Event.from_json(event.to_json()).data["idempotency"] == idem
    obj = orjson.loads(event.to_json())
    obj["idempotency_key"] = "k-2"
    with pytest.raises(ValueError, match="differs"):
        Event.from_json(orjson.dumps(obj))
