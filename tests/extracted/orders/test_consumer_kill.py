"""`sync --follow` SIGKILLed mid-stream, restarted and taken over: nothing ever regresses.

Real processes on a real bus (SQLite log or Redis stream) and a real database (SQLite or
PostgreSQL). While consumers die and others claim their pending entries, every sample of the
database must only move up the lattice, and the end state must equal the model.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from signal import SIGKILL

import sqlalchemy as sa

from extracted.events import order_event
from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.orm import create_tables, order_lines, orders
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.entrypoints.consumer import GROUP
from extracted.orders.service.backfill import JOB
from tests.extracted.events.support import bus_from_url
from tests.extracted.orders.test_consumer import order_json
from tests.support import procs

ORDERS = 2000
TIMEOUT = 90.0


def _bus_env(bus_url: str) -> dict[str, str]:
    if bus_url.startswith("sqlite:///"):
        return {"EVENTS_DB": bus_url[len("sqlite:///") :], "REDIS_URL": ""}
    base, _, stream = bus_url.partition("#")
    return {"REDIS_URL": base, "EVENTS_STREAM": stream}


def _sample(engine: sa.Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {int(i): s for i, s in conn.execute(sa.select(orders.c.id, orders.c.status))}


def _check_monotonic(before: dict[int, str], after: dict[int, str]) -> None:
    for order_id, status in before.items():
        assert order_id in after, f"order {order_id} disappeared"
        if status == "cancelled":
            assert after[order_id] == "cancelled", (
                f"order {order_id} regressed to {after[order_id]}"
            )


def test_killed_and_taken_over_consumers_never_regress(
    tmp_path: Path, orders_db_url: str, bus_url: str
) -> None:
    engine = make_engine(orders_db_url)
    create_tables(engine)
    with SqlUnitOfWork(engine) as uow:  # the backfill is done: only events matter here
        uow.sync_state.advance(JOB, 0, True)
        uow.commit()
    rng = random.Random(9)
    cancelled = {i for i in range(1, ORDERS + 1) if i % 3 == 0}
    events = [order_event(order_json(i), "legacy") for i in range(1, ORDERS + 1)]
    events += [order_event(order_json(i, "cancelled"), "legacy") for i in sorted(cancelled)]
    # Late duplicates of placed after the cancels, in random order (redelivery, reordering).
    events += [order_event(order_json(i), "legacy") for i in rng.sample(range(1, ORDERS + 1), 500)]

    async def publish() -> None:
        bus = bus_from_url(bus_url)
        try:
            for event in events:
                await bus.publish(event)
        finally:
            await bus.close()

    asyncio.run(publish())
    env = {
        "ORDERS_DATABASE_URL": orders_db_url,
        "LEGACY_URL": f"http://127.0.0.1:{procs.free_port()}",  # never needed: backfill done
        "EVENTS_CLAIM_IDLE_MS": "500",
        **_bus_env(bus_url),
    }

    def follower(name: str) -> procs.Proc:
        cmd = [procs.PYTHON, "-m", "extracted.orders", "sync", "--follow", "--consumer", name]
        return procs.start(cmd, log_dir=tmp_path, name=f"follow-{name}", env=env)

    seen: dict[int, str] = {}

    def watch(done: Callable[[dict[int, str]], bool]) -> dict[int, str]:
        nonlocal seen
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            now = _sample(engine)
            _check_monotonic(seen, now)
            seen = now
            if done(now):
                return now
            time.sleep(0.02)
        raise AssertionError(f"not reached within {TIMEOUT}s; have {len(seen)} orders")

    try:
        # A dies mid-stream; B (another name) takes its pending entries over and dies too;
        # A comes back under its old name and finishes everything.
        a = follower("a")
        try:
            watch(lambda s: len(s) >= ORDERS // 4)
        finally:
            a.signal(SIGKILL)
            a.popen.wait(10)
        progress_a = len(seen)
        assert progress_a < ORDERS, "A finished before it was killed: nothing was tested"
        b = follower("b")
        try:
            watch(lambda s: len(s) >= min(ORDERS, progress_a + ORDERS // 4))
        finally:
            b.signal(SIGKILL)
            b.popen.wait(10)
        a2 = follower("a")
        try:
            final = watch(
                lambda s: (
                    len(s) == ORDERS and all((s[i] == "cancelled") == (i in cancelled) for i in s)
                ),
            )

            async def drained() -> int:
                bus = bus_from_url(bus_url)
                try:
                    for _ in range(int(TIMEOUT / 0.2)):
                        if not await bus.pending_count(GROUP):  # type: ignore[attr-defined]
                            return 0
                        await asyncio.sleep(0.2)
                    return int(await bus.pending_count(GROUP))  # type: ignore[attr-defined]
                finally:
                    await bus.close()

            assert asyncio.run(drained()) == 0, a2.log()[-3000:]
        finally:
            a2.stop()
        assert a2.popen.returncode == 0  # SIGTERM: a clean stop
        assert final == {
            i: "cancelled" if i in cancelled else "placed" for i in range(1, ORDERS + 1)
        }
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(order_lines)).scalar()
        assert count == ORDERS  # every order exactly once, with its one line
    finally:
        engine.dispose()
