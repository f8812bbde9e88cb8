"""The backfill: paged, resumable, idempotent, lattice merge; with fakes and a real legacy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.dependency import make_client
from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.legacy_orders import HttpLegacyOrders
from extracted.orders.adapters.orm import create_tables, orders
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import Order, OrderLine, OrderStatus, Origin
from extracted.orders.service import backfill as job
from extracted.orders.service.ports import LegacyOrdersPort, OrdersPage
from extracted.orders.service.unit_of_work import SyncProgress
from tests.extracted.orders.fakes import FakeDatabase, FakeLegacyOrders
from tests.extracted.orders.stack import legacy, sqlite_url
from tests.support import procs


def _o(oid: int, status: OrderStatus = OrderStatus.PLACED, origin: Origin = Origin.LEGACY) -> Order:
    return Order(oid, 1, status, (OrderLine("A", 1, 100),), "2026-01-01T00:00:00Z", origin)


class StopsAfter:
    """A legacy that answers `pages` pages, then goes away (an interrupted run)."""

    def __init__(self, inner: LegacyOrdersPort, pages: int) -> None:
        self.inner = inner
        self.pages = pages

    async def page(self, offset: int, limit: int) -> OrdersPage:
        if self.pages <= 0:
            raise DependencyUnavailable("legacy", maybe_done=False)
        self.pages -= 1
        return await self.inner.page(offset, limit)

    async def get(self, order_id: int) -> Order | None:  # pragma: no cover - unused
        return await self.inner.get(order_id)


async def test_pages_resume_after_an_interruption_and_rerunning_changes_nothing() -> None:
    db = FakeDatabase()
    legacy = FakeLegacyOrders([_o(i) for i in range(1, 8)])
    with pytest.raises(DependencyUnavailable):
        await job.backfill(db.uow(), StopsAfter(legacy, 2), page_size=3)
    assert db.tables.sync_state[job.JOB] == SyncProgress(6, False)
    assert sorted(db.tables.orders) == [1, 2, 3, 4, 5, 6]
    legacy.calls.clear()
    report = await job.backfill(db.uow(), legacy, page_size=3)
    assert legacy.calls == [("page", 6)]  # resumed where it stopped
    assert (report.started_at, report.read, report.changed, report.total) == (6, 1, 1, 7)
    assert db.tables.sync_state[job.JOB] == SyncProgress(7, True)
    assert sorted(db.tables.orders) == list(range(1, 8))
    legacy.calls.clear()
    again = await job.backfill(db.uow(), legacy, page_size=3)
    assert again.already_complete and legacy.calls == []
    await job.restart(db.uow())
    full = await job.backfill(db.uow(), legacy, page_size=3)
    assert (full.read, full.changed) == (7, 0)  # idempotent
    assert db.tables.outbox == []  # copies are never published


async def test_the_merge_is_the_lattice_and_never_overwrites_our_orders() -> None:
    db = FakeDatabase()
    mine = replace(_o(NEW_SERVICES_ID_FLOOR, origin=Origin.ORDERS), lines=(OrderLine("Z", 9, 1),))
    with db.uow() as uow:
        uow.orders.add(mine)
        uow.orders.add(_o(2, OrderStatus.CANCELLED))  # cancelled here already (by an event)
        uow.orders.add(_o(NEW_SERVICES_ID_FLOOR + 1, OrderStatus.PENDING, Origin.ORDERS))
        uow.commit()
    legacy = FakeLegacyOrders(
        [
            _o(1),
            _o(2),  # the legacy's copy is behind: ours stays cancelled
            _o(NEW_SERVICES_ID_FLOOR),  # ours, as the legacy copied it: nothing to do
            _o(NEW_SERVICES_ID_FLOOR + 1, OrderStatus.CANCELLED),  # a saga in flight: untouched
        ]
    )
    await job.backfill(db.uow(), legacy)
    got = db.tables.orders
    assert got[1].status is OrderStatus.PLACED and got[2].status is OrderStatus.CANCELLED
    assert got[NEW_SERVICES_ID_FLOOR] == mine
    assert got[NEW_SERVICES_ID_FLOOR + 1].status is OrderStatus.PENDING
    legacy.orders[NEW_SERVICES_ID_FLOOR] = _o(
        NEW_SERVICES_ID_FLOOR, OrderStatus.CANCELLED
    )  # cancelled there
    await job.restart(db.uow())
    await job.backfill(db.uow(), legacy)
    assert got is not db.tables.orders
    cancelled = db.tables.orders[NEW_SERVICES_ID_FLOOR]
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.lines == mine.lines


async def test_retries_with_backoff_while_the_legacy_is_down() -> None:
    db = FakeDatabase()
    legacy = FakeLegacyOrders([_o(1)])
    legacy.down = True
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 4:
            legacy.down = False

    report = await job.backfill_until_complete(db.uow(), legacy, sleep=sleep)
    assert report.complete and slept == [0.5, 1.0, 2.0, 4.0]


# --- against a real legacy ------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with legacy(tmp_path_factory.mktemp("backfill-legacy")) as url:
        yield url


def _sync(db: str, legacy_url: str, *args: str, page: int = 300) -> tuple[int, str]:
    env = {"ORDERS_DATABASE_URL": db, "LEGACY_URL": legacy_url, "ORDERS_BACKFILL_PAGE": str(page)}
    done = procs.run_cli(["-m", "extracted.orders", "sync", *args], env=env, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_interrupted_backfill_of_a_real_legacy_resumes_without_duplicates(
    legacy_url: str, tmp_path: Path
) -> None:
    db = sqlite_url(tmp_path / "orders.db")
    engine = make_engine(db)
    create_tables(engine)

    async def interrupted() -> SyncProgress:
        async with make_client(legacy_url, timeout=20) as client:
            real = HttpLegacyOrders(client, DependencyBreaker("legacy"))
            with pytest.raises(DependencyUnavailable):
                await job.backfill(SqlUnitOfWork(engine), StopsAfter(real, 1), page_size=300)
        return await job.progress(SqlUnitOfWork(engine))

    try:
        assert asyncio.run(interrupted()) == SyncProgress(300, False)
        code, out = _sync(db, legacy_url)
        assert code == 0, out
        assert "backfill complete: read=" in out and "resumed_at=300" in out
        theirs = _legacy_orders(legacy_url)
        with SqlUnitOfWork(engine) as uow:
            ours = {o.id: o.to_json() for o in uow.orders.visible()}
        # Every order once, ids and content preserved: no duplicates, none missing.
        assert ours == {o["id"]: o for o in theirs}
        with engine.connect() as conn:  # copies keep the legacy as origin
            origins = set(conn.execute(sa.select(orders.c.origin).distinct()).scalars())
        assert origins == {"legacy"}
        code, out = _sync(db, legacy_url)
        assert code == 0 and "backfill already complete" in out, out
        code, out = _sync(db, legacy_url, "--restart")
        assert code == 0 and f"read={len(theirs)} changed=0" in out, out
    finally:
        engine.dispose()


def _legacy_orders(legacy_url: str) -> list[dict]:
    found: list[dict] = []
    with httpx.Client(base_url=legacy_url, timeout=20) as client:
        while True:
            page = client.get("/api/orders", params={"limit": 500, "offset": len(found)}).json()
            found.extend(page["items"])
            if not page["items"] or len(found) >= page["total"]:
                return found


def test_sync_exits_2_while_the_legacy_is_down_and_keeps_nothing_half_done(
    tmp_path: Path,
) -> None:
    db = sqlite_url(tmp_path / "orders.db")
    code, out = _sync(db, f"http://127.0.0.1:{procs.free_port()}")
    assert code == 2 and "sync failed: legacy unavailable" in out, out


def test_sync_exits_2_when_its_own_database_is_down(legacy_url: str) -> None:
    code, out = _sync("postgresql://nobody@127.0.0.1:1/none", legacy_url)
    assert code == 2 and "sync failed: database unavailable" in out, out


def test_help_names_every_mode() -> None:
    done = procs.run_cli(["-m", "extracted.orders", "sync", "--help"], timeout=60)
    assert done.returncode == 0
    for word in ("--follow", "--check", "--settle", "--restart", "--consumer", "sync_state"):
        assert word in done.stdout
    top = procs.run_cli(["-m", "extracted.orders", "--help"], timeout=60)
    assert top.returncode == 0 and "serve" in top.stdout and "sync" in top.stdout
    bad = procs.run_cli(["-m", "extracted.orders", "sync", "--check", "--settle", "soon"])
    assert bad.returncode == 2 and "not a duration" in bad.stderr
