"""Error bodies are identical everywhere: the legacy's texts are the reference.

By the shop conventions every error text lives in `legacy_monolith/errors.py`, and
the extracted services copy them so that error bodies are byte-for-byte the same
(SPEC §3). Here each error answer is compared, whole, with the body the reference
module builds for that case. (This is the one place the suite reads legacy code:
as the oracle of texts, never to reach into a running implementation.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.contract.helpers import (
    UNKNOWN_ID,
    UNKNOWN_SKU,
    VALIDATION_SKU,
    Shop,
    describe,
)

errors = pytest.importorskip("legacy_monolith.errors")

Check = tuple[str, str, Any, Callable[[], Any]]


def same_error(resp: Any, expected: Any) -> None:
    """`resp` is exactly the reference error: status and whole body."""
    assert resp.status_code == expected.status, describe(resp)
    assert resp.json() == expected.body(), describe(resp)


def _order(**fields: Any) -> dict[str, Any]:
    return {"customer_id": 1, "items": [{"sku": VALIDATION_SKU, "qty": 1}], **fields}


def _line(**fields: Any) -> dict[str, Any]:
    return {"sku": VALIDATION_SKU, "qty": 1, **fields}


# (method, path, JSON body or raw bytes or None, reference error)
CASES: list[Check] = [
    ("GET", f"/api/customers/{UNKNOWN_ID}", None, lambda: errors.customer_not_found(UNKNOWN_ID)),
    ("GET", "/api/customers/abc", None, lambda: errors.customer_not_found("abc")),
    ("GET", f"/api/orders/{UNKNOWN_ID}", None, lambda: errors.order_not_found(UNKNOWN_ID)),
    ("GET", "/api/orders/x1", None, lambda: errors.order_not_found("x1")),
    ("POST", f"/api/orders/{UNKNOWN_ID}/cancel", None, lambda: errors.order_not_found(UNKNOWN_ID)),
    ("GET", f"/api/inventory/{UNKNOWN_SKU}", None, lambda: errors.item_not_found(UNKNOWN_SKU)),
    (
        "GET",
        f"/api/inventory/{UNKNOWN_SKU}/reservations",
        None,
        lambda: errors.item_not_found(UNKNOWN_SKU),
    ),
    ("GET", "/api/orders/1/nope", None, errors.path_not_found),
    ("GET", "/api/inventory/SKU-0001/nope", None, errors.path_not_found),
    ("DELETE", "/api/orders", None, lambda: errors.method_not_allowed("DELETE")),
    ("PUT", "/api/inventory/SKU-0001", None, lambda: errors.method_not_allowed("PUT")),
    (
        "GET",
        "/api/orders?limit=0",
        None,
        lambda: errors.validation_error("limit", errors.LIMIT_RANGE),
    ),
    (
        "GET",
        "/api/inventory?offset=-1",
        None,
        lambda: errors.validation_error("offset", errors.OFFSET_RANGE),
    ),
    (
        "GET",
        "/api/orders?customer_id=abc",
        None,
        lambda: errors.validation_error("customer_id", errors.NOT_INTEGER),
    ),
    ("POST", "/api/orders", b"{", lambda: errors.invalid_body(errors.INVALID_JSON)),
    ("POST", "/api/orders", [], lambda: errors.invalid_body(errors.NOT_AN_OBJECT)),
    (
        "POST",
        "/api/orders",
        {"customer_id": 1},
        lambda: errors.validation_error("items", errors.MISSING),
    ),
    (
        "POST",
        "/api/orders",
        _order(items=[]),
        lambda: errors.validation_error("items", errors.EMPTY_LIST),
    ),
    (
        "POST",
        "/api/orders",
        _order(customer_id=True),
        lambda: errors.validation_error("customer_id", errors.NOT_INTEGER),
    ),
    (
        "POST",
        "/api/orders",
        _order(items=[_line(qty=0)]),
        lambda: errors.validation_error("items[0].qty", errors.NOT_POSITIVE),
    ),
    (
        "POST",
        "/api/orders",
        _order(items=[_line(), _line(qty=2)]),
        lambda: errors.validation_error("items[1].sku", errors.DUPLICATE_SKU),
    ),
    (
        "POST",
        "/api/orders",
        _order(customer_id=UNKNOWN_ID),
        lambda: errors.unknown_customer(UNKNOWN_ID),
    ),
    (
        "POST",
        "/api/orders",
        _order(items=[_line(), _line(sku=UNKNOWN_SKU)]),
        lambda: errors.unknown_sku(UNKNOWN_SKU),
    ),
    (
        "POST",
        f"/api/inventory/{VALIDATION_SKU}/reservations",
        {"order_id": 1},
        lambda: errors.validation_error("qty", errors.MISSING),
    ),
    (
        "POST",
        f"/api/inventory/{VALIDATION_SKU}/restock",
        {"qty": 1.5},
        lambda: errors.validation_error("qty", errors.NOT_INTEGER),
    ),
    (
        "POST",
        "/api/customers",
        {"name": "x", "email": ""},
        lambda: errors.validation_error("email", errors.EMPTY_STRING),
    ),
]


@pytest.mark.parametrize(
    "method,path,body,expected",
    CASES,
    ids=[f"{n:02d}-{method}-{path}" for n, (method, path, _, _) in enumerate(CASES)],
)
def test_error_body_is_the_reference_body(
    shop: Shop, method: str, path: str, body: Any, expected: Callable[[], Any]
) -> None:
    shop.require(path.split("/")[2].split("?")[0])
    if body is None:
        r = shop.request(method, path)
    elif isinstance(body, bytes):
        r = shop.post_raw(path, body)
    else:
        r = shop.request(method, path, json=body)
    same_error(r, expected())


def test_insufficient_stock_text(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    too_many = shop.item(sku)["available"] + 1
    r = shop.post("/api/orders", json={"customer_id": 1, "items": [{"sku": sku, "qty": too_many}]})
    same_error(r, errors.insufficient_stock(sku))
    r = shop.post(
        f"/api/inventory/{sku}/reservations",
        json={"order_id": shop.fake_order_id(), "qty": too_many},
    )
    same_error(r, errors.insufficient_stock(sku))


def test_reservation_conflict_text(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order_id = shop.fake_order_id()
    path = f"/api/inventory/{sku}/reservations"
    assert shop.post(path, json={"order_id": order_id, "qty": 1}).status_code == 201
    same_error(
        shop.post(path, json={"order_id": order_id, "qty": 2}),
        errors.reservation_conflict(sku, order_id),
    )
    shop.delete(f"{path}/{order_id}")


def test_idempotency_key_reused_text(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    headers = {"Idempotency-Key": f"contract-{uuid.uuid4()}"}
    body = {"customer_id": 1, "items": [{"sku": sku, "qty": 1}]}
    assert shop.post("/api/orders", json=body, headers=headers).status_code == 201
    r = shop.post("/api/orders", json={**body, "customer_id": 2}, headers=headers)
    same_error(r, errors.idempotency_key_reused())


def test_duplicate_email_text(shop: Shop) -> None:
    shop.require("customers")
    r = shop.post("/api/customers", json={"name": "Twin", "email": "customer3@example.com"})
    same_error(r, errors.duplicate_email("customer3@example.com"))
