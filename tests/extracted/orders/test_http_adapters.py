"""httpx adapters: status mapping (MockTransport), a real server, breakers and timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiohttp.test_utils import TestServer

from extracted.dependency import make_client
from extracted.orders.adapters import stock_reader
from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.customers_client import HttpCustomers
from extracted.orders.adapters.inventory_client import HttpInventory
from extracted.orders.adapters.legacy_orders import HttpLegacyOrders
from extracted.orders.adapters.stock_reader import HttpStock
from extracted.orders.domain.errors import (
    DependencyUnavailable,
    InsufficientStock,
    ReservationConflict,
    UnknownSku,
)
from extracted.orders.domain.model import OrderStatus, Origin
from extracted.orders.service.ports import ItemInfo
from tests.extracted.orders.inventory_fake_server import RESERVATIONS, inventory_app
from tests.support import procs

Handler = Callable[[httpx.Request], httpx.Response]


def _inventory(handler: Handler, breaker: DependencyBreaker | None = None) -> HttpInventory:
    client = make_client("http://inventory.test", transport=httpx.MockTransport(handler))
    return HttpInventory(client, breaker or DependencyBreaker("inventory"))


def _answer(status: int, json: object = None) -> Handler:
    return lambda request: httpx.Response(status, json=json)


async def test_item_maps_200_and_404() -> None:
    doc = {"sku": "A/1", "name": "n", "price_cents": 5, "on_hand": 9, "reserved": 2, "available": 7}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json=doc)

    assert await _inventory(handler).item("A/1") == ItemInfo("A/1", 5, 7)
    assert seen == ["/api/inventory/A%2F1"]  # a sku is one path segment, whatever it holds
    assert await _inventory(_answer(404, {"error": "not_found"})).item("A") is None


@pytest.mark.parametrize(
    "status,body,error",
    [
        (409, {"error": "insufficient_stock", "detail": "x"}, InsufficientStock),
        (409, {"error": "reservation_conflict", "detail": "x"}, ReservationConflict),
        (404, {"error": "not_found", "detail": "x"}, UnknownSku),
        (500, {"error": "boom"}, DependencyUnavailable),
        (422, {"error": "validation_error"}, DependencyUnavailable),
    ],
)
async def test_reserve_maps_refusals(status: int, body: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _inventory(_answer(status, body)).reserve("A", 1, 2)


async def test_reserve_accepts_201_and_200_and_release_accepts_204_and_404() -> None:
    inv = _inventory(_answer(201, {}))
    await inv.reserve("A", 1, 1)
    await _inventory(_answer(200, {})).reserve("A", 1, 1)
    await _inventory(_answer(204)).release("A", 1)
    await _inventory(_answer(404, {})).release("A", 1)
    with pytest.raises(DependencyUnavailable):
        await _inventory(_answer(503, {})).release("A", 1)


async def test_customers_maps_200_404_and_5xx() -> None:
    def customers(status: int) -> HttpCustomers:
        client = make_client(
            "http://legacy.test", transport=httpx.MockTransport(_answer(status, {}))
        )
        return HttpCustomers(client, DependencyBreaker("customers"))

    assert await customers(200).exists(1) is True
    assert await customers(404).exists(1) is False
    with pytest.raises(DependencyUnavailable) as exc:
        await customers(500).exists(1)
    assert exc.value.detail == "customers unavailable"


async def test_business_answers_never_open_the_breaker() -> None:
    breaker = DependencyBreaker("inventory", failures=2, reset_after=60)
    inv = _inventory(_answer(409, {"error": "insufficient_stock"}), breaker)
    for _ in range(5):
        with pytest.raises(InsufficientStock):
            await inv.reserve("A", 1, 1)
    assert breaker.state == "closed"


async def test_5xx_opens_the_breaker_then_fails_fast_then_one_trial_closes_it() -> None:
    calls = 0
    status = 500

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"sku": "A", "price_cents": 1, "available": 1})

    breaker = DependencyBreaker("inventory", failures=3, reset_after=0.3)
    inv = _inventory(handler, breaker)
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            await inv.item("A")
    assert breaker.state == "open" and calls == 3
    with pytest.raises(DependencyUnavailable):
        await inv.item("A")
    assert calls == 3  # failed fast, no request sent
    await asyncio.sleep(0.35)
    status = 200
    assert await inv.item("A") == ItemInfo("A", 1, 1)
    assert breaker.state == "closed"


async def test_half_open_lets_one_trial_through_at_a_time() -> None:
    gate = asyncio.Event()
    calls = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await gate.wait()
        return httpx.Response(200, json={"price_cents": 1, "available": 1})

    breaker = DependencyBreaker("inventory", failures=1, reset_after=0.05)
    fail = _inventory(_answer(500, {}), breaker)
    with pytest.raises(DependencyUnavailable):
        await fail.item("A")
    await asyncio.sleep(0.1)
    client = make_client("http://inventory.test", transport=httpx.MockTransport(slow))
    inv = HttpInventory(client, breaker)
    trial = asyncio.create_task(inv.item("A"))
    await asyncio.sleep(0.05)
    with pytest.raises(DependencyUnavailable):
        await inv.item("A")  # a second request while the trial is in flight fails fast
    gate.set()
    assert (await trial) is not None and calls == 1 and breaker.state == "closed"


@pytest.fixture
async def inventory_server() -> AsyncIterator[TestServer]:
    server = TestServer(inventory_app({"A": (150, 5), "B": (20, 1)}), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_against_a_real_server(inventory_server: TestServer) -> None:
    async with make_client(str(inventory_server.make_url(""))) as client:
        inv = HttpInventory(client, DependencyBreaker("inventory"))
        assert await inv.item("A") == ItemInfo("A", 150, 5)
        assert await inv.item("NOPE") is None
        await inv.reserve("A", 10, 3)
        await inv.reserve("A", 10, 3)  # the same reservation again: 200, no second one
        with pytest.raises(ReservationConflict):
            await inv.reserve("A", 10, 2)
        with pytest.raises(InsufficientStock):
            await inv.reserve("A", 11, 3)
        with pytest.raises(UnknownSku):
            await inv.reserve("NOPE", 11, 1)
        assert inventory_server.app[RESERVATIONS] == {("A", 10): 3}
        await inv.release("A", 10)
        await inv.release("A", 10)
        await inv.release("NOPE", 10)
        assert inventory_server.app[RESERVATIONS] == {}


async def test_dead_inventory_is_503_in_bounded_time_and_opens_the_breaker() -> None:
    port = procs.free_port()  # nothing listens: connection refused
    breaker = DependencyBreaker("inventory", failures=3, reset_after=30)
    async with make_client(f"http://127.0.0.1:{port}", timeout=2.0) as client:
        inv = HttpInventory(client, breaker)
        started = time.monotonic()
        for _ in range(5):
            with pytest.raises(DependencyUnavailable) as exc:
                await inv.reserve("A", 1, 1)
            assert exc.value.detail == "inventory unavailable"
        assert time.monotonic() - started < 5.0
        assert breaker.state == "open"


async def test_hanging_inventory_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        async with make_client(f"http://127.0.0.1:{port}", timeout=0.5, connect_timeout=0.5) as c:
            inv = HttpInventory(c, DependencyBreaker("inventory"))
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable):
                await inv.item("A")
            assert time.monotonic() - started < 3.0


def _order_doc(i: int, status: str = "placed") -> dict:
    return {
        "id": i,
        "customer_id": 1,
        "status": status,
        "items": [{"sku": "A", "qty": 1, "price_cents": 3}],
        "total_cents": 3,
        "placed_at": "2026-01-01T00:00:00Z",
    }


def _paged(rows: list[dict]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params["offset"])
        page = rows[offset : offset + limit]
        return httpx.Response(200, json={"items": page, "total": len(rows), "generated_at": "x"})

    return handler


async def test_legacy_orders_pages_and_single_orders() -> None:
    orders = [_order_doc(i, "cancelled" if i == 2 else "placed") for i in range(1, 6)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/orders":
            return _paged(orders)(request)
        oid = int(request.url.path.rsplit("/", 1)[1])
        if oid > 5:
            return httpx.Response(404, json={"error": "not_found", "detail": "x"})
        return httpx.Response(200, json=orders[oid - 1])

    client = make_client("http://legacy.test", transport=httpx.MockTransport(handler))
    legacy = HttpLegacyOrders(client, DependencyBreaker("legacy"))
    page = await legacy.page(2, 2)
    assert [o.id for o in page.orders] == [3, 4] and page.total == 5
    assert all(o.origin is Origin.LEGACY for o in page.orders)
    two = await legacy.get(2)
    assert two is not None and two.status is OrderStatus.CANCELLED and two.to_json() == orders[1]
    assert await legacy.get(6) is None


@pytest.mark.parametrize(
    "answer",
    [_answer(500, {}), _answer(200, {"items": "nope"}), _answer(403, {}), _answer(200, [1])],
)
async def test_unusable_legacy_answers_are_dependency_unavailable(answer: Handler) -> None:
    client = make_client("http://legacy.test", transport=httpx.MockTransport(answer))
    legacy = HttpLegacyOrders(client, DependencyBreaker("legacy"))
    with pytest.raises(DependencyUnavailable) as exc:
        await legacy.page(0, 500)
    assert exc.value.detail == "legacy unavailable"
    with pytest.raises(DependencyUnavailable):
        await legacy.get(1)


async def test_a_refused_connection_is_known_to_have_done_nothing() -> None:
    port = procs.free_port()
    async with make_client(f"http://127.0.0.1:{port}", timeout=1, connect_timeout=1) as c:
        inv = HttpInventory(c, DependencyBreaker("inventory", failures=1))
        with pytest.raises(DependencyUnavailable) as refused:
            await inv.release("A", 1)
        assert refused.value.maybe_done is False
        with pytest.raises(DependencyUnavailable) as open_breaker:
            await inv.release("A", 1)
        assert open_breaker.value.maybe_done is False
    timeout = _inventory(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)))
    with pytest.raises(DependencyUnavailable) as slow:
        await timeout.release("A", 1)
    assert slow.value.maybe_done is True  # it may have happened


async def test_stock_snapshot_reads_every_page_of_items_and_reservations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = [
        {
            "sku": f"S{i}",
            "name": "n",
            "price_cents": 1,
            "on_hand": 10 + i,
            "reserved": 0,
            "available": 0,
        }
        for i in range(5)
    ]
    held = {"S1": [{"sku": "S1", "order_id": o, "qty": o} for o in range(1, 8)]}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/inventory":
            return _paged(items)(request)
        sku = path.split("/")[3]
        return _paged(held.get(sku, []))(request)

    client = make_client("http://inventory.test", transport=httpx.MockTransport(handler))
    monkeypatch.setattr(stock_reader, "PAGE", 2)  # several pages on both levels
    stock = await HttpStock(client, DependencyBreaker("inventory")).snapshot()
    assert stock.on_hand == {f"S{i}": 10 + i for i in range(5)}
    assert stock.reservations == {"S1": {o: o for o in range(1, 8)}}
