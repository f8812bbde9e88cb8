"""Helpers shared by the events tests and their subprocesses."""

from __future__ import annotations

from extracted.events import RedisStreamBus, SqliteLogBus
from extracted.events.base import EventBus


def bus_from_url(url: str, claim_idle_ms: int = 30_000) -> EventBus:
    """`redis://host:port/db#stream` -> RedisStreamBus, `sqlite:///path` -> SqliteLogBus."""
    if url.startswith("redis://"):
        base, _, stream = url.partition("#")
        return RedisStreamBus(base, stream or "shop.events", claim_idle_ms=claim_idle_ms)
    if url.startswith("sqlite:///"):
        return SqliteLogBus(url[len("sqlite:///") :], claim_idle_ms=claim_idle_ms)
    raise ValueError(f"unsupported bus url {url!r}")
