"""Inventory: items, reservations and restock (SPEC §3).

Every test that writes claims its own skus (`shop.claim_skus`) and uses fake
order ids (`shop.fake_order_id`), so tests never see each other's writes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import (
    FAKE_ORDER_BASE,
    SEEDED_SKUS,
    UNKNOWN_SKU,
    VALIDATION_SKU,
    Shop,
    assert_item,
    assert_list,
    assert_reservation,
    describe,
    expect_error,
    expect_json,
)


def reserve(shop: Shop, sku: str, order_id: int, qty: int) -> Any:
    return shop.post(f"/api/inventory/{sku}/reservations", json={"order_id": order_id, "qty": qty})


def release(shop: Shop, sku: str, order_id: int) -> None:
    r = shop.delete(f"/api/inventory/{sku}/reservations/{order_id}")
    assert r.status_code == 204, describe(r)
    assert r.content == b"", describe(r)


def test_seeded_item(shop: Shop) -> None:
    item = shop.item("SKU-0001")
    assert_item(item)
    assert item["sku"] == "SKU-0001"
    assert 199 <= item["price_cents"] <= 99999


def test_get_matches_the_list_entry(shop: Shop) -> None:
    listed = expect_json(shop.get("/api/inventory", params={"limit": 5, "offset": 100}), 200)
    assert [i["sku"] for i in listed["items"]] == SEEDED_SKUS[100:105]
    for item in listed["items"]:
        assert shop.item(item["sku"]) == item


def test_seeded_prices_are_in_range(shop: Shop) -> None:
    body = expect_json(shop.get("/api/inventory", params={"limit": 500}), 200)
    assert_list(body, assert_item)
    # Prices never change through the API, so the seeded range holds for every item.
    assert all(199 <= i["price_cents"] <= 99999 for i in body["items"])


def test_reserved_is_the_sum_of_the_reservations(shop: Shop) -> None:
    body = expect_json(shop.get("/api/inventory", params={"limit": 500}), 200)
    for item in body["items"]:
        reservations = shop.reservations(item["sku"])
        for res in reservations:
            assert_reservation(res)
            assert res["sku"] == item["sku"]
        assert sum(r["qty"] for r in reservations) == item["reserved"], item


def test_reserve_then_repeat_then_release(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order_id = shop.fake_order_id()
    before = shop.item(sku)

    created = expect_json(reserve(shop, sku, order_id, 3), 201)
    assert created == {"sku": sku, "order_id": order_id, "qty": 3}
    after = shop.item(sku)
    assert after["reserved"] == before["reserved"] + 3
    assert after["available"] == before["available"] - 3
    assert after["on_hand"] == before["on_hand"]
    assert created in shop.reservations(sku)

    # The same (sku, order_id, qty) again: 200, same body, no second reservation.
    again = expect_json(reserve(shop, sku, order_id, 3), 200)
    assert again == created
    assert shop.item(sku) == after
    assert [r for r in shop.reservations(sku) if r["order_id"] == order_id] == [created]

    release(shop, sku, order_id)
    assert shop.item(sku) == before
    assert all(r["order_id"] != order_id for r in shop.reservations(sku))
    # Releasing again, or what never existed, is still 204.
    release(shop, sku, order_id)
    release(shop, sku, shop.fake_order_id())
    assert shop.item(sku) == before


def test_same_pair_other_qty_is_409_reservation_conflict(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order_id = shop.fake_order_id()
    created = expect_json(reserve(shop, sku, order_id, 2), 201)
    held = shop.item(sku)
    expect_error(reserve(shop, sku, order_id, 5), 409, "reservation_conflict")
    expect_error(reserve(shop, sku, order_id, 1), 409, "reservation_conflict")
    assert shop.item(sku) == held
    assert [r for r in shop.reservations(sku) if r["order_id"] == order_id] == [created]
    release(shop, sku, order_id)


def test_reservation_can_be_made_again_after_release(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    order_id = shop.fake_order_id()
    expect_json(reserve(shop, sku, order_id, 2), 201)
    release(shop, sku, order_id)
    assert expect_json(reserve(shop, sku, order_id, 4), 201)["qty"] == 4
    release(shop, sku, order_id)


def test_insufficient_stock_is_409_and_reserves_nothing(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = shop.item(sku)
    order_id = shop.fake_order_id()
    r = reserve(shop, sku, order_id, before["available"] + 1)
    expect_error(r, 409, "insufficient_stock")
    assert shop.item(sku) == before
    assert all(r["order_id"] != order_id for r in shop.reservations(sku))


def test_reserving_exactly_what_is_available_succeeds(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = shop.item(sku)
    order_id = shop.fake_order_id()
    expect_json(reserve(shop, sku, order_id, before["available"]), 201)
    emptied = shop.item(sku)
    assert emptied["available"] == 0
    assert emptied["reserved"] == before["on_hand"]
    # Nothing left: even one more unit is refused.
    expect_error(reserve(shop, sku, shop.fake_order_id(), 1), 409, "insufficient_stock")
    release(shop, sku, order_id)
    assert shop.item(sku) == before


def test_reservations_are_listed_by_order_id(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    ids = [shop.fake_order_id() for _ in range(3)]
    for order_id in (ids[2], ids[0], ids[1]):
        expect_json(reserve(shop, sku, order_id, 1), 201)
    body = expect_json(shop.get(f"/api/inventory/{sku}/reservations"), 200)
    assert_list(body, assert_reservation)
    order_ids = [r["order_id"] for r in body["items"]]
    assert order_ids == sorted(order_ids)
    assert [r for r in body["items"] if r["order_id"] >= FAKE_ORDER_BASE] == [
        {"sku": sku, "order_id": order_id, "qty": 1} for order_id in ids
    ]
    for order_id in ids:
        release(shop, sku, order_id)


def test_reservations_are_per_sku(shop: Shop) -> None:
    first, second = shop.claim_skus(2)
    order_id = shop.fake_order_id()
    expect_json(reserve(shop, first, order_id, 1), 201)
    untouched = shop.item(second)
    # The same order id on another sku is another reservation, not a conflict.
    expect_json(reserve(shop, second, order_id, 2), 201)
    assert shop.item(second)["reserved"] == untouched["reserved"] + 2
    release(shop, first, order_id)
    assert shop.item(second)["reserved"] == untouched["reserved"] + 2
    release(shop, second, order_id)
    assert shop.item(second) == untouched


def test_restock_adds_to_on_hand(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = shop.item(sku)
    r = shop.post(f"/api/inventory/{sku}/restock", json={"qty": 25})
    item = expect_json(r, 200)
    assert_item(item)
    assert item == {
        **before,
        "on_hand": before["on_hand"] + 25,
        "available": before["available"] + 25,
    }
    assert shop.item(sku) == item


def test_restock_makes_a_refused_reservation_possible(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    want = shop.item(sku)["available"] + 10
    order_id = shop.fake_order_id()
    expect_error(reserve(shop, sku, order_id, want), 409, "insufficient_stock")
    expect_json(shop.post(f"/api/inventory/{sku}/restock", json={"qty": 10}), 200)
    expect_json(reserve(shop, sku, order_id, want), 201)
    assert shop.item(sku)["available"] == 0
    release(shop, sku, order_id)


BAD_RESERVATIONS: list[Any] = [
    {},
    {"qty": 1},
    {"order_id": 1},
    {"order_id": 0, "qty": 1},
    {"order_id": -5, "qty": 1},
    {"order_id": True, "qty": 1},
    {"order_id": 1.0, "qty": 1},
    {"order_id": "1", "qty": 1},
    {"order_id": None, "qty": 1},
    {"order_id": 1, "qty": 0},
    {"order_id": 1, "qty": -1},
    {"order_id": 1, "qty": True},
    {"order_id": 1, "qty": 1.0},
    {"order_id": 1, "qty": 1.5},
    {"order_id": 1, "qty": "2"},
    {"order_id": 1, "qty": None},
    # Legacy reference: integers above 2**31 - 1 fit no database column, so they are 422.
    {"order_id": 2**31, "qty": 1},
    {"order_id": 1, "qty": 2**31},
    [],
    [{"order_id": 1, "qty": 1}],
    "order",
    7,
    None,
]


@pytest.mark.parametrize("body", BAD_RESERVATIONS, ids=repr)
def test_invalid_reservation_is_422(shop: Shop, body: Any) -> None:
    sku = VALIDATION_SKU
    before = shop.item(sku)
    if isinstance(body, dict) and type(body.get("order_id")) is int and body["order_id"] == 1:
        # A valid order id of our own, so only the field under test is wrong.
        body = {**body, "order_id": shop.fake_order_id()}
    r = shop.post(f"/api/inventory/{sku}/reservations", json=body)
    expect_error(r, 422, "validation_error")
    assert shop.item(sku) == before


@pytest.mark.parametrize("raw", [b"{", b"", b'{"order_id": 1, "qty": }'], ids=repr)
def test_malformed_reservation_json_is_422(shop: Shop, raw: bytes) -> None:
    sku = VALIDATION_SKU
    before = shop.item(sku)
    expect_error(shop.post_raw(f"/api/inventory/{sku}/reservations", raw), 422, "validation_error")
    assert shop.item(sku) == before


BAD_RESTOCKS: list[Any] = [
    {},
    {"qty": 0},
    {"qty": -3},
    {"qty": True},
    {"qty": 2.0},
    {"qty": "2"},
    {"qty": None},
    {"qty": 2**31},
    [],
    "qty",
    None,
]


@pytest.mark.parametrize("body", BAD_RESTOCKS, ids=repr)
def test_invalid_restock_is_422(shop: Shop, body: Any) -> None:
    sku = VALIDATION_SKU
    before = shop.item(sku)
    r = shop.post(f"/api/inventory/{sku}/restock", json=body)
    expect_error(r, 422, "validation_error")
    assert shop.item(sku) == before


def test_malformed_restock_json_is_422(shop: Shop) -> None:
    sku = VALIDATION_SKU
    before = shop.item(sku)
    expect_error(
        shop.post_raw(f"/api/inventory/{sku}/restock", b"{qty: 1}"), 422, "validation_error"
    )
    assert shop.item(sku) == before


def test_unknown_sku_is_404_before_the_body_is_looked_at(shop: Shop) -> None:
    # Legacy reference: the sku in the path is checked first.
    r = shop.post(f"/api/inventory/{UNKNOWN_SKU}/reservations", json={"qty": 0})
    expect_error(r, 404, "not_found")
    expect_error(shop.post(f"/api/inventory/{UNKNOWN_SKU}/restock", json=[]), 404, "not_found")
