"""The JSON API (SPEC §3) through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from legacy_monolith import errors
from legacy_monolith.db import ID_CEILING, Customer, IdempotencyKey, Order, Reservation
from tests.legacy.helpers import add_customer, body, db_of

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def order_body(customer_id: int = 1, **lines: int) -> dict[str, object]:
    return {
        "customer_id": customer_id,
        "items": [{"sku": f"SKU-{k}", "qty": q} for k, q in lines.items()],
    }


def item(client: FlaskClient, sku: str) -> dict[str, object]:
    r = client.get(f"/api/inventory/{sku}")
    assert r.status_code == 200
    data: dict[str, object] = body(r)
    return data


# --- customers ---------------------------------------------------------------------------


def test_create_get_and_list_customers(shop: FlaskClient) -> None:
    r = shop.post("/api/customers", json={"name": "Grace Hopper", "email": "grace@example.com"})
    assert r.status_code == 201
    created = body(r)
    assert list(created) == ["id", "name", "email", "created_at"]
    assert created["id"] == 2 and created["name"] == "Grace Hopper"
    assert TS.fullmatch(created["created_at"])
    assert body(shop.get("/api/customers/2")) == created

    listing = body(shop.get("/api/customers"))
    assert list(listing) == ["items", "total", "generated_at"]
    assert [c["id"] for c in listing["items"]] == [1, 2]
    assert listing["total"] == 2 and TS.fullmatch(listing["generated_at"])


def test_duplicate_email_is_409(shop: FlaskClient) -> None:
    r = shop.post("/api/customers", json={"name": "Other", "email": "ada@example.com"})
    assert r.status_code == 409
    assert body(r) == errors.duplicate_email("ada@example.com").body()


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'{"email": "a@b.c"}', "name: is required"),
        (b'{"name": "", "email": "a@b.c"}', "name: must not be empty"),
        (b'{"name": 5, "email": "a@b.c"}', "name: must be a string"),
        (b'{"name": "A"}', "email: is required"),
        (b'{"name": "A", "email": "nope"}', "email: must be an email address"),
    ],
)
def test_customer_validation(light_shop: FlaskClient, payload: bytes, detail: str) -> None:
    r = light_shop.post("/api/customers", data=payload, content_type="application/json")
    assert r.status_code == 422
    assert body(r) == {"error": "validation_error", "detail": detail}


def test_unknown_customer_is_404(light_shop: FlaskClient) -> None:
    for path in ("/api/customers/999", "/api/customers/abc", "/api/customers/0"):
        r = light_shop.get(path)
        assert r.status_code == 404 and body(r)["error"] == "not_found"
    assert body(light_shop.get("/api/customers/999"))["detail"] == "customer 999 not found"


def test_new_ids_stay_below_the_ceiling(app: Flask, shop: FlaskClient) -> None:
    # A row copied in from a new service must not push legacy ids past the bound.
    add_customer(app, ID_CEILING + 5, "copied@example.com")
    r = shop.post("/api/customers", json={"name": "N", "email": "n@example.com"})
    assert body(r)["id"] == 2


# --- inventory ---------------------------------------------------------------------------


def test_item_shape_and_list(shop: FlaskClient) -> None:
    a = item(shop, "SKU-A")
    assert a == {
        "sku": "SKU-A",
        "name": "Item SKU-A",
        "price_cents": 250,
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
    }
    assert list(a) == ["sku", "name", "price_cents", "on_hand", "reserved", "available"]
    listing = body(shop.get("/api/inventory"))
    assert [i["sku"] for i in listing["items"]] == ["SKU-A", "SKU-B", "SKU-C"]
    assert listing["total"] == 3
    r = shop.get("/api/inventory/SKU-NOPE")
    assert r.status_code == 404 and body(r) == errors.item_not_found("SKU-NOPE").body()


def test_reservations_lifecycle(shop: FlaskClient) -> None:
    url = "/api/inventory/SKU-A/reservations"
    r = shop.post(url, json={"order_id": 77, "qty": 3})
    assert r.status_code == 201 and body(r) == {"sku": "SKU-A", "order_id": 77, "qty": 3}
    # The same reservation again: 200, same body, nothing reserved twice.
    r = shop.post(url, json={"order_id": 77, "qty": 3})
    assert r.status_code == 200 and body(r) == {"sku": "SKU-A", "order_id": 77, "qty": 3}
    assert item(shop, "SKU-A")["reserved"] == 3
    r = shop.post(url, json={"order_id": 77, "qty": 4})
    assert r.status_code == 409 and body(r)["error"] == "reservation_conflict"
    r = shop.post(url, json={"order_id": 78, "qty": 8})
    assert r.status_code == 409 and body(r) == errors.insufficient_stock("SKU-A").body()
    shop.post(url, json={"order_id": 5, "qty": 1})

    listing = body(shop.get(url))
    assert [x["order_id"] for x in listing["items"]] == [5, 77] and listing["total"] == 2
    assert item(shop, "SKU-A")["available"] == 6

    assert shop.delete(f"{url}/77").status_code == 204
    assert shop.delete(f"{url}/77").status_code == 204  # nothing left: still 204
    assert item(shop, "SKU-A")["reserved"] == 1


def test_reservation_errors(shop: FlaskClient) -> None:
    r = shop.post("/api/inventory/SKU-NOPE/reservations", json={"order_id": 1, "qty": 1})
    assert r.status_code == 404 and body(r)["error"] == "not_found"
    assert shop.get("/api/inventory/SKU-NOPE/reservations").status_code == 404
    assert shop.delete("/api/inventory/SKU-NOPE/reservations/1").status_code == 404
    for bad in ({"order_id": 0, "qty": 1}, {"order_id": 1, "qty": 0}, {"order_id": True, "qty": 1},
                {"order_id": 1, "qty": 1.0}, {"qty": 1}):  # fmt: skip
        r = shop.post("/api/inventory/SKU-A/reservations", json=bad)
        assert r.status_code == 422 and body(r)["error"] == "validation_error", bad


def test_restock(shop: FlaskClient) -> None:
    r = shop.post("/api/inventory/SKU-C/restock", json={"qty": 7})
    assert r.status_code == 200
    assert body(r) == {"sku": "SKU-C", "name": "Item SKU-C", "price_cents": 999,
                       "on_hand": 7, "reserved": 0, "available": 7}  # fmt: skip
    assert shop.post("/api/inventory/SKU-C/restock", json={"qty": 0}).status_code == 422
    assert shop.post("/api/inventory/SKU-C/restock", json={"qty": "1"}).status_code == 422
    assert shop.post("/api/inventory/SKU-NOPE/restock", json={"qty": 1}).status_code == 404


# --- orders ------------------------------------------------------------------------------


def test_place_get_and_cancel_order(shop: FlaskClient) -> None:
    r = shop.post("/api/orders", json=order_body(A=2, B=3))
    assert r.status_code == 201
    order = body(r)
    assert list(order) == ["id", "customer_id", "status", "items", "total_cents", "placed_at"]
    assert order["status"] == "placed" and order["customer_id"] == 1
    assert order["items"] == [
        {"sku": "SKU-A", "qty": 2, "price_cents": 250},
        {"sku": "SKU-B", "qty": 3, "price_cents": 100},
    ]
    assert order["total_cents"] == 2 * 250 + 3 * 100
    assert TS.fullmatch(order["placed_at"])
    assert body(shop.get(f"/api/orders/{order['id']}")) == order
    assert item(shop, "SKU-A")["reserved"] == 2 and item(shop, "SKU-B")["available"] == 2
    reservations = body(shop.get("/api/inventory/SKU-B/reservations"))["items"]
    assert reservations == [{"sku": "SKU-B", "order_id": order["id"], "qty": 3}]

    r = shop.post(f"/api/orders/{order['id']}/cancel")
    assert r.status_code == 200
    cancelled = body(r)
    assert cancelled == {**order, "status": "cancelled"}
    assert item(shop, "SKU-A")["reserved"] == 0 and item(shop, "SKU-B")["reserved"] == 0
    # Cancelling again: 200, no change.
    again = shop.post(f"/api/orders/{order['id']}/cancel")
    assert again.status_code == 200 and body(again) == cancelled
    assert shop.post("/api/orders/424242/cancel").status_code == 404


def test_line_price_is_the_price_when_placed(app: Flask, shop: FlaskClient) -> None:
    order = body(shop.post("/api/orders", json=order_body(A=1)))
    from legacy_monolith.db import Item

    with db_of(app).write() as s:
        s.get_one(Item, "SKU-A").price_cents = 9999
    again = body(shop.get(f"/api/orders/{order['id']}"))
    assert again["items"][0]["price_cents"] == 250 and again["total_cents"] == 250


def test_list_orders_filter_and_pagination(app: Flask, shop: FlaskClient) -> None:
    add_customer(app, 2, "two@example.com")
    ids = [body(shop.post("/api/orders", json=order_body(c, A=1)))["id"] for c in (1, 2, 1, 1)]
    listing = body(shop.get("/api/orders"))
    assert [o["id"] for o in listing["items"]] == ids and listing["total"] == 4
    mine = body(shop.get("/api/orders?customer_id=1&limit=2&offset=1"))
    assert [o["id"] for o in mine["items"]] == [ids[2], ids[3]] and mine["total"] == 3
    assert body(shop.get("/api/orders?customer_id=99"))["items"] == []
    assert body(shop.get("/api/orders?offset=10"))["items"] == []


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"{", "request body is not valid JSON"),
        (b'"x"', "request body must be a JSON object"),
        (b'{"items": [{"sku": "SKU-A", "qty": 1}]}', "customer_id: is required"),
        (b'{"customer_id": true, "items": []}', "customer_id: must be an integer"),
        (b'{"customer_id": 1.0, "items": []}', "customer_id: must be an integer"),
        (b'{"customer_id": 0, "items": []}', "customer_id: must be >= 1"),
        (b'{"customer_id": 1}', "items: is required"),
        (b'{"customer_id": 1, "items": {}}', "items: must be a list"),
        (b'{"customer_id": 1, "items": []}', "items: must not be empty"),
        (b'{"customer_id": 1, "items": [1]}', "items[0]: must be an object"),
        (b'{"customer_id": 1, "items": [{"qty": 1}]}', "items[0].sku: is required"),
        (b'{"customer_id": 1, "items": [{"sku": "", "qty": 1}]}', "items[0].sku: must not be empty"),
        (b'{"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 0}]}', "items[0].qty: must be >= 1"),
        (b'{"customer_id": 1, "items": [{"sku": "SKU-A", "qty": "2"}]}',
         "items[0].qty: must be an integer"),
        (b'{"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 1}, {"sku": "SKU-A", "qty": 2}]}',
         "items[1].sku: duplicate sku"),
        (b'{"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 3000000000}]}',
         "items[0].qty: must be <= 2147483647"),
    ],
)  # fmt: skip
def test_order_validation(light_shop: FlaskClient, payload: bytes, detail: str) -> None:
    r = light_shop.post("/api/orders", data=payload, content_type="application/json")
    assert r.status_code == 422
    assert body(r) == {"error": "validation_error", "detail": detail}


def test_order_check_order(shop: FlaskClient) -> None:
    # Validation first, then the customer, then every sku, then stock.
    r = shop.post("/api/orders", json={"customer_id": 9, "items": [{"sku": "SKU-X", "qty": 0}]})
    assert r.status_code == 422 and body(r)["error"] == "validation_error"
    r = shop.post("/api/orders", json=order_body(9, X=1))
    assert r.status_code == 404 and body(r) == errors.unknown_customer(9).body()
    r = shop.post("/api/orders", json=order_body(1, C=5, X=1))
    assert r.status_code == 422 and body(r) == errors.unknown_sku("SKU-X").body()
    r = shop.post("/api/orders", json=order_body(1, A=1, C=5))
    assert r.status_code == 409 and body(r) == errors.insufficient_stock("SKU-C").body()
    # Nothing stays reserved from the failed order, and no order was created.
    assert item(shop, "SKU-A")["reserved"] == 0
    assert body(shop.get("/api/orders"))["total"] == 0


def test_unknown_order_is_404(light_shop: FlaskClient) -> None:
    for path in ("/api/orders/5", "/api/orders/x", "/api/orders/99999999999999999999999"):
        r = light_shop.get(path)
        assert r.status_code == 404 and body(r)["error"] == "not_found", path


# --- idempotency -------------------------------------------------------------------------


def test_idempotency_key_replays_and_places_nothing(shop: FlaskClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = shop.post("/api/orders", json=order_body(A=2), headers=headers)
    assert first.status_code == 201
    # Same parsed JSON, other spelling: replayed.
    raw = b'{ "items": [{"qty": 2, "sku": "SKU-A"}], "customer_id": 1 }'
    second = shop.post("/api/orders", data=raw, headers=headers, content_type="application/json")
    assert second.status_code == 201 and body(second) == body(first)
    assert body(shop.get("/api/orders"))["total"] == 1
    assert item(shop, "SKU-A")["reserved"] == 2

    other = shop.post("/api/orders", json=order_body(A=3), headers=headers)
    assert other.status_code == 422 and body(other) == errors.idempotency_key_reused().body()
    # The key is checked before the body: even an invalid body is "another body".
    bad = shop.post("/api/orders", data=b"{", headers=headers, content_type="application/json")
    assert bad.status_code == 422 and body(bad)["error"] == "idempotency_key_reused"
    # A different key places a new order.
    new = shop.post("/api/orders", json=order_body(A=2), headers={"Idempotency-Key": "k-2"})
    assert new.status_code == 201 and body(new)["id"] != body(first)["id"]


def test_idempotency_only_stores_201(shop: FlaskClient) -> None:
    headers = {"Idempotency-Key": "k-fail"}
    r = shop.post("/api/orders", json=order_body(C=1), headers=headers)
    assert r.status_code == 409
    shop.post("/api/inventory/SKU-C/restock", json={"qty": 1})
    r = shop.post("/api/orders", json=order_body(C=1), headers=headers)
    assert r.status_code == 201


def test_idempotency_keys_expire_after_a_day(app: Flask, shop: FlaskClient) -> None:
    headers = {"Idempotency-Key": "old"}
    first = body(shop.post("/api/orders", json=order_body(A=1), headers=headers))
    with db_of(app).write() as s:
        s.get_one(IdempotencyKey, "old").created_at -= dt.timedelta(hours=25)
    # Purged lazily: the key is new again, so the same body places a second order.
    second = body(shop.post("/api/orders", json=order_body(A=1), headers=headers))
    assert second["id"] != first["id"]
    with db_of(app).read() as s:
        assert s.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_json_equal_keeps_bools_apart() -> None:
    from legacy_monolith.shop import json_equal

    assert json_equal({"a": [1, {"b": "x"}]}, {"a": [1.0, {"b": "x"}]})
    assert not json_equal({"a": 1}, {"a": True})
    assert not json_equal({"a": [1]}, {"a": [1, 2]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


# --- ids, errors, methods ----------------------------------------------------------------


def test_order_ids_skip_reserved_ids_and_stay_below_ceiling(app: Flask, shop: FlaskClient) -> None:
    shop.post("/api/inventory/SKU-B/reservations", json={"order_id": 40, "qty": 1})
    with db_of(app).write() as s:
        s.add(Order(id=ID_CEILING + 1, customer_id=1, status="placed", total_cents=0,
                    placed_at=dt.datetime(2026, 1, 1), origin="orders"))  # fmt: skip
    order = body(shop.post("/api/orders", json=order_body(A=1)))
    assert order["id"] == 41
    with db_of(app).read() as s:
        assert s.get(Reservation, ("SKU-B", 40)) is not None
        assert s.get(Customer, 1) is not None


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "limit=", "offset=-1",
                                   "offset=1.5", "customer_id=0", "customer_id=abc"])  # fmt: skip
def test_bad_query_is_422(light_shop: FlaskClient, query: str) -> None:
    path = "/api/orders" if query.startswith("customer_id") else "/api/customers"
    r = light_shop.get(f"{path}?{query}")
    assert r.status_code == 422 and body(r)["error"] == "validation_error"


def test_limit_bounds_are_accepted(light_shop: FlaskClient) -> None:
    assert len(body(light_shop.get("/api/inventory?limit=1"))["items"]) == 1
    assert len(body(light_shop.get("/api/inventory?limit=500"))["items"]) == 3
    assert [i["sku"] for i in body(light_shop.get("/api/inventory?limit=1&offset=2"))["items"]] == [
        "SKU-C"
    ]


def test_unknown_api_path_and_wrong_method(light_shop: FlaskClient) -> None:
    r = light_shop.get("/api/nothing/here")
    assert r.status_code == 404 and body(r) == {"error": "not_found", "detail": "no such resource"}
    r = light_shop.delete("/api/orders")
    assert r.status_code == 405
    assert body(r) == {"error": "method_not_allowed", "detail": "method DELETE not allowed"}
    assert "POST" in r.headers["Allow"]
    assert light_shop.put("/api/customers/1").status_code == 405


def test_head_works_wherever_get_does(light_shop: FlaskClient) -> None:
    for path in ("/api/customers", "/api/customers/1", "/api/inventory", "/api/orders", "/",
                 "/customers/1", "/healthz"):  # fmt: skip
        get, head = light_shop.get(path), light_shop.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.get_data() == b""
        assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_bodies_are_compact_orjson(light_shop: FlaskClient) -> None:
    r = light_shop.get("/api/customers/1")
    assert r.get_data() == orjson.dumps(body(r))
    assert b" " not in r.get_data().replace(b"Ada Lovelace", b"")


def test_oversized_body_is_413(light_shop: FlaskClient) -> None:
    r = light_shop.post(
        "/api/orders", data=b" " * (1024 * 1024 + 1), content_type="application/json"
    )
    assert r.status_code == 413 and body(r) == errors.body_too_large().body()
