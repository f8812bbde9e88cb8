"""The aiohttp API as the stock authority, through aiohttp's test server: contract shapes,
errors, `X-Stock-Version`, events relayed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extracted.events import INVENTORY_CHANGED, Event, EventBus, RedisStreamBus, SqliteLogBus
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.bootstrap import build_app
from extracted.inventory.domain import Item
from tests.support import procs

ITEM_KEYS = ["sku", "name", "price_cents", "on_hand", "reserved", "available"]


def seeded_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'inventory.db'}")
    db.create_schema()
    with uow_factory(db)(True) as uow:
        uow.items.add(Item("SKU-0001", "Widget", 250, 10))
        uow.items.add(Item("SKU-0002", "Gadget", 999, 3))
        uow.commit()
    return db


async def start(db: Database, bus: EventBus) -> TestClient:
    client = TestClient(TestServer(build_app(db, bus=bus, authority="inventory")))
    await client.start_server()
    return client


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await start(seeded_db(tmp_path), SqliteLogBus(tmp_path / "events.db"))
    try:
        yield client
    finally:
        await client.close()


async def body_of(resp) -> bytes:  # type: ignore[no-untyped-def]
    assert resp.headers["Content-Type"] == "application/json"
    return await resp.read()


async def test_get_item_bytes_and_list_shape(api: TestClient) -> None:
    r = await api.get("/api/inventory/SKU-0001")
    assert r.status == 200
    assert await body_of(r) == (
        b'{"sku":"SKU-0001","name":"Widget","price_cents":250,"on_hand":10,'
        b'"reserved":0,"available":10}'
    )
    r = await api.get("/api/inventory", params={"limit": "1", "offset": "1"})
    body = orjson.loads(await body_of(r))
    assert list(body) == ["items", "total", "generated_at"]
    assert [i["sku"] for i in body["items"]] == ["SKU-0002"] and body["total"] == 2
    assert list(body["items"][0]) == ITEM_KEYS
    assert time.strftime("%Y-%m-%dT", time.gmtime()) in body["generated_at"]
    assert body["generated_at"].endswith("Z") and len(body["generated_at"]) == 20


async def test_reservation_lifecycle(api: TestClient) -> None:
    path = "/api/inventory/SKU-0001/reservations"
    r = await api.post(path, data=b'{"order_id":7,"qty":3}')
    assert r.status == 201
    assert await body_of(r) == b'{"sku":"SKU-0001","order_id":7,"qty":3}'
    r = await api.post(path, json={"order_id": 7, "qty": 3})
    assert r.status == 200 and orjson.loads(await r.read())["qty"] == 3
    r = await api.post(path, json={"order_id": 7, "qty": 4})
    assert r.status == 409
    assert orjson.loads(await body_of(r)) == {
        "error": "reservation_conflict",
        "detail": "order 7 already holds a reservation for SKU-0001 with another qty",
    }
    r = await api.post(path, json={"order_id": 8, "qty": 8})
    assert r.status == 409
    assert await r.read() == (
        b'{"error":"insufficient_stock","detail":"insufficient stock for SKU-0001"}'
    )
    await api.post(path, json={"order_id": 2, "qty": 1})
    body = orjson.loads(await (await api.get(path)).read())
    assert body["items"] == [
        {"sku": "SKU-0001", "order_id": 2, "qty": 1},
        {"sku": "SKU-0001", "order_id": 7, "qty": 3},
    ]
    item = orjson.loads(await (await api.get("/api/inventory/SKU-0001")).read())
    assert (item["reserved"], item["available"]) == (4, 6)
    r = await api.delete(f"{path}/7")
    assert r.status == 204 and await r.read() == b""
    assert (await api.delete(f"{path}/7")).status == 204
    assert (await api.delete(f"{path}/0")).status == 204
    r = await api.post("/api/inventory/SKU-0001/restock", json={"qty": 5})
    assert r.status == 200
    assert orjson.loads(await r.read()) == {
        "sku": "SKU-0001",
        "name": "Widget",
        "price_cents": 250,
        "on_hand": 15,
        "reserved": 1,
        "available": 14,
    }


async def test_every_write_answer_carries_the_items_version(api: TestClient) -> None:
    path = "/api/inventory/SKU-0001/reservations"

    async def version(method: str, url: str, status: int, body: object = None) -> str | None:
        r = await api.request(method, url, json=body)
        assert r.status == status, await r.read()
        return r.headers.get("X-Stock-Version")

    assert await version("POST", path, 201, {"order_id": 7, "qty": 3}) == "1"
    assert await version("POST", path, 200, {"order_id": 7, "qty": 3}) == "1"
    assert await version("POST", path, 409, {"order_id": 7, "qty": 4}) is None
    assert await version("DELETE", f"{path}/7", 204) == "2"
    assert await version("DELETE", f"{path}/7", 204) == "2"  # nothing released: current version
    assert await version("POST", "/api/inventory/SKU-0001/restock", 200, {"qty": 1}) == "3"
    assert await version("POST", "/api/inventory/SKU-0002/restock", 200, {"qty": 1}) == "1"
    assert await version("GET", "/api/inventory/SKU-0001", 200) is None


@pytest.mark.parametrize(
    "body,detail",
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1]", "request body must be a JSON object"),
        (b'{"qty":1}', "order_id: is required"),
        (b'{"order_id":true,"qty":1}', "order_id: must be an integer"),
        (b'{"order_id":1.0,"qty":1}', "order_id: must be an integer"),
        (b'{"order_id":"1","qty":1}', "order_id: must be an integer"),
        (b'{"order_id":0,"qty":1}', "order_id: must be >= 1"),
        (b'{"order_id":1,"qty":0}', "qty: must be >= 1"),
        (b'{"order_id":1,"qty":2147483648}', "qty: must be <= 2147483647"),
    ],
)
async def test_reservation_validation(api: TestClient, body: bytes, detail: str) -> None:
    r = await api.post("/api/inventory/SKU-0001/reservations", data=body)
    assert r.status == 422
    assert orjson.loads(await body_of(r)) == {"error": "validation_error", "detail": detail}


@pytest.mark.parametrize(
    "query,detail",
    [
        ("limit=0", "limit: must be an integer between 1 and 500"),
        ("limit=501", "limit: must be an integer between 1 and 500"),
        ("limit=abc", "limit: must be an integer between 1 and 500"),
        ("offset=-1", "offset: must be an integer >= 0"),
    ],
)
async def test_pagination_validation(api: TestClient, query: str, detail: str) -> None:
    r = await api.get(f"/api/inventory?{query}")
    assert r.status == 422
    assert orjson.loads(await r.read())["detail"] == detail


@pytest.mark.parametrize(
    "method,path,body,detail",
    [
        ("GET", "/api/inventory/SKU-9999", None, "item SKU-9999 not found"),
        ("GET", "/api/inventory/SKU-9999/reservations?limit=0", None, "item SKU-9999 not found"),
        ("POST", "/api/inventory/SKU-9999/reservations", b"{bad", "item SKU-9999 not found"),
        ("POST", "/api/inventory/SKU-9999/restock", b'{"qty":1}', "item SKU-9999 not found"),
        ("DELETE", "/api/inventory/SKU-9999/reservations/x", None, "item SKU-9999 not found"),
        ("DELETE", "/api/inventory/SKU-0001/reservations/x", None, "no such resource"),
        ("GET", "/api/inventory/SKU-0001/nope", None, "no such resource"),
        ("GET", "/nope", None, "no such resource"),
    ],
)
async def test_not_found(
    api: TestClient, method: str, path: str, body: bytes | None, detail: str
) -> None:
    r = await api.request(method, path, data=body)
    assert r.status == 404
    assert orjson.loads(await body_of(r)) == {"error": "not_found", "detail": detail}


async def test_a_body_over_1_mib_is_413_json(api: TestClient) -> None:
    r = await api.post("/api/inventory/SKU-0001/restock", data=b" " * (1024 * 1024 + 1))
    assert r.status == 413
    assert orjson.loads(await body_of(r)) == {
        "error": "request_entity_too_large",
        "detail": "The data value transmitted exceeds the capacity limit.",
    }


async def test_wrong_method_is_405_json(api: TestClient) -> None:
    r = await api.put("/api/inventory")
    assert r.status == 405
    assert await body_of(r) == b'{"error":"method_not_allowed","detail":"method PUT not allowed"}'
    assert "GET" in r.headers["Allow"]


async def test_head_and_healthz(api: TestClient) -> None:
    r = await api.head("/api/inventory/SKU-0001")
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    r = await api.get("/healthz")
    assert r.status == 200 and await r.read() == b'{"status":"ok"}'


async def test_healthz_is_503_when_the_database_is_gone(tmp_path: Path) -> None:
    db = seeded_db(tmp_path)
    client = await start(db, SqliteLogBus(tmp_path / "events.db"))
    try:
        # A directory where the file should be: every new connection fails.
        (tmp_path / "inventory.db").rename(tmp_path / "moved.db")
        (tmp_path / "inventory.db").mkdir()
        db.engine.dispose()
        r = await client.get("/healthz")
        assert r.status == 503
        assert orjson.loads(await r.read()) == {
            "status": "unavailable",
            "detail": "database unavailable",
        }
        r = await client.get("/api/inventory/SKU-0001")
        assert r.status == 503
        assert orjson.loads(await r.read())["error"] == "dependency_unavailable"
    finally:
        await client.close()


async def test_starts_and_answers_503_while_postgresql_is_unreachable(tmp_path: Path) -> None:
    dead = Database(f"postgresql://postgres@127.0.0.1:{procs.free_port()}/inventory")
    client = await start(dead, SqliteLogBus(tmp_path / "events.db"))
    try:
        assert (await client.get("/healthz")).status == 503
        r = await client.get("/api/inventory")
        assert r.status == 503
        assert await r.read() == (
            b'{"error":"dependency_unavailable","detail":"database unavailable"}'
        )
    finally:
        await client.close()


async def read_events(bus: EventBus, want: int, within: float = 15.0) -> list[Event]:
    got: list[Event] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        deliveries = await bus.read("test", "c1", count=100, block_ms=200)
        await bus.ack("test", [d.id for d in deliveries])
        got.extend(d.event for d in deliveries)
    return got


async def exercise(client: TestClient) -> None:
    path = "/api/inventory/SKU-0002/reservations"
    assert (await client.post(path, json={"order_id": 1, "qty": 2})).status == 201
    assert (await client.post(path, json={"order_id": 1, "qty": 2})).status == 200  # no event
    assert (await client.delete(f"{path}/1")).status == 204
    assert (await client.post("/api/inventory/SKU-0002/restock", json={"qty": 1})).status == 200


def check_relayed(events: list[Event]) -> None:
    assert [e.type for e in events] == [INVENTORY_CHANGED] * 3
    assert [e.data["item"]["reserved"] for e in events] == [2, 0, 0]
    assert events[0].data["reservations"] == [{"sku": "SKU-0002", "order_id": 1, "qty": 2}]
    assert events[2].data["item"]["on_hand"] == 4
    assert all(e.origin == "inventory" for e in events)


async def test_changes_are_relayed_to_the_sqlite_log(tmp_path: Path) -> None:
    bus_path = tmp_path / "bus" / "events.db"
    client = await start(seeded_db(tmp_path), SqliteLogBus(bus_path))
    reader = SqliteLogBus(bus_path)
    try:
        await exercise(client)
        check_relayed(await read_events(reader, 3))
    finally:
        await client.close()
        await reader.close()


@pytest.mark.redis
async def test_changes_are_relayed_to_a_redis_stream(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:shop.events"
    client = await start(seeded_db(tmp_path), RedisStreamBus(redis_url, stream))
    reader = RedisStreamBus(redis_url, stream)
    try:
        await exercise(client)
        check_relayed(await read_events(reader, 3))
    finally:
        await client.close()
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_url)
        await r.delete(stream)
        await r.aclose()
        await reader.close()
