"""Byte-level conventions: key order, compact orjson bytes, `Content-Type: application/json`.

The legacy and the extracted services must answer byte-for-byte-equivalent JSON
(SPEC §3), so every implementation serialises with `orjson.dumps(obj)` with keys
in the order the spec lists them. These checks are kept apart from the semantic
tests so that a serialisation slip fails here, precisely, and nowhere else.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.contract.helpers import (
    CUSTOMER_KEYS,
    ERROR_KEYS,
    ITEM_KEYS,
    LINE_KEYS,
    LIST_KEYS,
    ORDER_KEYS,
    RESERVATION_KEYS,
    UNKNOWN_ID,
    Shop,
    describe,
)


def compact_body(resp: httpx.Response) -> Any:
    """Assert the answer is exactly `orjson.dumps` of its own JSON, typed application/json."""
    assert resp.headers.get("content-type") == "application/json", describe(resp)
    parsed = orjson.loads(resp.content)
    assert resp.content == orjson.dumps(parsed), f"not compact orjson bytes: {describe(resp)}"
    return parsed


def test_customer_bytes(shop: Shop) -> None:
    shop.require("customers")
    body = compact_body(shop.get("/api/customers/1"))
    assert list(body) == CUSTOMER_KEYS


def test_customer_list_bytes(shop: Shop) -> None:
    shop.require("customers")
    body = compact_body(shop.get("/api/customers", params={"limit": 3}))
    assert list(body) == LIST_KEYS
    assert [list(c) for c in body["items"]] == [CUSTOMER_KEYS] * 3


def test_item_and_item_list_bytes(shop: Shop) -> None:
    assert list(compact_body(shop.get("/api/inventory/SKU-0001"))) == ITEM_KEYS
    body = compact_body(shop.get("/api/inventory", params={"limit": 3}))
    assert list(body) == LIST_KEYS
    assert [list(i) for i in body["items"]] == [ITEM_KEYS] * 3


def test_reservation_list_bytes(shop: Shop) -> None:
    body = compact_body(shop.get("/api/inventory/SKU-0001/reservations"))
    assert list(body) == LIST_KEYS
    assert all(list(r) == RESERVATION_KEYS for r in body["items"])


def test_order_and_order_list_bytes(shop: Shop) -> None:
    order = compact_body(shop.get("/api/orders/1"))
    assert list(order) == ORDER_KEYS
    assert all(list(line) == LINE_KEYS for line in order["items"])
    body = compact_body(shop.get("/api/orders", params={"limit": 3}))
    assert list(body) == LIST_KEYS
    assert [list(o) for o in body["items"]] == [ORDER_KEYS] * 3


def test_healthz_bytes(shop: Shop) -> None:
    resource = "orders"
    assert compact_body(shop.get("/healthz", resource=resource)) == {"status": "ok"}


def test_written_objects_bytes(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order_id = shop.fake_order_id()
    path = f"/api/inventory/{sku}/reservations"
    created = compact_body(shop.post(path, json={"order_id": order_id, "qty": 1}))
    assert list(created) == RESERVATION_KEYS
    assert (
        list(compact_body(shop.post(f"/api/inventory/{sku}/restock", json={"qty": 1}))) == ITEM_KEYS
    )
    r = shop.delete(f"{path}/{order_id}")
    assert r.status_code == 204 and r.content == b"", describe(r)
    placed = compact_body(
        shop.post("/api/orders", json={"customer_id": 1, "items": [{"sku": sku, "qty": 1}]})
    )
    assert list(placed) == ORDER_KEYS
    cancelled = compact_body(shop.post(f"/api/orders/{placed['id']}/cancel"))
    assert list(cancelled) == ORDER_KEYS


def test_created_customer_bytes(shop: Shop) -> None:
    shop.require("customers")
    email = f"bytes-{uuid.uuid4().hex[:12]}@example.com"
    created = compact_body(shop.post("/api/customers", json={"name": "Bytes", "email": email}))
    assert list(created) == CUSTOMER_KEYS


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", f"/api/orders/{UNKNOWN_ID}", None),
        ("GET", "/api/inventory?limit=0", None),
        ("POST", "/api/orders", b"{not json"),
        ("DELETE", "/api/orders", None),
        ("GET", "/api/inventory/SKU-0001/nope", None),
    ],
)
def test_error_bytes(shop: Shop, method: str, path: str, body: bytes | None) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else None
    r = shop.request(method, path, content=body, headers=headers)
    assert r.status_code >= 400, describe(r)
    assert list(compact_body(r)) == ERROR_KEYS
