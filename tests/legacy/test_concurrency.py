"""Concurrent writers on SQLite and PostgreSQL: no oversell, no duplicate orders, no deadlock."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.legacy.helpers import add_items, body

THREADS = 8


def run_together(
    app: Flask, calls: list[Callable[[FlaskClient], TestResponse]]
) -> list[TestResponse]:
    """Run each call on its own thread and client, all released at once; bounded by a timeout."""
    barrier = threading.Barrier(len(calls), timeout=30)
    results: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        try:
            results[index] = calls[index](client)
        except Exception as exc:  # surfaced by the assertion below
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a writer hung (deadlock?)"
    assert all(isinstance(r, TestResponse) for r in results), results
    return results


def order(*lines: tuple[str, int], customer_id: int = 1) -> dict[str, object]:
    return {"customer_id": customer_id, "items": [{"sku": s, "qty": q} for s, q in lines]}


def test_last_units_are_never_oversold(app: Flask, shop: FlaskClient) -> None:
    add_items(app, ("SKU-LAST", 500, 5))
    responses = run_together(
        app,
        [lambda c: c.post("/api/orders", json=order(("SKU-LAST", 1)))] * THREADS,
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: THREADS - 5}, statuses
    for r in responses:
        if r.status_code == 409:
            assert body(r)["error"] == "insufficient_stock"
    item = body(shop.get("/api/inventory/SKU-LAST"))
    assert (item["reserved"], item["available"]) == (5, 0)
    ids = [body(r)["id"] for r in responses if r.status_code == 201]
    assert len(set(ids)) == 5


def test_multi_line_orders_in_both_orders_do_not_deadlock(app: Flask, shop: FlaskClient) -> None:
    add_items(app, ("SKU-X", 100, 3), ("SKU-Y", 100, 3))
    forward = lambda c: c.post("/api/orders", json=order(("SKU-X", 1), ("SKU-Y", 1)))  # noqa: E731
    backward = lambda c: c.post("/api/orders", json=order(("SKU-Y", 1), ("SKU-X", 1)))  # noqa: E731
    responses = run_together(app, [forward, backward] * (THREADS // 2))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 409: THREADS - 3}, statuses
    for sku in ("SKU-X", "SKU-Y"):
        assert body(shop.get(f"/api/inventory/{sku}"))["available"] == 0


def test_direct_reservations_never_oversell(app: Flask, shop: FlaskClient) -> None:
    add_items(app, ("SKU-R", 100, 4))
    calls = [
        (
            lambda c, oid=oid: c.post(
                "/api/inventory/SKU-R/reservations", json={"order_id": oid, "qty": 1}
            )
        )
        for oid in range(1, THREADS + 1)
    ]
    statuses = Counter(r.status_code for r in run_together(app, calls))
    assert statuses == {201: 4, 409: THREADS - 4}, statuses
    assert body(shop.get("/api/inventory/SKU-R"))["reserved"] == 4


def test_same_idempotency_key_places_one_order(app: Flask, shop: FlaskClient) -> None:
    call = lambda c: c.post(  # noqa: E731
        "/api/orders", json=order(("SKU-A", 1)), headers={"Idempotency-Key": "race"}
    )
    responses = run_together(app, [call] * THREADS)
    assert {r.status_code for r in responses} == {201}
    assert len({r.get_data() for r in responses}) == 1
    assert body(shop.get("/api/orders"))["total"] == 1
    assert body(shop.get("/api/inventory/SKU-A"))["reserved"] == 1


def test_concurrent_customers_get_distinct_ids(app: Flask, shop: FlaskClient) -> None:
    calls = [
        (
            lambda c, n=n: c.post(
                "/api/customers", json={"name": f"C{n}", "email": f"c{n}@example.com"}
            )
        )
        for n in range(THREADS)
    ]
    responses = run_together(app, calls)
    assert {r.status_code for r in responses} == {201}
    assert sorted(body(r)["id"] for r in responses) == list(range(2, 2 + THREADS))
