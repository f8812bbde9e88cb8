"""Where shadow statistics live: one port, an SQL and a Redis adapter, chosen by URL.

The mirror aggregates in memory and calls :meth:`ShadowStore.apply` about once a second,
so a store is never touched per request. Stats are keyed by route name: they survive a
gateway restart and a reload, and with Redis (or PostgreSQL) all replicas share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from gateway.shadow.stats import EXAMPLES_KEPT, RouteStats

__all__ = ["DEFAULT_STORE_URL", "ShadowStore", "store_from_url"]

DEFAULT_STORE_URL = "sqlite:///var/shadow.db"


@runtime_checkable
class ShadowStore(Protocol):
    """The port: open, add deltas, read aggregates and learned noise, close."""

    async def start(self) -> None:
        """Connect and create what is missing (tables); idempotent."""

    async def close(self) -> None:
        """Release connections."""

    async def apply(self, deltas: Mapping[str, RouteStats]) -> None:
        """Add per-route deltas (counts add up, examples append and are trimmed, noise unions)."""

    async def load(self, route: str | None = None) -> list[RouteStats]:
        """Aggregates of every route (or one), sorted by route name."""

    async def load_noise(self) -> dict[str, set[str]]:
        """Learned noise field patterns by route."""

    async def reset(self, route: str | None = None) -> None:
        """Forget the stats of one route, or of all."""


def store_from_url(url: str, *, examples: int = EXAMPLES_KEPT) -> ShadowStore:
    """An unstarted store for ``sqlite:///...``, ``postgresql://...`` or ``redis://...``.

    A Redis URL may carry ``?prefix=name`` (default ``gateway``) to namespace its keys.
    """
    if url.startswith(("redis://", "rediss://", "unix://")):
        from gateway.shadow.redis_store import RedisShadowStore

        return RedisShadowStore.from_url(url, examples=examples)
    from gateway.shadow.sql_store import SqlShadowStore

    return SqlShadowStore(url, examples=examples)
