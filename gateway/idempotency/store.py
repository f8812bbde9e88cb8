"""Where idempotency records live: one port, three adapters (memory, SQLite, Redis), chosen by URL.

Every operation is atomic on its own and names the claim it acts on by a random `token`, so a
late answer to a claim that expired and was taken over by another request changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from gateway.idempotency.core import Answer, InFlight, Record, Stored

__all__ = [
    "IdempotencyStore",
    "MemoryStore",
    "StoreUnavailable",
    "open_store",
    "store_url",
]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SQLITE_FILE = "idempotency.db"


class StoreUnavailable(Exception):
    """The store could not be reached or failed: a keyed request must not be forwarded."""


@runtime_checkable
class IdempotencyStore(Protocol):
    """The port. Raises StoreUnavailable on any I/O failure."""

    async def start(self) -> None:
        """Prepare clients; must not need the store to be reachable yet."""

    async def close(self) -> None:
        """Release connections and threads."""

    async def claim(self, key: str, fingerprint: str, token: str, hold: float) -> Record | None:
        """Atomically: with no live record under `key`, record an in-flight claim owned by `token`
        for `hold` seconds and return None; otherwise return the live record untouched."""

    async def complete(
        self, key: str, token: str, fingerprint: str, answer: Answer, ttl: float
    ) -> bool:
        """Turn `token`'s in-flight claim into a stored answer kept `ttl` seconds; False when the
        claim is no longer there (it expired and the key moved on)."""

    async def release(self, key: str, token: str) -> bool:
        """Drop `token`'s in-flight claim so a retry is forwarded; False when it is not there."""


class MemoryStore:
    """One process's dict: for tests and ``memory://`` (not shared by workers or replicas).

    It is also the executable model the SQL and Redis adapters are tested against.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._items: dict[str, tuple[str, Record, float]] = {}

    def __repr__(self) -> str:
        return "<MemoryStore>"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._items.clear()

    def _live(self, key: str) -> tuple[str, Record, float] | None:
        item = self._items.get(key)
        if item is not None and item[2] <= self.clock():
            del self._items[key]
            return None
        return item

    async def claim(self, key: str, fingerprint: str, token: str, hold: float) -> Record | None:
        item = self._live(key)
        if item is not None and item[0] != token:
            return item[1]
        self._items[key] = (token, InFlight(fingerprint), self.clock() + hold)
        return None

    async def complete(
        self, key: str, token: str, fingerprint: str, answer: Answer, ttl: float
    ) -> bool:
        item = self._live(key)
        if item is None or item[0] != token or not isinstance(item[1], InFlight):
            return False
        self._items[key] = (token, Stored(fingerprint, answer), self.clock() + ttl)
        return True

    async def release(self, key: str, token: str) -> bool:
        item = self._live(key)
        if item is None or item[0] != token or not isinstance(item[1], InFlight):
            return False
        del self._items[key]
        return True


def store_url(
    shadow_store: str,
    *,
    explicit: str | None = None,
    redis_url: str | None = None,
    base_dir: Path | None = None,
) -> str:
    """Which store a gateway uses, in order: `explicit` (env ``IDEMPOTENCY_STORE``); `redis_url`
    (env ``REDIS_URL``: shared by replicas); a Redis shadow store; next to a SQLite shadow store,
    its sibling file ``idempotency.db``; else ``var/idempotency.db`` under `base_dir`."""
    if explicit:
        return explicit
    if redis_url:
        return redis_url
    if shadow_store.startswith(_REDIS_SCHEMES):
        return shadow_store
    prefix = "sqlite:///"
    if shadow_store.startswith(prefix):
        path = shadow_store[len(prefix) :]
        if not path or path.startswith(":memory:"):
            return "memory://"
        return prefix + str(Path(path).with_name(SQLITE_FILE))
    return prefix + str((base_dir or Path.cwd()) / "var" / SQLITE_FILE)


def open_store(url: str) -> IdempotencyStore:
    """An unstarted store for ``sqlite:///path``, ``redis://...`` (``?prefix=`` namespaces the
    keys; default env ``GATEWAY_REDIS_PREFIX`` or ``gateway``) or ``memory://``."""
    if url.startswith(_REDIS_SCHEMES):
        from gateway.idempotency.redis_store import RedisStore

        return RedisStore.from_url(url)
    if url.startswith("sqlite:///"):
        from gateway.idempotency.sqlite_store import SqliteStore

        return SqliteStore(url[len("sqlite:///") :])
    if url == "memory://":
        return MemoryStore()
    raise ValueError(f"unsupported idempotency store URL {url!r} (sqlite:///, redis://, memory://)")
