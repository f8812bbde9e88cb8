"""End to end with real processes: legacy + inventory + orders on free loopback ports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.events import RedisStreamBus, SqliteLogBus
from tests.extracted.orders.stack import Stack, eventually, reservations, stack
from tests.support import procs


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("orders-e2e")) as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20.0) as c:
        yield c


def _place(client: httpx.Client, base: str, sku: str, qty: int = 1, **kw: object) -> httpx.Response:
    body = {"customer_id": 1, "items": [{"sku": sku, "qty": qty}]}
    return client.post(f"{base}/api/orders", json=body, **kw)  # type: ignore[arg-type]


def _held(client: httpx.Client, shop: Stack, sku: str, order_id: int) -> list[dict]:
    return [r for r in reservations(client, shop.inventory_url, sku) if r["order_id"] == order_id]


def test_place_and_cancel_reserve_and_release_in_inventory(
    shop: Stack, client: httpx.Client
) -> None:
    r = client.post(
        f"{shop.orders_url}/api/orders",
        json={
            "customer_id": 2,
            "items": [{"sku": "SKU-0101", "qty": 2}, {"sku": "SKU-0102", "qty": 1}],
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["id"] >= NEW_SERVICES_ID_FLOOR and order["status"] == "placed"
    price = client.get(f"{shop.inventory_url}/api/inventory/SKU-0101").json()["price_cents"]
    assert order["items"][0] == {"sku": "SKU-0101", "qty": 2, "price_cents": price}
    assert _held(client, shop, "SKU-0101", order["id"]) == [
        {"sku": "SKU-0101", "order_id": order["id"], "qty": 2}
    ]
    assert client.get(f"{shop.orders_url}/api/orders/{order['id']}").json() == order
    cancelled = client.post(f"{shop.orders_url}/api/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert _held(client, shop, "SKU-0101", order["id"]) == []
    assert _held(client, shop, "SKU-0102", order["id"]) == []


def test_legacy_copied_orders_answer_like_the_legacy(shop: Stack, client: httpx.Client) -> None:
    for path in ("/api/orders/1", "/api/orders/abc", "/api/orders?customer_id=7&limit=3"):
        ours = client.get(f"{shop.orders_url}{path}")
        theirs = client.get(f"{shop.legacy_url}{path}")
        assert ours.status_code == theirs.status_code
        a, b = ours.json(), theirs.json()
        if isinstance(a, dict):
            a.pop("generated_at", None)
            b.pop("generated_at", None)
        assert a == b


def test_insufficient_stock_leaves_nothing_reserved(shop: Stack, client: httpx.Client) -> None:
    available = client.get(f"{shop.inventory_url}/api/inventory/SKU-0104").json()["available"]
    r = client.post(
        f"{shop.orders_url}/api/orders",
        json={
            "customer_id": 1,
            "items": [{"sku": "SKU-0103", "qty": 1}, {"sku": "SKU-0104", "qty": available + 1}],
        },
    )
    assert r.status_code == 409 and r.json() == {
        "error": "insufficient_stock",
        "detail": "insufficient stock for SKU-0104",
    }
    assert all(
        x["order_id"] < NEW_SERVICES_ID_FLOOR
        for x in reservations(client, shop.inventory_url, "SKU-0103")
    )


def test_idempotency_key_places_one_order(shop: Stack, client: httpx.Client) -> None:
    before = client.get(f"{shop.orders_url}/api/orders", params={"limit": 1}).json()["total"]
    headers = {"Idempotency-Key": "e2e-key-1"}
    first = _place(client, shop.orders_url, "SKU-0105", headers=headers)
    second = _place(client, shop.orders_url, "SKU-0105", headers=headers)
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    after = client.get(f"{shop.orders_url}/api/orders", params={"limit": 1}).json()["total"]
    assert after == before + 1
    assert (
        len(
            [
                x
                for x in reservations(client, shop.inventory_url, "SKU-0105")
                if x["order_id"] >= NEW_SERVICES_ID_FLOOR
            ]
        )
        == 1
    )
    other = client.post(
        f"{shop.orders_url}/api/orders",
        headers=headers,
        json={"customer_id": 2, "items": [{"sku": "SKU-0105", "qty": 1}]},
    )
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"


def test_events_are_relayed_to_the_sqlite_log(shop: Stack, client: httpx.Client) -> None:
    order = _place(client, shop.orders_url, "SKU-0106").json()
    client.post(f"{shop.orders_url}/api/orders/{order['id']}/cancel")
    bus = SqliteLogBus(str(shop.workdir / "events.db"))

    async def collect() -> list[tuple[str, dict]]:
        seen: list[tuple[str, dict]] = []
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline and len(seen) < 2:
                for d in await bus.read("e2e-test", "c1", count=100, block_ms=200):
                    if d.event.data.get("order", {}).get("id") == order["id"]:
                        seen.append((d.event.type, d.event.data["order"]))
                    await bus.ack("e2e-test", [d.id])
        finally:
            await bus.close()
        return seen

    seen = asyncio.run(collect())
    assert [t for t, _ in seen] == ["order.placed", "order.cancelled"]
    assert seen[0][1] == order and seen[1][1]["status"] == "cancelled"


@pytest.mark.redis
def test_events_are_relayed_to_redis(
    shop: Stack, client: httpx.Client, redis_url: str, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}-shop.events"
    # Its own database: the main server's relay must not publish this outbox to the SQLite log.
    own_db = f"sqlite:///{shop.workdir / 'orders-redis.db'}"
    bus = RedisStreamBus(redis_url, stream)

    async def collect() -> list[dict]:
        found: list[dict] = []
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline and not found:
                for d in await bus.read("e2e", "c1", count=100, block_ms=200):
                    if d.event.type == "order.placed":
                        found.append(d.event.data["order"])
                    await bus.ack("e2e", [d.id])
        finally:
            import redis.asyncio as aioredis

            r = aioredis.from_url(redis_url)
            await r.delete(stream)
            await r.aclose()
            await bus.close()
        return found

    with shop.orders(
        "orders-redis", REDIS_URL=redis_url, EVENTS_STREAM=stream, ORDERS_DATABASE_URL=own_db
    ) as (base, _):
        order = _place(client, base, "SKU-0107").json()
        assert order in asyncio.run(collect())


def test_crash_after_reserve_is_reconciled_on_restart(shop: Stack, client: httpx.Client) -> None:
    sku = "SKU-0108"
    with shop.orders("orders-crash", ORDERS_CRASH_AFTER_RESERVE="1") as (base, proc):
        with pytest.raises(httpx.HTTPError):  # the process dies mid-request
            _place(client, base, sku)
        proc.popen.wait(10)
        assert proc.popen.returncode == 1
    held = [
        x
        for x in reservations(client, shop.inventory_url, sku)
        if x["order_id"] >= NEW_SERVICES_ID_FLOOR
    ]
    assert len(held) == 1, "the crash left the reservation behind"
    order_id = held[0]["order_id"]
    assert client.get(f"{shop.orders_url}/api/orders/{order_id}").status_code == 404  # pending
    with shop.orders(
        "orders-restarted", ORDERS_PENDING_GRACE="0.5", ORDERS_RECONCILE_INTERVAL="0.5"
    ):
        eventually(lambda: _held(client, shop, sku, order_id) == [], what="reservation released")
    assert client.get(f"{shop.orders_url}/api/orders/{order_id}").status_code == 404


def test_dead_inventory_is_503_in_bounded_time(
    shop: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{procs.free_port()}"
    with shop.orders("orders-dead-inventory", INVENTORY_URL=dead, ORDERS_BREAKER_FAILURES="2") as (
        base,
        _,
    ):
        for _ in range(4):
            started = time.monotonic()
            r = _place(client, base, "SKU-0109")
            assert r.status_code == 503, r.text
            assert r.json() == {
                "error": "dependency_unavailable",
                "detail": "inventory unavailable",
            }
            assert time.monotonic() - started < 5.0
