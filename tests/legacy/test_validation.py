"""Request parsing, without a database: every failure is a 422 with the reference text."""

from __future__ import annotations

import pytest

from legacy_monolith import errors
from legacy_monolith.errors import ShopError
from legacy_monolith.validation import (
    OrderLineRequest,
    Page,
    parse_customer_filter,
    parse_new_customer,
    parse_page,
    parse_path_id,
    parse_place_order,
    parse_reservation,
    parse_restock,
)


def detail_of(call: object) -> str:
    with pytest.raises(ShopError) as info:
        call()  # type: ignore[operator]
    assert info.value.status == 422 and info.value.code == "validation_error"
    return info.value.detail


def test_place_order_parses_lines_in_order() -> None:
    cmd, body = parse_place_order(
        b'{"customer_id": 3, "items": [{"sku": "B", "qty": 2}, {"sku": "A", "qty": 1}]}'
    )
    assert cmd.customer_id == 3
    assert cmd.lines == (OrderLineRequest("B", 2), OrderLineRequest("A", 1))
    assert body["customer_id"] == 3


def test_extra_fields_are_ignored() -> None:
    assert parse_restock(b'{"qty": 2, "note": "x"}') == 2


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "request body is not valid JSON"),
        (b"null", "request body must be a JSON object"),
        (b'{"order_id": 1}', "qty: is required"),
        (b'{"order_id": false, "qty": 1}', "order_id: must be an integer"),
        (b'{"order_id": 1, "qty": -3}', "qty: must be >= 1"),
        (b'{"order_id": 1, "qty": 2.5}', "qty: must be an integer"),
        (b'{"order_id": "1", "qty": 1}', "order_id: must be an integer"),
    ],
)
def test_reservation_failures(raw: bytes, detail: str) -> None:
    assert detail_of(lambda: parse_reservation(raw)) == detail


def test_customer_parsing() -> None:
    new = parse_new_customer(b'{"name": "A B", "email": "a@b.example"}')
    assert (new.name, new.email) == ("A B", "a@b.example")
    assert detail_of(lambda: parse_new_customer(b'{"name": "A", "email": "a b@c"}')) == (
        "email: must be an email address"
    )


def test_page_defaults_and_bounds() -> None:
    assert parse_page({}) == Page(50, 0)
    assert parse_page({"limit": "500", "offset": "7"}) == Page(500, 7)
    assert (
        detail_of(lambda: parse_page({"limit": "501"}))
        == "limit: must be an integer between 1 and 500"
    )
    assert (
        detail_of(lambda: parse_page({"limit": " 5"}))
        == "limit: must be an integer between 1 and 500"
    )
    assert detail_of(lambda: parse_page({"offset": "-1"})) == "offset: must be an integer >= 0"
    assert parse_page({"offset": "9" * 30}).offset == 2**63 - 1


def test_customer_filter() -> None:
    assert parse_customer_filter({}) is None
    assert parse_customer_filter({"customer_id": "12"}) == 12
    assert (
        detail_of(lambda: parse_customer_filter({"customer_id": "0"}))
        == "customer_id: must be >= 1"
    )
    assert detail_of(lambda: parse_customer_filter({"customer_id": "-2"})) == (
        "customer_id: must be an integer"
    )


def test_path_ids() -> None:
    missing = errors.order_not_found("x")
    assert parse_path_id("42", missing) == 42
    for raw in ("0", "abc", "-1", "1.0", "9" * 30, "٣"):
        with pytest.raises(ShopError) as info:
            parse_path_id(raw, missing)
        assert info.value.status == 404
