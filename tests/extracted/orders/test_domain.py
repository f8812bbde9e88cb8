"""The pure order domain: totals, JSON shape, status rules, idempotency equality."""

from __future__ import annotations

import orjson
import pytest

from extracted.orders.domain.idempotency import UNPARSABLE, json_equal, loose_json
from extracted.orders.domain.model import (
    Order,
    OrderLine,
    OrderStatus,
    Origin,
    order_from_json,
    same_content,
)


def _order(status: OrderStatus = OrderStatus.PLACED) -> Order:
    return Order(
        id=7,
        customer_id=3,
        status=status,
        lines=(OrderLine("SKU-0002", 2, 150), OrderLine("SKU-0001", 1, 999)),
        placed_at="2026-11-25T12:00:00Z",
    )


def test_total_is_the_sum_of_qty_times_price() -> None:
    assert _order().total_cents == 2 * 150 + 999


def test_json_has_the_contract_keys_in_order_and_keeps_line_order() -> None:
    raw = orjson.dumps(_order().to_json())
    assert raw == (
        b'{"id":7,"customer_id":3,"status":"placed","items":[{"sku":"SKU-0002","qty":2,'
        b'"price_cents":150},{"sku":"SKU-0001","qty":1,"price_cents":999}],'
        b'"total_cents":1299,"placed_at":"2026-11-25T12:00:00Z"}'
    )


def test_only_placed_and_cancelled_orders_are_visible() -> None:
    assert _order().visible and _order(OrderStatus.CANCELLED).visible
    for hidden in (OrderStatus.PENDING, OrderStatus.RELEASING, OrderStatus.FAILED):
        assert not _order(hidden).visible


def test_cancel_is_idempotent_and_refused_for_pending() -> None:
    once = _order().cancelled()
    assert once.status is OrderStatus.CANCELLED and once.origin is Origin.ORDERS
    assert once.cancelled().to_json() == once.to_json()
    with pytest.raises(ValueError):
        _order(OrderStatus.PENDING).cancelled()


def test_order_from_json_round_trips_and_rejects_unknown_status() -> None:
    doc = _order().to_json()
    back = order_from_json(doc)
    assert back.origin is Origin.LEGACY and same_content(back, _order())
    with pytest.raises(ValueError):
        order_from_json({**doc, "status": "pending"})


@pytest.mark.parametrize(
    "a,b,equal",
    [
        ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True),
        ({"qty": 1}, {"qty": True}, False),
        ({"qty": 1}, {"qty": 1.0}, True),
        ([1, 2], [2, 1], False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": [1]}, {"a": 1}, False),
        (UNPARSABLE, UNPARSABLE, False),
    ],
)
def test_json_equal(a: object, b: object, equal: bool) -> None:
    assert json_equal(a, b) is equal


def test_loose_json_marks_garbage() -> None:
    assert loose_json(b"{") is UNPARSABLE
    assert loose_json(b'{"a":1}') == {"a": 1}
