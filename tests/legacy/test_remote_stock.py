"""The legacy with the inventory service as stock authority (SPEC §3 "One stock authority").

The authority alone decides availability; the legacy's own tables are a read copy that learns
its own writes at once (read-your-writes with a version floor). Faults: an unreachable
authority is 503 with nothing changed; a request that fails or crashes mid-saga leaves nothing
reserved once reconciliation ran; one Idempotency-Key places one order, also concurrently.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from extracted.events import inventory_changed
from legacy_monolith.api import STOCK_EXTENSION
from legacy_monolith.app import create_app
from legacy_monolith.consumer import APPLIED, STALE, apply_event
from legacy_monolith.db import (
    CancelRequest,
    Item,
    Order,
    PendingOrder,
    Reservation,
    StockOp,
    outbox,
    utcnow,
)
from legacy_monolith.shop import reconcile
from legacy_monolith.stock import RemoteStock
from tests.legacy.authority import StockModel
from tests.legacy.helpers import add_customer, add_items, body, db_of

ORDER = {"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 2}, {"sku": "SKU-B", "qty": 1}]}


@dataclass
class Remote:
    app: Flask
    client: FlaskClient
    model: StockModel
    stock: RemoteStock

    def copy(self, sku: str) -> dict[int, int]:
        with db_of(self.app).read() as s:
            rows = s.scalars(select(Reservation).where(Reservation.sku == sku))
            return {r.order_id: r.qty for r in rows}

    def events(self) -> list[dict]:
        with db_of(self.app).engine.connect() as conn:
            rows = conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
            return [orjson.loads(r.payload) for r in rows]

    def pending(self) -> int:
        """Pending orders not yet fully released (released ones stay, holding their id)."""
        with db_of(self.app).read() as s:
            query = select(func.count()).where(PendingOrder.state != "released")
            return int(s.scalar(query) or 0)

    def count(self, model: type) -> int:
        with db_of(self.app).read() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def remote(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Remote]:
    monkeypatch.setenv("STOCK_AUTHORITY", "inventory")
    app = create_app(database_url)
    app.config["TESTING"] = True
    add_customer(app, 1, "ada@example.com", "Ada Lovelace")
    add_items(app, ("SKU-A", 250, 10), ("SKU-B", 100, 5), ("SKU-C", 999, 0))
    model = StockModel(on_hand={"SKU-A": 10, "SKU-B": 5, "SKU-C": 0})
    stock = RemoteStock(
        "http://inventory.test", transport=model.transport(), failures=100, reset_after=0.1
    )
    app.extensions[STOCK_EXTENSION] = stock
    try:
        yield Remote(app, app.test_client(), model, stock)
    finally:
        stock.close()
        db_of(app).dispose()


def test_an_order_is_reserved_at_the_authority_and_shows_in_the_read_copy(remote: Remote) -> None:
    response = remote.client.post("/api/orders", json=ORDER)
    assert response.status_code == 201, response.get_data()
    order = body(response)
    assert remote.model.held("SKU-A") == {order["id"]: 2}
    assert remote.model.held("SKU-B") == {order["id"]: 1}
    # read-your-writes: the legacy's own API shows the reservation at once
    assert remote.copy("SKU-A") == {order["id"]: 2}
    item = body(remote.client.get("/api/inventory/SKU-A"))
    assert (item["reserved"], item["available"]) == (2, 8)
    assert remote.pending() == 0
    # the change stream: exactly one order.placed of the legacy, and no stock event (not ours)
    events = remote.events()
    assert [(e["type"], e["origin"], e["aggregate"]) for e in events] == [
        ("order.placed", "legacy", f"order:{order['id']}")
    ]
    assert events[0]["data"]["order"] == order


def test_the_authority_refuses_and_nothing_stays_reserved(remote: Remote) -> None:
    remote.model.on_hand["SKU-B"] = 0
    response = remote.client.post("/api/orders", json=ORDER)
    assert response.status_code == 409
    assert body(response) == {
        "error": "insufficient_stock",
        "detail": "insufficient stock for SKU-B",
    }
    assert remote.model.held("SKU-A") == {} and remote.model.held("SKU-B") == {}
    assert remote.count(Order) == 0 and remote.pending() == 0
    assert remote.events() == []


def test_an_unreachable_authority_is_503_and_changes_nothing(remote: Remote) -> None:
    remote.model.down = True
    for path, payload in [
        ("/api/orders", ORDER),
        ("/api/inventory/SKU-A/reservations", {"order_id": 5, "qty": 1}),
        ("/api/inventory/SKU-A/restock", {"qty": 3}),
    ]:
        response = remote.client.post(path, json=payload)
        assert response.status_code == 503, path
        assert body(response) == {
            "error": "dependency_unavailable",
            "detail": "inventory unavailable",
        }
    assert remote.client.delete("/api/inventory/SKU-A/reservations/5").status_code == 503
    assert remote.count(Order) == 0 and remote.events() == []
    assert body(remote.client.get("/api/inventory/SKU-A"))["on_hand"] == 10


def test_a_saga_cut_short_is_released_by_reconciliation(remote: Remote) -> None:
    # the authority answers the first reservation, then vanishes: the second line fails, and so
    # does the release of the first, so the pending order stays for reconciliation
    remote.model.fail_after = 1
    response = remote.client.post("/api/orders", json=ORDER)
    assert response.status_code == 503
    assert remote.pending() == 1 and remote.count(Order) == 0
    held = remote.model.held("SKU-A")
    assert len(held) == 1
    remote.model.down, remote.model.fail_after = False, None
    assert reconcile(db_of(remote.app), remote.stock, grace=dt.timedelta(seconds=-2)) == 1
    assert remote.model.held("SKU-A") == {} and remote.pending() == 0


def test_a_crash_between_reserve_and_commit_is_reconciled_after_the_grace(remote: Remote) -> None:
    # what a SIGKILL after the reservations leaves: a pending row and reservations at the authority
    with db_of(remote.app).write() as s:
        s.add(
            PendingOrder(
                order_id=77,
                payload=orjson.dumps(
                    {"customer_id": 1, "lines": [{"sku": "SKU-A", "qty": 3}], "key": None}
                ).decode(),
                state="pending",
                created_at=utcnow() - dt.timedelta(minutes=5),
            )
        )
    remote.model.reservations["SKU-A"] = {77: 3}
    db = db_of(remote.app)
    assert reconcile(db, remote.stock, grace=dt.timedelta(hours=1)) == 0  # still in its grace
    assert reconcile(db, remote.stock, grace=dt.timedelta(seconds=30)) == 1
    assert remote.model.held("SKU-A") == {}
    # a new order never reuses the id of an order that was pending
    order = body(remote.client.post("/api/orders", json=ORDER))
    assert order["id"] > 77


def test_cancel_releases_at_the_authority_and_is_published(remote: Remote) -> None:
    order = body(remote.client.post("/api/orders", json=ORDER))
    cancelled = body(remote.client.post(f"/api/orders/{order['id']}/cancel"))
    assert cancelled["status"] == "cancelled"
    assert remote.model.held("SKU-A") == {} and remote.model.held("SKU-B") == {}
    assert remote.copy("SKU-A") == {} and remote.copy("SKU-B") == {}
    assert [e["type"] for e in remote.events()] == ["order.placed", "order.cancelled"]
    assert remote.events()[1]["aggregate_version"] == 2


def test_cancel_fails_fast_when_the_authority_is_away_before_any_release(remote: Remote) -> None:
    order = body(remote.client.post("/api/orders", json=ORDER))
    remote.model.down = True
    assert remote.client.post(f"/api/orders/{order['id']}/cancel").status_code == 503
    assert body(remote.client.get(f"/api/orders/{order['id']}"))["status"] == "placed"
    assert remote.model.held("SKU-A") == {order["id"]: 2}
    assert remote.count(CancelRequest) == 0  # certainly nothing happened: nothing to finish


def test_a_cancel_whose_release_answer_is_lost_is_finished_by_reconciliation(
    remote: Remote,
) -> None:
    # The authority releases, the answer never arrives: the order must not stay placed without
    # its stock (I2). The intent was recorded first; reconciliation completes the cancel.
    order = body(remote.client.post("/api/orders", json=ORDER))
    remote.model.lose_answers = True
    assert remote.client.post(f"/api/orders/{order['id']}/cancel").status_code == 503
    assert remote.model.held("SKU-A") == {}  # it did happen there
    assert remote.count(CancelRequest) == 1
    remote.model.lose_answers = False
    assert reconcile(db_of(remote.app), remote.stock, grace=dt.timedelta(seconds=-2)) == 1
    assert body(remote.client.get(f"/api/orders/{order['id']}"))["status"] == "cancelled"
    assert remote.model.held("SKU-A") == {} and remote.model.held("SKU-B") == {}
    assert remote.copy("SKU-A") == {} and remote.copy("SKU-B") == {}
    assert remote.count(CancelRequest) == 0
    assert [e["type"] for e in remote.events()] == ["order.placed", "order.cancelled"]


def test_cancel_cut_short_finishes_its_releases_through_reconciliation(remote: Remote) -> None:
    order = body(remote.client.post("/api/orders", json=ORDER))
    remote.model.fail_after = 1  # the first line is released, then the authority goes away
    cancelled = body(remote.client.post(f"/api/orders/{order['id']}/cancel"))
    assert cancelled["status"] == "cancelled"
    assert remote.model.held("SKU-A") == {} and remote.model.held("SKU-B") == {order["id"]: 1}
    assert remote.count(StockOp) == 1
    remote.model.down, remote.model.fail_after = False, None
    assert reconcile(db_of(remote.app), remote.stock, grace=dt.timedelta(seconds=30)) == 1
    assert remote.model.held("SKU-B") == {} and remote.count(StockOp) == 0
    assert remote.copy("SKU-B") == {}


def test_restock_and_reservations_go_to_the_authority(remote: Remote) -> None:
    response = remote.client.post("/api/inventory/SKU-A/restock", json={"qty": 5})
    assert response.status_code == 200 and body(response)["on_hand"] == 15
    assert response.headers["X-Stock-Version"] == "1"
    assert remote.model.on_hand["SKU-A"] == 15
    assert body(remote.client.get("/api/inventory/SKU-A"))["on_hand"] == 15
    made = remote.client.post("/api/inventory/SKU-A/reservations", json={"order_id": 9, "qty": 15})
    assert made.status_code == 201
    refused = remote.client.post(
        "/api/inventory/SKU-A/reservations", json={"order_id": 8, "qty": 1}
    )
    assert refused.status_code == 409 and body(refused)["error"] == "insufficient_stock"
    assert remote.client.delete("/api/inventory/SKU-A/reservations/9").status_code == 204
    assert remote.copy("SKU-A") == {} and remote.model.held("SKU-A") == {}


def test_events_older_than_the_legacys_own_write_are_ignored(remote: Remote) -> None:
    db = db_of(remote.app)
    order = body(remote.client.post("/api/orders", json=ORDER))
    version = remote.model.versions["SKU-A"]  # the write above made this version
    assert version == 1

    def stock_event(v: int, held: dict[int, int]) -> object:
        item = {"sku": "SKU-A", "name": "Item SKU-A", "price_cents": 250, "on_hand": 10}
        reserved = sum(held.values())
        item |= {"reserved": reserved, "available": 10 - reserved}
        res = [{"sku": "SKU-A", "order_id": o, "qty": q} for o, q in sorted(held.items())]
        return inventory_changed(item, res, "inventory", v)

    # an event of the authority's that predates the legacy's write must not erase it...
    assert remote.copy("SKU-A") == {order["id"]: 2}
    with db.write() as s:
        s.get(Item, "SKU-A").floor_version = 2  # as if a later own write answered version 2
    assert apply_event(db, stock_event(1, {}), "inventory") == STALE
    assert remote.copy("SKU-A") == {order["id"]: 2}
    # ...while the authority's record at or after the floor replaces the copy whole
    assert apply_event(db, stock_event(2, {order["id"]: 2, 5: 1}), "inventory") == APPLIED
    assert remote.copy("SKU-A") == {order["id"]: 2, 5: 1}


def test_one_idempotency_key_places_one_order_even_concurrently(remote: Remote) -> None:
    results: list[tuple[int, bytes]] = []

    def place() -> None:
        client = remote.app.test_client()
        r = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "same"})
        results.append((r.status_code, r.get_data()))

    threads = [threading.Thread(target=place) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 6
    assert {status for status, _ in results} == {201}
    assert len({orjson.loads(b)["id"] for _, b in results}) == 1
    assert remote.count(Order) == 1
    assert len(remote.model.held("SKU-A")) == 1
    placed = [e for e in remote.events() if e["type"] == "order.placed"]
    assert len(placed) == 1 and placed[0]["idempotency_key"] == "same"
    assert placed[0]["data"]["idempotency"]["request"] == ORDER
    other = remote.client.post(
        "/api/orders", json={**ORDER, "customer_id": 2}, headers={"Idempotency-Key": "same"}
    )
    assert other.status_code == 422


def test_concurrent_sagas_never_share_an_order_id(remote: Remote) -> None:
    # Regression: with the id allocation reading orders and pending_orders in two statements,
    # PostgreSQL's READ COMMITTED could see a saga's id in neither table while it moved from
    # one to the other, and hand it out twice (a 500 on orders_pkey under mixed traffic).
    remote.model.on_hand |= {"SKU-A": 10_000, "SKU-B": 10_000}
    statuses: list[int] = []
    ids: list[int] = []
    lock = threading.Lock()

    def place(n: int) -> None:
        client = remote.app.test_client()
        for _ in range(n):
            r = client.post("/api/orders", json=ORDER)
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 201:
                    ids.append(r.get_json()["id"])

    threads = [threading.Thread(target=place, args=(6,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses.count(201) == 48, statuses
    assert len(set(ids)) == 48
    assert remote.count(Order) == 48
