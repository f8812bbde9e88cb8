"""`sync --check`: 0 when both copies agree and I2 holds (lag included), 1 for drift, 2 when
a side cannot be read. A real legacy; inventory is a small real server whose stock the test
controls (the inventory service itself is tested on its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from extracted.dependency import make_client
from extracted.events import SqliteLogBus, order_event
from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.legacy_orders import HttpLegacyOrders
from extracted.orders.adapters.orm import create_tables
from extracted.orders.adapters.stock_reader import HttpStock
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.config import Settings
from extracted.orders.domain.model import OrderStatus, Origin
from extracted.orders.entrypoints.consumer import OrdersConsumer
from extracted.orders.entrypoints.sync import parse_duration, run_check
from extracted.orders.service import backfill as job
from tests.extracted.orders.inventory_fake_server import RESERVATIONS, inventory_app
from tests.extracted.orders.stack import legacy, sqlite_url
from tests.support import procs


@pytest.fixture(scope="module")
def legacy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with legacy(tmp_path_factory.mktemp("check-legacy")) as url:
        yield url


@dataclass
class World:
    settings: Settings
    engine: sa.Engine
    inventory: TestServer
    legacy_url: str

    @property
    def held(self) -> dict[tuple[str, int], int]:
        return self.inventory.app[RESERVATIONS]

    async def check(self, settle: float) -> tuple[int, list[str]]:
        lines: list[str] = []
        code = await run_check(self.settings, settle=settle, out=lines.append)
        return code, lines


async def _legacy_stock(legacy_url: str) -> HttpStock:
    return HttpStock(make_client(legacy_url, timeout=20), DependencyBreaker("legacy"))


@pytest.fixture
async def world(legacy_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """A backfilled orders database, and an inventory holding exactly the legacy's stock."""
    reader = await _legacy_stock(legacy_url)
    try:
        stock = await reader.snapshot()
    finally:
        await reader.client.aclose()
    app = inventory_app({sku: (0, n) for sku, n in stock.on_hand.items()})
    app[RESERVATIONS].update(
        {(sku, o): q for sku, held in stock.reservations.items() for o, q in held.items()}
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    db = sqlite_url(tmp_path / "orders.db")
    engine = make_engine(db)
    create_tables(engine)
    async with make_client(legacy_url, timeout=20) as client:
        await job.backfill(SqlUnitOfWork(engine), HttpLegacyOrders(client, DependencyBreaker("l")))
    settings = Settings(
        database_url=db,
        legacy_url=legacy_url,
        inventory_url=str(server.make_url("")).rstrip("/"),
        http_timeout=20.0,
    )
    try:
        yield World(settings, engine, server, legacy_url)
    finally:
        await server.close()
        engine.dispose()


async def test_identical_copies_are_clean(world: World) -> None:
    assert await world.check(settle=0) == (0, ["no differences"])


async def test_lag_is_not_drift(world: World, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=world.legacy_url, timeout=20) as c:
        r = await c.post(
            "/api/orders", json={"customer_id": 5, "items": [{"sku": "SKU-0007", "qty": 1}]}
        )
    assert r.status_code == 201, r.text
    placed = r.json()
    # Neither our copy nor the inventory has it yet: dirty now...
    check = asyncio.create_task(world.check(settle=30))
    await asyncio.sleep(1.5)
    assert not check.done()
    # ...then the change arrives the way it does in the stack: the legacy's event through the
    # bus to our consumer, and the reservation into the inventory.
    bus = SqliteLogBus(tmp_path / "events.db")
    try:
        await bus.publish(order_event(placed, "legacy"))
        await OrdersConsumer(bus, lambda: SqlUnitOfWork(world.engine), consumer="c").drain()
    finally:
        await bus.close()
    world.held[("SKU-0007", placed["id"])] = 1
    assert await asyncio.wait_for(check, 60) == (0, ["no differences"])


async def test_drift_is_every_offending_record_and_exit_1(world: World) -> None:
    with SqlUnitOfWork(world.engine) as uow:  # cancelled here and nowhere else: drift
        placed = [o for o in uow.orders.visible() if o.status is OrderStatus.PLACED]
        victim, other = placed[0], placed[1]
        uow.orders.set_status(victim.id, [OrderStatus.PLACED], OrderStatus.CANCELLED, Origin.LEGACY)
        uow.commit()
    line = other.lines[0]
    del world.held[(line.sku, other.id)]  # a reservation lost in inventory
    code, out = await world.check(settle=1.0)
    assert code == 1, out
    text = "\n".join(out)
    assert f"order {victim.id} differs: legacy=" in text and '"status":"cancelled"' in text
    for vline in victim.lines:  # our cancelled order still holds stock in inventory
        assert (
            f"orders: {vline.sku} order {victim.id}: no placed order, reservation of {vline.qty}"
            in text
        )
    assert (
        f"orders: {line.sku} order {other.id}: placed order holds {line.qty}, no reservation"
        in text
    )
    assert out[-1] == f"{len(out) - 1} differences persisted for 1s"


async def test_unreachable_legacy_or_inventory_is_exit_2(world: World) -> None:
    dead = f"http://127.0.0.1:{procs.free_port()}"
    for field in ("legacy_url", "inventory_url"):
        settings = Settings(**{**world.settings.__dict__, field: dead})
        lines: list[str] = []
        assert await run_check(settings, settle=5, out=lines.append) == 2
        assert lines and lines[0].startswith("cannot check: ") and "unavailable" in lines[0]


def test_the_cli_exits_2_when_nothing_answers(tmp_path: Path) -> None:
    env = {
        "ORDERS_DATABASE_URL": sqlite_url(tmp_path / "orders.db"),
        "LEGACY_URL": f"http://127.0.0.1:{procs.free_port()}",
        "INVENTORY_URL": f"http://127.0.0.1:{procs.free_port()}",
    }
    done = procs.run_cli(["-m", "extracted.orders", "sync", "--check", "--settle", "1s"], env=env)
    assert done.returncode == 2 and "cannot check: " in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    "text,seconds", [("10s", 10.0), ("500ms", 0.5), ("2.5", 2.5), ("1m", 60.0), (" 3 s ", 3.0)]
)
def test_settle_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
