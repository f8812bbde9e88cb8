"""Breaker state shared across gateway processes and replicas through Redis (SPEC §4.3, §2).

The hot path never waits on Redis: every breaker keeps its state in process (gateway.breakers) and
a background task here

- pushes local transitions and admin overrides to a Redis key per breaker and announces them on a
  pub/sub channel. Changes are coalesced in a dict of dirty breakers (never dropped): a breaker that
  changes again before it is pushed is pushed once, with its newest state, and after an outage every
  breaker that changed meanwhile is pushed;
- applies what other replicas announce (pub/sub, so within milliseconds) and re-reads every key once
  per `poll_interval` (a replica that starts, or that missed a message, converges within a second);
- degrades to local state with a logged warning while Redis is unreachable, and resynchronises when
  it is back.

Newest wins, per breaker, by a version stamp: the wall-clock time of a change, kept strictly above
the version this replica already holds (its own or one it adopted), so a change made after adopting
another replica's record is newer than that record even when this host's clock is behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

import orjson
import redis.asyncio as aioredis

from gateway.breakers import Breaker, BreakerRegistry

log = logging.getLogger("gateway.breaker_sync")

# A local change is stamped at least this much above the version it replaces.
VERSION_STEP = 0.001
# Wait between attempts while Redis is unreachable.
RETRY_DELAY = 1.0

Key = tuple[str, str]


class BreakerSync:
    """Pushes and pulls breaker state to/from Redis in the background."""

    def __init__(
        self,
        url: str,
        registry: BreakerRegistry,
        *,
        prefix: str | None = None,
        poll_interval: float = 0.5,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.registry = registry
        self.prefix = prefix or os.environ.get("GATEWAY_REDIS_PREFIX", "gateway")
        self.channel = f"{self.prefix}:breakers"
        self.poll_interval = poll_interval
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._wall = wall  # stamps versions and converts opened_at; injectable for tests
        self._dirty: dict[Key, Breaker] = {}  # changed here, not pushed yet
        self._pending = asyncio.Event()
        self._version: dict[Key, float] = {}  # stamp of the newest state held here, per breaker
        self._tasks: list[asyncio.Task[None]] = []
        self._healthy = True
        self._redis: aioredis.Redis | None = None
        registry.listener = self.enqueue

    def key(self, route: str, upstream: str) -> str:
        return f"{self.prefix}:breaker:{route}:{upstream}"

    # -- called synchronously by the breakers (transitions, admin overrides) ----------------------------
    def enqueue(self, breaker: Breaker) -> None:
        """Mark a local change for pushing; never blocks, never drops (one entry per breaker)."""
        key = (breaker.route, breaker.upstream)
        self._version[key] = max(self._wall(), self._version.get(key, 0.0) + VERSION_STEP)
        self._dirty[key] = breaker
        self._pending.set()

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=10
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._push_loop()),
            loop.create_task(self._poll_loop()),
            loop.create_task(self._subscribe_loop()),
        ]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()

    def _degraded(self, exc: BaseException) -> None:
        if self._healthy:
            log.warning(
                "Redis at %s unreachable (%s): breakers continue on local state", self.url, exc
            )
        self._healthy = False

    def _recovered(self) -> None:
        if not self._healthy:
            log.warning("Redis at %s reachable again: breaker state shared again", self.url)
        self._healthy = True

    # -- push ----------------------------------------------------------------------------------------------
    def _record(self, key: Key, b: Breaker) -> bytes:
        opened_ago = b.opened_ago()
        return orjson.dumps(
            {
                "route": b.route,
                "upstream": b.upstream,
                "state": b.phase.name,
                "forced": b.forced,
                "opened_at": None if opened_ago is None else self._wall() - opened_ago,
                "updated": self._version.get(key, 0.0),
                "replica": self.replica,
            }
        )

    async def _push_loop(self) -> None:
        assert self._redis is not None
        while True:
            await self._pending.wait()
            self._pending.clear()
            batch, self._dirty = self._dirty, {}
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, b in batch.items():
                        payload = self._record(key, b)
                        pipe.set(self.key(*key), payload, ex=86400)
                        pipe.publish(self.channel, payload)
                    await pipe.execute()
                self._recovered()
            except (aioredis.RedisError, OSError) as exc:
                self._degraded(exc)
                for key, b in batch.items():
                    self._dirty.setdefault(
                        key, b
                    )  # still to push; a newer entry is the same breaker
                self._pending.set()
                await asyncio.sleep(RETRY_DELAY)

    # -- pull ----------------------------------------------------------------------------------------------
    def apply(self, raw: bytes | str) -> None:
        """Adopt another replica's record if it is newer than the state this replica holds."""
        try:
            rec = orjson.loads(raw)
            key = (rec["route"], rec["upstream"])
            updated = float(rec.get("updated") or 0.0)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if rec.get("replica") == self.replica:
            return
        forced = rec.get("forced")
        if forced not in (None, "open", "closed"):
            return
        b = self.registry.find(*key)
        if b is None or updated <= self._version.get(key, 0.0):
            return  # unknown here, or not newer (our own newer change is on its way to Redis)
        self._version[key] = updated
        self._dirty.pop(key, None)  # superseded: what Redis holds is newer
        opened_at = rec.get("opened_at")
        opened_ago = self._wall() - opened_at if opened_at else None
        b.apply_remote(rec.get("state", "closed"), forced, opened_ago)

    async def _poll_loop(self) -> None:
        assert self._redis is not None
        while True:
            try:
                breakers = self.registry.all()
                if breakers:
                    values = await self._redis.mget(
                        [self.key(b.route, b.upstream) for b in breakers]
                    )
                    for raw in values:
                        if raw is not None:
                            self.apply(raw)
                self._recovered()
            except (aioredis.RedisError, OSError) as exc:
                self._degraded(exc)
            await asyncio.sleep(self.poll_interval)

    async def _subscribe_loop(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if msg is not None and msg.get("type") == "message":
                            self.apply(msg["data"])
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                self._degraded(exc)
                await asyncio.sleep(RETRY_DELAY)
