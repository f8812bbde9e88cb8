"""Outbox + relay: same transaction as the change, id order, at least once across a crash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from extracted.events import OutboxRelay, RedisStreamBus, SqliteLogBus, add_to_outbox, outbox_table
from extracted.events.base import EventBus
from tests.extracted.events.dedupe import DedupeStore
from tests.extracted.events.factories import numbered_events, order_event
from tests.extracted.events.test_bus import _drain
from tests.support import procs

MakeBus = Callable[..., EventBus]


class Service:
    """A stand-in service database: its own `things` table plus the outbox."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        self.metadata = sa.MetaData()
        self.things = sa.Table(
            "things", self.metadata, sa.Column("id", sa.Integer, primary_key=True)
        )
        self.outbox = outbox_table(self.metadata)
        self.metadata.create_all(self.engine)

    def change_and_publish(self, n: int) -> list[str]:
        """Commit `n` changes, each with its event in the same transaction."""
        events = numbered_events(n)
        for i, event in enumerate(events):
            with self.engine.begin() as conn:
                conn.execute(self.things.insert().values(id=i + 1))
                add_to_outbox(conn, self.outbox, event)
        return [e.event_id for e in events]

    def published_flags(self) -> list[bool]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.outbox.c.published_at).order_by(self.outbox.c.id))
            return [r.published_at is not None for r in rows]


@pytest.fixture(params=["sqlite", "postgres"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.db'}"
    else:
        pg = request.getfixturevalue("make_pg_database")()
        url = pg.replace("postgresql://", "postgresql+psycopg://", 1)
    svc = Service(url)
    yield svc
    svc.engine.dispose()


def test_outbox_table_is_defined_once_per_metadata() -> None:
    metadata = sa.MetaData()
    assert outbox_table(metadata) is outbox_table(metadata)


def test_event_is_written_only_when_the_change_commits(service: Service) -> None:
    with pytest.raises(RuntimeError), Session(service.engine) as session, session.begin():
        add_to_outbox(session, service.outbox, order_event())
        raise RuntimeError("the change failed")
    assert service.published_flags() == []
    with Session(service.engine) as session, session.begin():
        add_to_outbox(session, service.outbox, order_event())
    assert service.published_flags() == [False]


async def test_relay_publishes_in_id_order_and_marks_published(
    service: Service, make_bus: MakeBus
) -> None:
    ids = service.change_and_publish(12)
    bus = make_bus()
    relay = OutboxRelay(service.engine, service.outbox, bus, batch=5)
    assert [await relay.relay_once() for _ in range(4)] == [5, 5, 2, 0]
    assert service.published_flags() == [True] * 12
    assert relay.unpublished_count() == 0
    assert await _drain(bus, "g", "c", 12) == ids  # bus order == outbox id order


class CrashAfterPublish(OutboxRelay):
    """A relay that dies after publishing, before it can mark the rows published."""

    def _mark_published(self, ids: list[int]) -> None:
        raise SystemExit("killed between publish and mark")


async def test_crash_between_publish_and_mark_republishes_and_dedupe_processes_once(
    service: Service, make_bus: MakeBus, tmp_path: Path
) -> None:
    ids = service.change_and_publish(5)
    bus = make_bus()
    with pytest.raises(SystemExit):
        await CrashAfterPublish(service.engine, service.outbox, bus).relay_once()
    assert service.published_flags() == [False] * 5  # the crash lost the marks...
    assert await OutboxRelay(service.engine, service.outbox, bus).relay_once() == 5  # ...so again
    store = DedupeStore(tmp_path / "dedupe.db")
    try:
        delivered = await _drain(bus, "g", "c", 10, store=store)
        assert delivered == ids + ids  # duplicates delivered, in order both times
        assert sorted(store.processed()) == sorted(ids)  # processed once each
    finally:
        store.close()


async def test_run_retries_while_the_bus_is_down_then_delivers(
    service: Service, tmp_path: Path
) -> None:
    ids = service.change_and_publish(3)
    dead = RedisStreamBus(f"redis://127.0.0.1:{procs.free_port()}/0")
    relay = OutboxRelay(service.engine, service.outbox, dead, poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)
        assert not task.done()  # failures are logged and retried, not raised
        assert service.published_flags() == [False] * 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dead.close()
    live = SqliteLogBus(tmp_path / "events.db")
    relay = OutboxRelay(service.engine, service.outbox, live, poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        assert await _drain(live, "g", "c", 3) == ids
        deadline = time.monotonic() + 10
        while not all(service.published_flags()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await live.close()
