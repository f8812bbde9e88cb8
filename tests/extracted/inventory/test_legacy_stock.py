"""The stock port's remote adapter (the legacy is the stock authority, this service a read copy).

First against a scripted legacy behind httpx.MockTransport (every answer shape, the breaker),
then against a REAL legacy process run with STOCK_AUTHORITY=legacy (forwarding, read-your-writes,
the legacy down -> 503 in bounded time).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extracted.events import SqliteLogBus
from extracted.inventory.adapters.api_reader import ApiReader
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.bootstrap import build_app
from extracted.inventory.domain import Item
from extracted.inventory.service import handlers
from extracted.inventory.service.backfill import backfill
from tests.support import procs
from tests.support.shop import legacy_server

UNAVAILABLE = b'{"error":"dependency_unavailable","detail":"legacy unavailable"}'


def local_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'inventory.db'}")
    db.create_schema()
    return db


def seed(db: Database, *items: Item) -> None:
    with uow_factory(db)(True) as uow:
        for item in items:
            uow.items.add(item)
        uow.commit()


def copy_of(db: Database, sku: str) -> Item:
    return handlers.get_item(sku, uow_factory(db))


def outbox_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return len(conn.execute(outbox.select()).all())


async def start(db: Database, tmp_path: Path, **kwargs: object) -> TestClient:
    app = build_app(db, bus=SqliteLogBus(tmp_path / "events.db"), authority="legacy", **kwargs)  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


# --- a scripted legacy ------------------------------------------------------------------------

Script = Callable[[httpx.Request], httpx.Response]


class ScriptedLegacy:
    """Answers each request with `script(request)` and records what it was sent."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[str, str, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, request.content))
        return self.script(request)


def answer(status: int, body: object = None, version: int | None = None) -> httpx.Response:
    headers = {} if version is None else {"X-Stock-Version": str(version)}
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[TestClient, ScriptedLegacy, Database]]:
    db = local_db(tmp_path)
    seed(db, Item("SKU-0001", "Widget", 250, 10))
    legacy = ScriptedLegacy(lambda _r: answer(500))
    client = await start(db, tmp_path, legacy_transport=httpx.MockTransport(legacy))
    try:
        yield client, legacy, db
    finally:
        await client.close()


async def test_a_reservation_is_forwarded_answered_as_is_and_shown_at_once(
    scripted: tuple[TestClient, ScriptedLegacy, Database],
) -> None:
    client, legacy, db = scripted
    legacy.script = lambda _r: answer(201, {"sku": "SKU-0001", "order_id": 7, "qty": 3}, 12)
    r = await client.post("/api/inventory/SKU-0001/reservations", json={"order_id": 7, "qty": 3})
    assert r.status == 201 and r.headers["X-Stock-Version"] == "12"
    assert await r.read() == b'{"sku":"SKU-0001","order_id":7,"qty":3}'
    assert legacy.requests == [
        ("POST", "/api/inventory/SKU-0001/reservations", b'{"order_id":7,"qty":3}')
    ]
    item = copy_of(db, "SKU-0001")
    assert (item.reservations[7].qty, item.version, item.floor) == (3, 0, 12)
    r = await client.get("/api/inventory/SKU-0001")
    assert orjson.loads(await r.read())["reserved"] == 3
    assert outbox_rows(db) == 0  # a read copy publishes nothing


async def test_release_and_restock_are_mirrored_at_their_versions(
    scripted: tuple[TestClient, ScriptedLegacy, Database],
) -> None:
    client, legacy, db = scripted
    legacy.script = lambda _r: answer(201, {"sku": "SKU-0001", "order_id": 7, "qty": 3}, 4)
    await client.post("/api/inventory/SKU-0001/reservations", json={"order_id": 7, "qty": 3})
    legacy.script = lambda _r: answer(204, None, 5)
    r = await client.delete("/api/inventory/SKU-0001/reservations/7")
    assert r.status == 204 and r.headers["X-Stock-Version"] == "5" and await r.read() == b""
    item_body = {"sku": "SKU-0001", "name": "Widget", "price_cents": 250, "on_hand": 15}
    item_body |= {"reserved": 0, "available": 15}
    legacy.script = lambda _r: answer(200, item_body, 6)
    r = await client.post("/api/inventory/SKU-0001/restock", json={"qty": 5})
    assert r.status == 200 and r.headers["X-Stock-Version"] == "6"
    assert orjson.loads(await r.read()) == item_body
    item = copy_of(db, "SKU-0001")
    assert (item.on_hand, item.reservations, item.floor) == (15, {}, 6)


@pytest.mark.parametrize(
    "status,body",
    [
        (409, {"error": "insufficient_stock", "detail": "insufficient stock for SKU-0001"}),
        (409, {"error": "reservation_conflict", "detail": "legacy's own words"}),
        (404, {"error": "not_found", "detail": "item SKU-0001 not found"}),
    ],
)
async def test_refusals_are_the_legacys_answers_and_change_nothing(
    scripted: tuple[TestClient, ScriptedLegacy, Database], status: int, body: object
) -> None:
    client, legacy, db = scripted
    legacy.script = lambda _r: answer(status, body)
    r = await client.post("/api/inventory/SKU-0001/reservations", json={"order_id": 7, "qty": 3})
    assert r.status == status and await r.read() == orjson.dumps(body)
    assert "X-Stock-Version" not in r.headers
    assert copy_of(db, "SKU-0001").reservations == {}


async def test_an_unknown_sku_goes_to_the_legacy_a_bad_body_does_not(
    scripted: tuple[TestClient, ScriptedLegacy, Database],
) -> None:
    client, legacy, _db = scripted
    legacy.script = lambda _r: answer(
        404, {"error": "not_found", "detail": "item SKU-0777 not found"}
    )
    r = await client.post("/api/inventory/SKU-0777/restock", json={"qty": 1})
    assert r.status == 404 and len(legacy.requests) == 1
    r = await client.post("/api/inventory/SKU-0001/restock", json={"qty": 0})
    assert r.status == 422 and len(legacy.requests) == 1  # the same validation, answered here


async def test_without_a_version_the_answer_passes_but_the_copy_waits_for_the_event(
    scripted: tuple[TestClient, ScriptedLegacy, Database],
) -> None:
    client, legacy, db = scripted
    legacy.script = lambda _r: answer(201, {"sku": "SKU-0001", "order_id": 7, "qty": 3})
    r = await client.post("/api/inventory/SKU-0001/reservations", json={"order_id": 7, "qty": 3})
    assert r.status == 201 and "X-Stock-Version" not in r.headers
    assert copy_of(db, "SKU-0001").reservations == {}


async def test_legacy_failures_are_503_and_the_breaker_then_fails_fast(
    scripted: tuple[TestClient, ScriptedLegacy, Database],
) -> None:
    client, legacy, db = scripted
    scripts: list[Script] = [
        lambda _r: answer(500, {"error": "internal_error", "detail": "boom"}),
        lambda _r: httpx.Response(200, text="<html>a proxy page</html>"),
        lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)),
        lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)),
        lambda _r: answer(503),
    ]
    for script in scripts:
        legacy.script = script
        r = await client.post("/api/inventory/SKU-0001/restock", json={"qty": 1})
        assert (r.status, await r.read()) == (503, UNAVAILABLE)
    sent = len(legacy.requests)
    r = await client.delete("/api/inventory/SKU-0001/reservations/3")
    assert (r.status, await r.read()) == (503, UNAVAILABLE)
    assert len(legacy.requests) == sent  # open: not even tried
    assert copy_of(db, "SKU-0001").on_hand == 10


# --- a real legacy ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A seeded legacy monolith that is the stock authority (module-scoped: seeding is slow)."""
    workdir = tmp_path_factory.mktemp("legacy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STOCK_AUTHORITY", "legacy")
        mp.setenv("REDIS_URL", "")
        mp.setenv("EVENTS_DB", str(workdir / "events.db"))
        with legacy_server(workdir, f"sqlite:///{workdir / 'legacy.db'}") as url:
            yield url


@pytest.fixture
async def copy_of_real(
    real_legacy: str, tmp_path: Path
) -> AsyncIterator[tuple[TestClient, Database, str]]:
    db = local_db(tmp_path)
    with ApiReader(real_legacy) as reader:
        assert backfill(reader, uow_factory(db)).progress.complete
    client = await start(db, tmp_path, legacy_url=real_legacy)
    try:
        yield client, db, real_legacy
    finally:
        await client.close()


async def legacy_reservations(direct: httpx.AsyncClient, sku: str) -> dict[int, int]:
    r = await direct.get(f"/api/inventory/{sku}/reservations", params={"limit": 500})
    return {x["order_id"]: x["qty"] for x in r.json()["items"]}


async def test_writes_reach_the_real_legacy_and_show_in_the_copy_at_once(
    copy_of_real: tuple[TestClient, Database, str],
) -> None:
    client, db, url = copy_of_real
    async with httpx.AsyncClient(base_url=url, timeout=10) as direct:
        await real_writes(client, db, direct)


async def real_writes(client: TestClient, db: Database, direct_client: httpx.AsyncClient) -> None:
    sku, order_id = "SKU-0150", 900_001
    path = f"/api/inventory/{sku}/reservations"
    r = await client.post(path, json={"order_id": order_id, "qty": 1})
    assert r.status == 201, await r.read()
    assert orjson.loads(await r.read()) == {"sku": sku, "order_id": order_id, "qty": 1}
    version = int(r.headers["X-Stock-Version"])
    assert (await legacy_reservations(direct_client, sku))[order_id] == 1
    assert copy_of(db, sku).reservations[order_id].qty == 1
    # The legacy answers a repeat at the same version; we pass its answer through.
    direct = await direct_client.post(path, json={"order_id": order_id, "qty": 1})
    r = await client.post(path, json={"order_id": order_id, "qty": 1})
    assert r.status == direct.status_code == 200
    assert r.headers["X-Stock-Version"] == direct.headers["X-Stock-Version"] == str(version)
    # Refusals are the legacy's bytes.
    direct = await direct_client.post(path, json={"order_id": order_id, "qty": 2})
    r = await client.post(path, json={"order_id": order_id, "qty": 2})
    assert (r.status, await r.read()) == (direct.status_code, direct.content)
    direct = await direct_client.post("/api/inventory/NOPE/restock", json={"qty": 1})
    r = await client.post("/api/inventory/NOPE/restock", json={"qty": 1})
    assert (r.status, await r.read()) == (direct.status_code, direct.content) and r.status == 404

    before = copy_of(db, sku).on_hand
    r = await client.post(f"/api/inventory/{sku}/restock", json={"qty": 4})
    assert r.status == 200 and int(r.headers["X-Stock-Version"]) == version + 1
    assert orjson.loads(await r.read())["on_hand"] == before + 4
    r = await client.delete(f"{path}/{order_id}")
    assert r.status == 204 and int(r.headers["X-Stock-Version"]) == version + 2
    item = copy_of(db, sku)
    assert (item.on_hand, order_id in item.reservations) == (before + 4, False)
    assert item.floor == version + 2
    assert order_id not in await legacy_reservations(direct_client, sku)


async def test_the_legacy_down_is_503_in_bounded_time_and_nothing_changes(tmp_path: Path) -> None:
    db = local_db(tmp_path)
    seed(db, Item("SKU-0001", "Widget", 250, 10))
    # A port nobody listens on (refused), and one that accepts but never answers (a hang).
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(16)
        for url in (
            f"http://127.0.0.1:{procs.free_port()}",
            f"http://127.0.0.1:{hang.getsockname()[1]}",
        ):
            client = await start(db, tmp_path, legacy_url=url, legacy_timeout=1.0)
            try:
                began = time.monotonic()
                r = await client.post(
                    "/api/inventory/SKU-0001/reservations", json={"order_id": 1, "qty": 1}
                )
                assert (r.status, await r.read()) == (503, UNAVAILABLE)
                assert time.monotonic() - began < 3.0
                r = await asyncio.wait_for(client.get("/api/inventory/SKU-0001"), 5)
                assert r.status == 200  # reads answer from the copy
            finally:
                await client.close()
    item = copy_of(db, "SKU-0001")
    assert (item.reservations, item.floor) == ({}, 0)
