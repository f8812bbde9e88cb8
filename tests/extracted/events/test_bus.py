"""Bus semantics, run against a real Redis stream and the SQLite log alike (see conftest)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from extracted.events.base import EventBus
from tests.extracted.events.dedupe import DedupeStore
from tests.extracted.events.factories import numbered_events, order_event
from tests.support import procs

MakeBus = Callable[..., EventBus]


async def _publish(bus: EventBus, n: int) -> list[str]:
    events = numbered_events(n)
    for event in events:
        await bus.publish(event)
    return [e.event_id for e in events]


async def _drain(
    bus: EventBus,
    group: str,
    consumer: str,
    want: int,
    within: float = 15.0,
    store: DedupeStore | None = None,
) -> list[str]:
    """Read and ack until `want` deliveries arrived (or fail after `timeout`)."""
    got: list[str] = []
    deadline = time.monotonic() + within
    while len(got) < want:
        assert time.monotonic() < deadline, f"only {len(got)} of {want} deliveries arrived"
        batch = await bus.read(group, consumer, count=7, block_ms=100)
        for d in batch:
            if store is not None:
                store.process(d.event)
            got.append(d.event.event_id)
        await bus.ack(group, [d.id for d in batch])
    return got


async def test_publish_read_ack(make_bus: MakeBus) -> None:
    bus = make_bus()
    ids = await _publish(bus, 3)
    deliveries = await bus.read("g", "c1", count=10, block_ms=100)
    assert [d.event.event_id for d in deliveries] == ids
    assert len({d.id for d in deliveries}) == 3
    assert await bus.pending_count("g") == 3  # type: ignore[attr-defined]
    await bus.ack("g", [d.id for d in deliveries])
    assert await bus.pending_count("g") == 0  # type: ignore[attr-defined]
    assert await bus.read("g", "c1", block_ms=50) == []


async def test_first_read_creates_the_group_and_blocks_until_timeout(make_bus: MakeBus) -> None:
    bus = make_bus()
    started = time.monotonic()
    assert await bus.read("g", "c1", block_ms=300) == []
    assert time.monotonic() - started >= 0.25


async def test_blocking_read_wakes_up_for_a_new_event(make_bus: MakeBus) -> None:
    reader, writer = make_bus(), make_bus()
    await reader.read("g", "c1", block_ms=0)  # creates the group before the publish

    async def publish_later() -> str:
        await asyncio.sleep(0.2)
        event = order_event()
        await writer.publish(event)
        return event.event_id

    task = asyncio.create_task(publish_later())
    deliveries = await reader.read("g", "c1", block_ms=5000)
    assert [d.event.event_id for d in deliveries] == [await task]


async def test_every_group_gets_every_event(make_bus: MakeBus) -> None:
    bus = make_bus()
    ids = await _publish(bus, 5)
    assert await _drain(bus, "legacy", "a", 5) == ids
    assert await _drain(bus, "audit", "a", 5) == ids


async def test_two_consumers_share_the_work(make_bus: MakeBus) -> None:
    bus1, bus2 = make_bus(), make_bus()
    ids = await _publish(bus1, 20)
    got: dict[str, list[str]] = {"c1": [], "c2": []}
    for _round in range(2):
        for bus, name in ((bus1, "c1"), (bus2, "c2")):
            batch = await bus.read("g", name, count=5, block_ms=100)
            got[name].extend(d.event.event_id for d in batch)
            await bus.ack("g", [d.id for d in batch])
    assert got["c1"] == ids[0:5] + ids[10:15]
    assert got["c2"] == ids[5:10] + ids[15:20]


async def test_concurrent_consumers_never_get_the_same_entry(make_bus: MakeBus) -> None:
    bus1, bus2 = make_bus(), make_bus()
    ids = await _publish(bus1, 40)
    got: list[str] = []

    async def consume(bus: EventBus, name: str) -> None:
        deadline = time.monotonic() + 15
        while len(got) < 40 and time.monotonic() < deadline:
            batch = await bus.read("g", name, count=3, block_ms=50)
            got.extend(d.event.event_id for d in batch)
            await bus.ack("g", [d.id for d in batch])

    await asyncio.gather(consume(bus1, "c1"), consume(bus2, "c2"))
    assert sorted(got) == sorted(ids)  # each delivered exactly once, none lost


async def test_restarted_consumer_first_rereads_its_own_pending(make_bus: MakeBus) -> None:
    first = make_bus()
    ids = await _publish(first, 6)
    unacked = await first.read("g", "c1", count=4, block_ms=100)
    assert [d.event.event_id for d in unacked] == ids[:4]
    await first.close()
    restarted = make_bus()  # same consumer name, fresh process state
    again = await restarted.read("g", "c1", count=10, block_ms=100)
    assert [d.event.event_id for d in again] == ids[:4]
    await restarted.ack("g", [d.id for d in again])
    rest = await restarted.read("g", "c1", count=10, block_ms=100)
    assert [d.event.event_id for d in rest] == ids[4:]


async def test_idle_entries_of_a_dead_consumer_are_claimed(make_bus: MakeBus) -> None:
    dead = make_bus()
    ids = await _publish(dead, 3)
    assert len(await dead.read("g", "dead", count=3, block_ms=100)) == 3
    survivor = make_bus(claim_idle_ms=300)
    assert await survivor.read("g", "alive", block_ms=50) == []  # not idle long enough yet
    got = await _drain(survivor, "g", "alive", 3, within=10)
    assert got == ids
    assert await survivor.pending_count("g") == 0  # type: ignore[attr-defined]


def _append_raw(bus_url: str, payload: bytes) -> None:
    """Put a raw (unparseable) entry on the bus behind the adapter's back."""
    if bus_url.startswith("sqlite:///"):
        with sqlite3.connect(bus_url[len("sqlite:///") :]) as conn:
            conn.execute("INSERT INTO log (event) VALUES (?)", (payload.decode(),))
    else:
        base, _, stream = bus_url.partition("#")
        client = redis.Redis.from_url(base)
        client.xadd(stream, {"event": payload})
        client.close()


async def test_malformed_and_unknown_version_entries_are_parked_unacked(
    make_bus: MakeBus, bus_url: str
) -> None:
    bus = make_bus()
    await bus.read("g", "c1", block_ms=0)
    _append_raw(bus_url, b"{not json")
    unknown = order_event().to_json().replace(b'"version":2', b'"version":99')
    assert unknown != order_event().to_json()
    _append_raw(bus_url, unknown)
    good = order_event(1_000_000_077)
    await bus.publish(good)
    got = await _drain(bus, "g", "c1", 1)
    assert got == [good.event_id]
    assert bus.parked_count == 2  # type: ignore[attr-defined]
    # parked, not dropped: both stay pending for a consumer that understands them
    assert await bus.pending_count("g") == 2  # type: ignore[attr-defined]
    assert await bus.read("g", "c1", block_ms=50) == []
    # a restarted consumer is handed them again, parks them again and applies nothing
    again = make_bus()
    assert await again.read("g", "c1", block_ms=50) == []
    assert again.parked_count == 2  # type: ignore[attr-defined]
    assert await again.pending_count("g") == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("same_name", [True, False], ids=["restart", "takeover"])
async def test_sigkilled_consumer_mid_batch_is_processed_exactly_once(
    make_bus: MakeBus, bus_url: str, tmp_path: Path, same_name: bool
) -> None:
    bus = make_bus()
    ids = await _publish(bus, 10)
    dedupe_path = tmp_path / "dedupe.db"
    worker = procs.start(
        [
            procs.PYTHON,
            "-m",
            "tests.extracted.events.crash_worker",
            bus_url,
            "g",
            "w1",
            "10",
            "4",
            str(dedupe_path),
        ],
        log_dir=tmp_path,
        name="crash_worker",
    )
    try:
        deadline = time.monotonic() + 30
        while "READY" not in worker.log():
            assert worker.popen.poll() is None, worker.log()
            assert time.monotonic() < deadline, worker.log()
            await asyncio.sleep(0.05)
        assert "READY 10 4" in worker.log()
    finally:
        worker.kill()  # SIGKILL: nothing acked, 6 read but never processed
    store = DedupeStore(dedupe_path)
    try:
        assert len(store.processed()) == 4
        survivor = make_bus(claim_idle_ms=300)
        await _drain(survivor, "g", "w1" if same_name else "w2", 10, store=store)
        assert sorted(store.processed()) == sorted(ids)  # every event processed exactly once
        assert store.attempts() == 14  # the 4 processed ones were delivered twice
        assert await survivor.pending_count("g") == 0  # type: ignore[attr-defined]
    finally:
        store.close()


async def test_an_idle_blocking_read_longer_than_the_connect_timeout_returns_empty(
    make_bus: MakeBus,
) -> None:
    # Regression: redis-py 8 used the 5 s connect timeout as the read timeout, so an idle
    # consumer blocking 6 s got a TimeoutError (logged as an outage every few seconds).
    bus = make_bus()
    started = time.monotonic()
    assert await bus.read("g", "idle", block_ms=6000) == []
    assert time.monotonic() - started >= 5.5
