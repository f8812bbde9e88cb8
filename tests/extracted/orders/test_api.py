"""The aiohttp API in-process, with fakes behind it: statuses, exact JSON bytes, routing errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestServer

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.orders.domain.model import Order, OrderLine, OrderStatus, Origin
from extracted.orders.entrypoints.api import Deps, create_app
from tests.extracted.orders.fakes import FakeCustomers, FakeDatabase, FakeInventory, FakeItem


class World:
    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.inventory = FakeInventory({"A": FakeItem(150, 5), "B": FakeItem(20, 3)})
        self.customers = FakeCustomers([1, 2])
        self.up = True

    async def healthy(self) -> bool:
        return self.up


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    deps = Deps(
        uow=world.db.uow,
        inventory=world.inventory,
        customers=world.customers,
        healthy=world.healthy,
    )
    server = TestServer(create_app(deps), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=10) as c:
            yield c
    finally:
        await server.close()


BODY = {"customer_id": 1, "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}


async def test_place_answers_201_with_the_contract_bytes(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/orders", json=BODY)
    assert r.status_code == 201 and r.headers["content-type"] == "application/json"
    placed_at = r.json()["placed_at"]
    assert r.content == (
        b'{"id":1000000000,"customer_id":1,"status":"placed","items":[{"sku":"A","qty":2,'
        b'"price_cents":150},{"sku":"B","qty":1,"price_cents":20}],"total_cents":320,'
        b'"placed_at":"' + placed_at.encode() + b'"}'
    )
    got = await client.get(f"/api/orders/{NEW_SERVICES_ID_FLOOR}")
    assert got.status_code == 200 and got.content == r.content


@pytest.mark.parametrize(
    "body,status,error,detail",
    [
        (b"nope", 422, "validation_error", "request body is not valid JSON"),
        ({"customer_id": 1, "items": []}, 422, "validation_error", "items: must not be empty"),
        (
            {"customer_id": 9, "items": [{"sku": "A", "qty": 1}]},
            404,
            "unknown_customer",
            "customer 9 does not exist",
        ),
        (
            {"customer_id": 1, "items": [{"sku": "Z", "qty": 1}]},
            422,
            "unknown_sku",
            "sku Z does not exist",
        ),
        (
            {"customer_id": 1, "items": [{"sku": "A", "qty": 6}]},
            409,
            "insufficient_stock",
            "insufficient stock for A",
        ),
    ],
)
async def test_place_errors(
    client: httpx.AsyncClient, world: World, body: object, status: int, error: str, detail: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    r = await client.post("/api/orders", content=content)
    assert r.status_code == status
    assert r.content == orjson.dumps({"error": error, "detail": detail})
    assert world.inventory.reservations == {}


async def test_dependency_down_is_503(client: httpx.AsyncClient, world: World) -> None:
    world.inventory.down = True
    r = await client.post("/api/orders", json=BODY)
    assert r.status_code == 503
    assert r.json() == {"error": "dependency_unavailable", "detail": "inventory unavailable"}


async def test_idempotency_key(client: httpx.AsyncClient, world: World) -> None:
    headers = {"Idempotency-Key": "abc"}
    first = await client.post("/api/orders", json=BODY, headers=headers)
    again = await client.post(
        "/api/orders",
        content=b'{"items":[{"qty":2,"sku":"A"},{"sku":"B","qty":1}],"customer_id":1}',
        headers=headers,
    )
    assert first.status_code == again.status_code == 201 and again.content == first.content
    assert len(world.inventory.reservations) == 2
    other = await client.post("/api/orders", json={**BODY, "customer_id": 2}, headers=headers)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    garbage = await client.post("/api/orders", content=b"{", headers=headers)
    assert garbage.json()["error"] == "idempotency_key_reused"
    too_long = await client.post("/api/orders", json=BODY, headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 422
    # A failed answer is not stored: the same key may then succeed.
    bad = await client.post(
        "/api/orders", json={"customer_id": 1, "items": []}, headers={"Idempotency-Key": "new"}
    )
    assert bad.status_code == 422
    ok = await client.post("/api/orders", json=BODY, headers={"Idempotency-Key": "new"})
    assert ok.status_code == 201 and ok.json()["id"] == NEW_SERVICES_ID_FLOOR + 1


async def test_list_get_cancel_and_hidden_pending_orders(
    client: httpx.AsyncClient, world: World
) -> None:
    with world.db.uow() as uow:
        uow.orders.add(
            Order(
                5,
                2,
                OrderStatus.PLACED,
                (OrderLine("A", 1, 150),),
                "2026-01-01T00:00:00Z",
                Origin.LEGACY,
            )
        )
        uow.orders.add(
            Order(
                NEW_SERVICES_ID_FLOOR,
                1,
                OrderStatus.PENDING,
                (OrderLine("A", 1, 150),),
                "2026-01-01T00:00:00Z",
            )
        )
        uow.commit()
    listed = (await client.get("/api/orders")).json()
    assert [o["id"] for o in listed["items"]] == [5] and listed["total"] == 1
    assert list(listed) == ["items", "total", "generated_at"]
    assert (await client.get(f"/api/orders/{NEW_SERVICES_ID_FLOOR}")).status_code == 404
    assert (await client.get("/api/orders", params={"customer_id": 1})).json()["total"] == 0
    cancelled = await client.post("/api/orders/5/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.post("/api/orders/5/cancel")
    assert again.content == cancelled.content


@pytest.mark.parametrize(
    "method,path,status,body",
    [
        ("GET", "/api/orders/abc", 404, {"error": "not_found", "detail": "order abc not found"}),
        ("GET", "/api/orders/0", 404, {"error": "not_found", "detail": "order 0 not found"}),
        ("GET", "/api/orders/77", 404, {"error": "not_found", "detail": "order 77 not found"}),
        (
            "POST",
            "/api/orders/77/cancel",
            404,
            {"error": "not_found", "detail": "order 77 not found"},
        ),
        ("GET", "/api/orders/1/nope", 404, {"error": "not_found", "detail": "no such resource"}),
        (
            "PATCH",
            "/api/orders/1",
            405,
            {"error": "method_not_allowed", "detail": "method PATCH not allowed"},
        ),
        (
            "DELETE",
            "/api/orders",
            405,
            {"error": "method_not_allowed", "detail": "method DELETE not allowed"},
        ),
        (
            "GET",
            "/api/orders/1/cancel",
            405,
            {"error": "method_not_allowed", "detail": "method GET not allowed"},
        ),
        (
            "GET",
            "/api/orders?limit=0",
            422,
            {"error": "validation_error", "detail": "limit: must be an integer between 1 and 500"},
        ),
        (
            "GET",
            "/api/orders?customer_id=x",
            422,
            {"error": "validation_error", "detail": "customer_id: must be an integer"},
        ),
    ],
)
async def test_routing_and_query_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int, body: dict
) -> None:
    r = await client.request(method, path)
    assert r.status_code == status and r.content == orjson.dumps(body)


async def test_head_and_healthz(client: httpx.AsyncClient, world: World) -> None:
    head = await client.head("/api/orders")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert (await client.get("/healthz")).content == b'{"status":"ok"}'
    world.up = False
    down = await client.get("/healthz")
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "detail": "database unavailable"}
