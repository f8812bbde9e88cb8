"""Service-wide contract: /healthz, HEAD, unknown paths and ids, wrong methods (SPEC §3)."""

from __future__ import annotations

import pytest

from tests.contract.helpers import UNKNOWN_ID, UNKNOWN_SKU, Shop, expect_error, expect_json

# One known path per resource, for the checks every server must pass.
KNOWN_PATHS = {
    "customers": "/api/customers/1",
    "inventory": "/api/inventory/SKU-0001",
    "orders": "/api/orders/1",
}


@pytest.mark.parametrize("resource", ["customers", "inventory", "orders"])
def test_healthz_answers_ok(shop: Shop, resource: str) -> None:
    shop.require(resource)
    r = shop.get("/healthz", resource=resource)
    assert expect_json(r, 200) == {"status": "ok"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/customers",
        "/api/customers/1",
        "/api/inventory",
        "/api/inventory/SKU-0001",
        "/api/inventory/SKU-0001/reservations",
        "/api/orders",
        "/api/orders/1",
    ],
)
def test_head_on_a_get_path_answers_like_get_without_a_body(shop: Shop, path: str) -> None:
    shop.require(path.split("/")[2])
    got = shop.get(path)
    head = shop.request("HEAD", path)
    assert head.status_code == got.status_code == 200, head
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/customers/1/nope",
        "/api/inventory/SKU-0001/nope",
        "/api/inventory/SKU-0001/reservations/1/nope",
        "/api/orders/1/nope",
        "/api/orders/1/cancel/nope",
    ],
)
def test_unknown_path_under_api_is_404_not_found(shop: Shop, path: str) -> None:
    shop.require(path.split("/")[2])
    expect_error(shop.get(path), 404, "not_found")


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", f"/api/customers/{UNKNOWN_ID}"),
        ("GET", "/api/customers/0"),
        ("GET", "/api/customers/-1"),
        ("GET", "/api/customers/abc"),
        ("GET", f"/api/customers/{10**20}"),
        ("GET", f"/api/inventory/{UNKNOWN_SKU}"),
        ("GET", f"/api/inventory/{UNKNOWN_SKU}/reservations"),
        ("DELETE", f"/api/inventory/{UNKNOWN_SKU}/reservations/1"),
        ("DELETE", "/api/inventory/SKU-0001/reservations/abc"),
        ("GET", f"/api/orders/{UNKNOWN_ID}"),
        ("GET", "/api/orders/0"),
        ("GET", "/api/orders/-1"),
        ("GET", "/api/orders/abc"),
        ("GET", f"/api/orders/{10**20}"),
        ("POST", f"/api/orders/{UNKNOWN_ID}/cancel"),
        ("POST", "/api/orders/abc/cancel"),
    ],
)
def test_unknown_id_or_sku_in_a_path_is_404_not_found(shop: Shop, method: str, path: str) -> None:
    shop.require(path.split("/")[2])
    expect_error(shop.request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    "path,body",
    [
        (f"/api/inventory/{UNKNOWN_SKU}/reservations", {"order_id": 1, "qty": 1}),
        (f"/api/inventory/{UNKNOWN_SKU}/restock", {"qty": 1}),
    ],
)
def test_posting_to_an_unknown_sku_is_404_not_found(shop: Shop, path: str, body: dict) -> None:
    shop.require("inventory")
    expect_error(shop.post(path, json=body), 404, "not_found")


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "/api/customers/1"),
        ("PUT", "/api/customers/1"),
        ("DELETE", "/api/customers"),
        ("DELETE", "/api/inventory/SKU-0001"),
        ("PUT", "/api/inventory"),
        ("GET", "/api/inventory/SKU-0001/restock"),
        ("GET", "/api/inventory/SKU-0001/reservations/1"),
        ("PATCH", "/api/orders/1"),
        ("DELETE", "/api/orders"),
        ("GET", "/api/orders/1/cancel"),
    ],
)
def test_wrong_method_is_405_method_not_allowed(shop: Shop, method: str, path: str) -> None:
    shop.require(path.split("/")[2])
    expect_error(shop.request(method, path), 405, "method_not_allowed")
