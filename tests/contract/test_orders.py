"""Orders: read, filter, place, validate, idempotency, cancel (SPEC §3 and the conventions).

Every test that places orders claims its own skus, so stock checks are exact;
orders go to seeded customers, and no test cancels a seeded order that is placed.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.contract.helpers import (
    FAKE_ORDER_BASE,
    SEEDED_ORDERS,
    SEEDED_SKUS,
    UNKNOWN_ID,
    UNKNOWN_SKU,
    VALIDATION_SKU,
    Shop,
    assert_list,
    assert_order,
    assert_recent,
    expect_error,
    expect_json,
    lines_by_sku,
)
from tests.contract.targets import ID_BOUND


def place(
    shop: Shop, customer_id: int, lines: list[tuple[str, int]], key: str | None = None
) -> httpx.Response:
    body = {"customer_id": customer_id, "items": [{"sku": s, "qty": q} for s, q in lines]}
    headers = {"Idempotency-Key": key} if key else None
    return shop.post("/api/orders", json=body, headers=headers)


def cancel(shop: Shop, order_id: int) -> dict[str, Any]:
    return expect_json(shop.post(f"/api/orders/{order_id}/cancel"), 200)


def new_key() -> str:
    return f"contract-{uuid.uuid4()}"


def snapshot(shop: Shop, skus: list[str]) -> dict[str, Any]:
    """Items and their reservations: what must not change when an order is refused."""
    return {sku: (shop.item(sku), shop.reservations(sku)) for sku in skus}


# -- reads ------------------------------------------------------------------------


def test_seeded_order_1_is_placed(shop: Shop) -> None:
    order = shop.order(1)
    assert_order(order)
    assert order["id"] == 1 and order["status"] == "placed"
    assert 1 <= len(order["items"]) <= 4
    assert 1 <= order["customer_id"] <= 50


def test_seeded_orders_are_consistent(shop: Shop) -> None:
    orders = shop.all_pages("/api/orders")
    seeded = [o for o in orders if o["id"] <= SEEDED_ORDERS]
    assert [o["id"] for o in seeded] == list(range(1, SEEDED_ORDERS + 1))
    for order in seeded:
        assert_order(order)
        assert 1 <= len(order["items"]) <= 4, order
        assert 1 <= order["customer_id"] <= 50, order
    cancelled = sum(o["status"] == "cancelled" for o in seeded)
    assert 20 <= cancelled <= 300, f"about 10% cancelled expected, got {cancelled}"


def test_placed_orders_hold_exactly_their_reservations(shop: Shop) -> None:
    # Placed orders reserve each line's qty; cancelled ones hold nothing.
    expected: dict[str, dict[int, int]] = {}
    for order in shop.all_pages("/api/orders"):
        if order["status"] == "placed":
            for line in order["items"]:
                expected.setdefault(line["sku"], {})[order["id"]] = line["qty"]
    for sku in SEEDED_SKUS:
        held = {
            r["order_id"]: r["qty"]
            for r in shop.reservations(sku)
            # Reservations made directly by the inventory tests belong to no order.
            if not FAKE_ORDER_BASE <= r["order_id"] < ID_BOUND
        }
        assert held == expected.get(sku, {}), sku


def test_get_matches_the_list_entry(shop: Shop) -> None:
    listed = expect_json(shop.get("/api/orders", params={"limit": 5, "offset": 40}), 200)
    assert [o["id"] for o in listed["items"]] == list(range(41, 46))
    for order in listed["items"]:
        assert shop.order(order["id"]) == order


def test_filter_by_customer(shop: Shop) -> None:
    customer = shop.customer_id()
    (sku,) = shop.claim_skus(1)
    mine = expect_json(place(shop, customer, [(sku, 1)]), 201)
    body = expect_json(shop.get("/api/orders", params={"customer_id": customer, "limit": 500}), 200)
    assert_list(body, assert_order)
    assert body["total"] == len(body["items"]) >= 2  # the seed gives each customer ~20 orders
    assert all(o["customer_id"] == customer for o in body["items"])
    ids = [o["id"] for o in body["items"]]
    assert ids == sorted(ids)
    assert mine in body["items"]
    # The filter agrees with the unfiltered list.
    every = shop.all_pages("/api/orders")
    assert [o for o in every if o["customer_id"] == customer] == body["items"]
    # ...and pages like any list.
    page = expect_json(
        shop.get("/api/orders", params={"customer_id": customer, "limit": 2, "offset": 1}), 200
    )
    assert page["total"] == body["total"] and page["items"] == body["items"][1:3]


def test_filter_by_a_customer_without_orders_is_empty(shop: Shop) -> None:
    body = expect_json(shop.get("/api/orders", params={"customer_id": UNKNOWN_ID}), 200)
    assert_list(body, assert_order)
    assert body["items"] == [] and body["total"] == 0


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "", "true", str(2**31)])
def test_bad_customer_id_filter_is_422(shop: Shop, value: str) -> None:
    r = shop.get("/api/orders", params={"customer_id": value})
    expect_error(r, 422, "validation_error")


# -- placing ----------------------------------------------------------------------


def test_place_order(shop: Shop) -> None:
    customer = shop.customer_id()
    a, b = shop.claim_skus(2)
    before = {sku: shop.item(sku) for sku in (a, b)}
    orders_before = shop.orders_total()

    order = expect_json(place(shop, customer, [(a, 2), (b, 1)]), 201)
    assert_order(order)
    assert order["id"] > SEEDED_ORDERS
    assert order["id"] in shop.target.new_ids, "ids come from the implementation's own range"
    assert order["customer_id"] == customer and order["status"] == "placed"
    assert_recent(order["placed_at"])
    # Lines come back in the order they were sent (the legacy keeps it; bytes must match).
    assert [line["sku"] for line in order["items"]] == [a, b]
    lines = lines_by_sku(order)
    assert lines[a]["qty"] == 2 and lines[b]["qty"] == 1
    # Each line's price is the item's price when the order was placed.
    for sku in (a, b):
        assert lines[sku]["price_cents"] == before[sku]["price_cents"]
    assert order["total_cents"] == 2 * before[a]["price_cents"] + before[b]["price_cents"]

    assert shop.order(order["id"]) == order
    assert shop.orders_total() == orders_before + 1
    for sku, qty in ((a, 2), (b, 1)):
        item = shop.item(sku)
        assert item["reserved"] == before[sku]["reserved"] + qty
        assert item["on_hand"] == before[sku]["on_hand"]
        assert {"sku": sku, "order_id": order["id"], "qty": qty} in shop.reservations(sku)


def test_new_orders_get_increasing_ids_and_are_listed_last(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    first = expect_json(place(shop, shop.customer_id(), [(sku, 1)]), 201)
    second = expect_json(place(shop, shop.customer_id(), [(sku, 1)]), 201)
    assert second["id"] > first["id"]
    total = shop.orders_total()
    tail = expect_json(shop.get("/api/orders", params={"offset": total - 2}), 200)
    assert tail["items"] == [first, second]


def test_line_prices_are_a_snapshot(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order = expect_json(place(shop, shop.customer_id(), [(sku, 3)]), 201)
    # Later stock changes (restock, other orders, a cancel) never touch a placed order's lines.
    expect_json(shop.post(f"/api/inventory/{sku}/restock", json={"qty": 5}), 200)
    other = expect_json(place(shop, shop.customer_id(), [(sku, 1)]), 201)
    cancel(shop, other["id"])
    assert shop.order(order["id"]) == order
    assert order["total_cents"] == 3 * order["items"][0]["price_cents"]


def test_ordering_all_that_is_available_succeeds(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    available = shop.item(sku)["available"]
    order = expect_json(place(shop, shop.customer_id(), [(sku, available)]), 201)
    assert shop.item(sku)["available"] == 0
    cancel(shop, order["id"])
    assert shop.item(sku)["available"] == available


@pytest.mark.parametrize("short_line", ["first", "last"])
def test_insufficient_stock_is_409_and_leaves_nothing_reserved(shop: Shop, short_line: str) -> None:
    a, b, c = shop.claim_skus(3)
    short = b if short_line == "last" else a
    before = snapshot(shop, [a, b, c])
    orders_before = shop.orders_total()
    wanted = {a: 1, b: 1, c: 2}
    wanted[short] = before[short][0]["available"] + 1
    lines = [(a, wanted[a]), (c, wanted[c]), (b, wanted[b])]

    expect_error(place(shop, shop.customer_id(), lines), 409, "insufficient_stock")
    assert snapshot(shop, [a, b, c]) == before
    assert shop.orders_total() == orders_before


def test_unknown_sku_is_422_and_leaves_nothing_reserved(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = snapshot(shop, [sku])
    orders_before = shop.orders_total()
    r = place(shop, shop.customer_id(), [(sku, 1), (UNKNOWN_SKU, 1)])
    expect_error(r, 422, "unknown_sku")
    assert snapshot(shop, [sku]) == before
    assert shop.orders_total() == orders_before


def test_unknown_customer_is_404(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = snapshot(shop, [sku])
    orders_before = shop.orders_total()
    expect_error(place(shop, UNKNOWN_ID, [(sku, 1)]), 404, "unknown_customer")
    assert snapshot(shop, [sku]) == before
    assert shop.orders_total() == orders_before


# The order of checks: body (422) -> customer (404) -> skus (422) -> stock (409).
def test_validation_comes_before_the_customer_check(shop: Shop) -> None:
    r = shop.post("/api/orders", json={"customer_id": UNKNOWN_ID, "items": []})
    expect_error(r, 422, "validation_error")


def test_customer_check_comes_before_the_sku_check(shop: Shop) -> None:
    expect_error(place(shop, UNKNOWN_ID, [(UNKNOWN_SKU, 1)]), 404, "unknown_customer")


def test_sku_check_comes_before_the_stock_check(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    too_many = shop.item(sku)["available"] + 1
    r = place(shop, shop.customer_id(), [(sku, too_many), (UNKNOWN_SKU, 1)])
    expect_error(r, 422, "unknown_sku")


def _line(**fields: Any) -> dict[str, Any]:
    return {"sku": VALIDATION_SKU, "qty": 1, **fields}


BAD_ORDERS: list[Any] = [
    {},
    {"items": [_line()]},
    {"customer_id": 1},
    {"customer_id": 1, "items": []},
    {"customer_id": 1, "items": None},
    {"customer_id": 1, "items": "SKU-0200"},
    {"customer_id": 1, "items": {"sku": VALIDATION_SKU, "qty": 1}},
    {"customer_id": 1, "items": [VALIDATION_SKU]},
    {"customer_id": 1, "items": [[VALIDATION_SKU, 1]]},
    {"customer_id": 1, "items": [{"qty": 1}]},
    {"customer_id": 1, "items": [{"sku": VALIDATION_SKU}]},
    {"customer_id": 1, "items": [_line(qty=0)]},
    {"customer_id": 1, "items": [_line(qty=-2)]},
    {"customer_id": 1, "items": [_line(qty=True)]},
    {"customer_id": 1, "items": [_line(qty=1.0)]},
    {"customer_id": 1, "items": [_line(qty=1.5)]},
    {"customer_id": 1, "items": [_line(qty="1")]},
    {"customer_id": 1, "items": [_line(qty=None)]},
    {"customer_id": 1, "items": [_line(sku="")]},
    {"customer_id": 1, "items": [_line(sku=200)]},
    {"customer_id": 1, "items": [_line(sku=None)]},
    {"customer_id": 1, "items": [_line(), _line(qty=2)]},
    {"customer_id": 1, "items": [_line(), _line()]},
    {"customer_id": 0, "items": [_line()]},
    {"customer_id": -1, "items": [_line()]},
    {"customer_id": True, "items": [_line()]},
    {"customer_id": 1.0, "items": [_line()]},
    {"customer_id": "1", "items": [_line()]},
    {"customer_id": None, "items": [_line()]},
    # Legacy reference: integers above 2**31 - 1 fit no database column, so they are 422.
    {"customer_id": 2**31, "items": [_line()]},
    {"customer_id": 1, "items": [_line(qty=2**31)]},
    [],
    [{"customer_id": 1, "items": [_line()]}],
    "order",
    1,
    None,
]


@pytest.mark.parametrize("body", BAD_ORDERS, ids=repr)
def test_invalid_order_is_422_and_changes_nothing(shop: Shop, body: Any) -> None:
    before = snapshot(shop, [VALIDATION_SKU])
    orders_before = shop.orders_total()
    expect_error(shop.post("/api/orders", json=body), 422, "validation_error")
    assert shop.orders_total() == orders_before
    assert snapshot(shop, [VALIDATION_SKU]) == before


@pytest.mark.parametrize(
    "raw", [b"{", b"", b'{"customer_id": 1, "items": [}', b"{'customer_id': 1}"], ids=repr
)
def test_malformed_json_is_422(shop: Shop, raw: bytes) -> None:
    orders_before = shop.orders_total()
    expect_error(shop.post_raw("/api/orders", raw), 422, "validation_error")
    assert shop.orders_total() == orders_before


# -- Idempotency-Key --------------------------------------------------------------


def test_idempotent_repeat_replays_the_first_answer_and_places_nothing(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    customer = shop.customer_id()
    key = new_key()
    first = expect_json(place(shop, customer, [(sku, 2)], key=key), 201)
    held = snapshot(shop, [sku])
    orders_after_first = shop.orders_total()

    again = place(shop, customer, [(sku, 2)], key=key)
    assert expect_json(again, 201) == first
    # "Same body" means equal JSON, not equal bytes.
    spaced = f'{{ "items": [ {{"qty": 2, "sku": "{sku}"}} ],\n "customer_id": {customer} }}'
    r = shop.post_raw("/api/orders", spaced, headers={"Idempotency-Key": key})
    assert expect_json(r, 201) == first
    assert shop.orders_total() == orders_after_first
    assert snapshot(shop, [sku]) == held


def test_same_key_other_body_is_422_idempotency_key_reused(shop: Shop) -> None:
    a, b = shop.claim_skus(2)
    customer = shop.customer_id()
    key = new_key()
    expect_json(place(shop, customer, [(a, 1)], key=key), 201)
    before = snapshot(shop, [a, b])
    orders_before = shop.orders_total()
    for lines in ([(a, 2)], [(b, 1)], [(a, 1), (b, 1)]):
        expect_error(place(shop, customer, lines, key=key), 422, "idempotency_key_reused")
    other_customer = customer % 50 + 1
    expect_error(place(shop, other_customer, [(a, 1)], key=key), 422, "idempotency_key_reused")
    assert shop.orders_total() == orders_before
    assert snapshot(shop, [a, b]) == before


def test_key_check_comes_before_validation(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    key = new_key()
    expect_json(place(shop, shop.customer_id(), [(sku, 1)], key=key), 201)
    r = shop.post(
        "/api/orders", json={"customer_id": 1, "items": []}, headers={"Idempotency-Key": key}
    )
    expect_error(r, 422, "idempotency_key_reused")


def test_refused_attempts_are_not_stored_under_the_key(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    customer = shop.customer_id()
    key = new_key()
    expect_error(place(shop, UNKNOWN_ID, [(sku, 1)], key=key), 404, "unknown_customer")
    too_many = shop.item(sku)["available"] + 1
    expect_error(place(shop, customer, [(sku, too_many)], key=key), 409, "insufficient_stock")
    # Only a 201 is stored, so the key is still free for another body.
    placed = expect_json(place(shop, customer, [(sku, 1)], key=key), 201)
    assert expect_json(place(shop, customer, [(sku, 1)], key=key), 201) == placed


def test_replay_after_cancel_is_still_the_first_answer(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    customer = shop.customer_id()
    key = new_key()
    first = expect_json(place(shop, customer, [(sku, 1)], key=key), 201)
    cancel(shop, first["id"])
    held = snapshot(shop, [sku])
    orders_before = shop.orders_total()
    assert expect_json(place(shop, customer, [(sku, 1)], key=key), 201) == first
    assert shop.orders_total() == orders_before
    assert snapshot(shop, [sku]) == held


def test_overlong_key_is_422(shop: Shop) -> None:
    # Legacy reference: keys are at most 255 characters.
    orders_before = shop.orders_total()
    r = place(shop, shop.customer_id(), [(VALIDATION_SKU, 1)], key="k" * 256)
    expect_error(r, 422, "validation_error")
    assert shop.orders_total() == orders_before


def test_different_keys_place_different_orders(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    customer = shop.customer_id()
    one = expect_json(place(shop, customer, [(sku, 1)], key=new_key()), 201)
    two = expect_json(place(shop, customer, [(sku, 1)], key=new_key()), 201)
    assert one["id"] != two["id"]


# -- cancel -----------------------------------------------------------------------


def test_cancel_releases_the_stock(shop: Shop) -> None:
    a, b = shop.claim_skus(2)
    before = {sku: shop.item(sku) for sku in (a, b)}
    order = expect_json(place(shop, shop.customer_id(), [(a, 3), (b, 1)]), 201)

    cancelled = cancel(shop, order["id"])
    assert cancelled == {**order, "status": "cancelled"}
    assert shop.order(order["id"]) == cancelled
    for sku in (a, b):
        assert shop.item(sku) == before[sku]
        assert all(r["order_id"] != order["id"] for r in shop.reservations(sku))


def test_cancelling_twice_changes_nothing(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order = expect_json(place(shop, shop.customer_id(), [(sku, 2)]), 201)
    cancelled = cancel(shop, order["id"])
    held = snapshot(shop, [sku])
    assert cancel(shop, order["id"]) == cancelled
    assert shop.order(order["id"]) == cancelled
    assert snapshot(shop, [sku]) == held


def test_cancelling_a_seeded_cancelled_order_changes_nothing(shop: Shop) -> None:
    page = expect_json(shop.get("/api/orders", params={"limit": 500}), 200)
    order = next(o for o in page["items"] if o["status"] == "cancelled")
    skus = [line["sku"] for line in order["items"]]
    before = snapshot(shop, skus)
    assert cancel(shop, order["id"]) == order
    assert snapshot(shop, skus) == before
