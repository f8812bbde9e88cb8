"""Fixtures: the same bus semantics tests run on a real Redis stream and on the SQLite log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import redis

from extracted.events.base import EventBus
from tests.extracted.events.support import bus_from_url


@pytest.fixture(params=["sqlite", "redis"])
def bus_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh bus: a unique Redis stream (deleted afterwards) or a SQLite log in tmp_path."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url = request.getfixturevalue("redis_url")
    stream = f"{request.getfixturevalue('redis_prefix')}:shop.events"

    def cleanup() -> None:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.delete(stream)
        client.close()

    request.addfinalizer(cleanup)
    return f"{url}#{stream}"


@pytest.fixture
async def make_bus(bus_url: str) -> AsyncIterator[Callable[..., EventBus]]:
    """Factory of bus clients on the same stream (as separate processes would have), all closed."""
    made: list[EventBus] = []

    def make(claim_idle_ms: int = 30_000) -> EventBus:
        bus = bus_from_url(bus_url, claim_idle_ms=claim_idle_ms)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()
