"""The event bus: the port, its two adapters, and the choice between them from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from extracted.events.base import Delivery, EventBus
from extracted.events.redis_bus import DEFAULT_STREAM, RedisStreamBus
from extracted.events.sqlite_bus import DEFAULT_PATH, SqliteLogBus

__all__ = ["Delivery", "EventBus", "RedisStreamBus", "SqliteLogBus", "bus_from_env"]


def bus_from_env(env: Mapping[str, str] = os.environ) -> EventBus:
    """REDIS_URL set -> RedisStreamBus (stream EVENTS_STREAM or shop.events); else SqliteLogBus.

    The SQLite log lives at EVENTS_DB (default var/events.db). EVENTS_CLAIM_IDLE_MS sets how long
    an un-acked entry stays with its consumer before another consumer may claim it.
    """
    claim = env.get("EVENTS_CLAIM_IDLE_MS")
    kwargs = {"claim_idle_ms": int(claim)} if claim else {}
    redis_url = env.get("REDIS_URL")
    if redis_url:
        return RedisStreamBus(redis_url, env.get("EVENTS_STREAM") or DEFAULT_STREAM, **kwargs)
    return SqliteLogBus(env.get("EVENTS_DB") or DEFAULT_PATH, **kwargs)
