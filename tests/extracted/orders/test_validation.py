"""Request parsing: the legacy's rules and texts (first failing field reported)."""

from __future__ import annotations

import pytest

from extracted.contract.errors import ContractError
from extracted.orders.domain.errors import NotFound
from extracted.orders.entrypoints.validation import (
    check_key,
    parse_customer_filter,
    parse_order_id,
    parse_place_order,
)


@pytest.mark.parametrize(
    "raw,detail",
    [
        (b"{", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object"),
        (b"{}", "customer_id: is required"),
        (b'{"customer_id":true,"items":[]}', "customer_id: must be an integer"),
        (b'{"customer_id":1.0,"items":[]}', "customer_id: must be an integer"),
        (b'{"customer_id":0,"items":[]}', "customer_id: must be >= 1"),
        (b'{"customer_id":2147483648,"items":[]}', "customer_id: must be <= 2147483647"),
        (b'{"customer_id":1}', "items: is required"),
        (b'{"customer_id":1,"items":{}}', "items: must be a list"),
        (b'{"customer_id":1,"items":[]}', "items: must not be empty"),
        (b'{"customer_id":1,"items":[1]}', "items[0]: must be an object"),
        (b'{"customer_id":1,"items":[{"qty":1}]}', "items[0].sku: is required"),
        (b'{"customer_id":1,"items":[{"sku":"","qty":1}]}', "items[0].sku: must not be empty"),
        (b'{"customer_id":1,"items":[{"sku":5,"qty":1}]}', "items[0].sku: must be a string"),
        (b'{"customer_id":1,"items":[{"sku":"A","qty":0}]}', "items[0].qty: must be >= 1"),
        (
            b'{"customer_id":1,"items":[{"sku":"A","qty":1},{"sku":"A","qty":2}]}',
            "items[1].sku: duplicate sku",
        ),
    ],
)
def test_place_order_body_errors(raw: bytes, detail: str) -> None:
    with pytest.raises(ContractError) as exc:
        parse_place_order(raw)
    assert (exc.value.status, exc.value.code) == (422, "validation_error")
    assert exc.value.detail == detail


def test_place_order_body_ok() -> None:
    cmd, body = parse_place_order(b'{"customer_id":3,"items":[{"sku":"A","qty":2}],"x":1}')
    assert cmd.customer_id == 3 and cmd.lines[0].sku == "A" and body["x"] == 1


def test_customer_filter() -> None:
    assert parse_customer_filter({}) is None and parse_customer_filter({"customer_id": "4"}) == 4
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(ContractError):
            parse_customer_filter({"customer_id": bad})


@pytest.mark.parametrize("raw", ["0", "-1", "abc", str(10**20), "1.0"])
def test_bad_path_ids_are_404_with_the_raw_text(raw: str) -> None:
    with pytest.raises(NotFound) as exc:
        parse_order_id(raw)
    assert exc.value.status == 404
    assert exc.value.detail == f"order {raw} not found"


def test_key_length() -> None:
    check_key("k" * 255)
    with pytest.raises(ContractError) as exc:
        check_key("k" * 256)
    assert exc.value.detail == "Idempotency-Key: must be at most 255 characters"
