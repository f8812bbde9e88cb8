"""The contract under concurrent requests: no oversell, no double reservation, one order per key.

The assertions are about outcomes (counts, stock), never about timing, so they hold
however the requests interleave on a busy machine.
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.contract.helpers import Shop, describe, expect_error, expect_json

PARALLEL = 8


def in_parallel(count: int, send: Any) -> list[httpx.Response]:
    """Run `send(i)` for i in range(count) on `count` threads; answers in index order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def test_identical_reservations_at_once_reserve_once(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = shop.item(sku)
    order_id = shop.fake_order_id()
    body = {"order_id": order_id, "qty": 2}
    answers = in_parallel(
        PARALLEL,
        lambda _: shop.post(f"/api/inventory/{sku}/reservations", json=body),
    )
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 1, 200: PARALLEL - 1}, [describe(r) for r in answers]
    assert all(r.json() == {"sku": sku, **body} for r in answers)
    assert shop.item(sku)["reserved"] == before["reserved"] + 2
    shop.delete(f"/api/inventory/{sku}/reservations/{order_id}")
    assert shop.item(sku) == before


def test_competing_orders_never_oversell(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = shop.item(sku)
    qty = before["available"] // 3 + 1  # at most 2 of the orders can fit
    body = {"customer_id": shop.customer_id(), "items": [{"sku": sku, "qty": qty}]}
    answers = in_parallel(PARALLEL, lambda _: shop.post("/api/orders", json=body))
    placed = [expect_json(r, 201) for r in answers if r.status_code == 201]
    for r in answers:
        if r.status_code != 201:
            expect_error(r, 409, "insufficient_stock")
    assert 1 <= len(placed) <= 2, [describe(r) for r in answers]
    after = shop.item(sku)
    assert after["reserved"] == before["reserved"] + qty * len(placed)
    assert after["available"] >= 0
    for order in placed:
        shop.post(f"/api/orders/{order['id']}/cancel")
    assert shop.item(sku) == before


def test_same_idempotency_key_at_once_places_one_order(shop: Shop) -> None:
    (sku,) = shop.claim_skus(1)
    before = shop.item(sku)
    orders_before = shop.orders_total()
    key = f"contract-{uuid.uuid4()}"
    body = {"customer_id": shop.customer_id(), "items": [{"sku": sku, "qty": 1}]}
    answers = in_parallel(
        PARALLEL,
        lambda _: shop.post("/api/orders", json=body, headers={"Idempotency-Key": key}),
    )
    bodies = [expect_json(r, 201) for r in answers]
    assert all(b == bodies[0] for b in bodies), bodies
    assert shop.orders_total() == orders_before + 1
    assert shop.item(sku)["reserved"] == before["reserved"] + 1
