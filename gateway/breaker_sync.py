"""Breaker state shared across gateway processes and replicas through Redis (SPEC §4.3, §2).

The hot path never waits on Redis: every breaker keeps its state in a local pybreaker storage
(`SharedStateStorage`, pybreaker's storage interface) and a background task here

- pushes local transitions and admin overrides (queued without blocking) to a Redis hash per breaker and
  announces them on a pub/sub channel;
- applies what other replicas announce (pub/sub, so within milliseconds) and re-reads every hash once per
  `poll_interval` (a replica that starts, or that missed a message, converges within a second);
- degrades to local state with a logged warning while Redis is unreachable, and resynchronises when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from gateway.breakers import Breaker, BreakerRegistry

log = logging.getLogger("gateway.breaker_sync")


class BreakerSync:
    """Pushes and pulls breaker state to/from Redis in the background."""

    def __init__(
        self,
        url: str,
        registry: BreakerRegistry,
        *,
        prefix: str | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.url = url
        self.registry = registry
        self.prefix = prefix or os.environ.get("GATEWAY_REDIS_PREFIX", "gateway")
        self.channel = f"{self.prefix}:breakers"
        self.poll_interval = poll_interval
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._queue: asyncio.Queue[Breaker] = asyncio.Queue(maxsize=10000)
        self._seen: dict[tuple[str, str], float] = {}  # newest update applied or sent, per breaker
        self._tasks: list[asyncio.Task[None]] = []
        self._healthy = True
        self._redis: aioredis.Redis | None = None
        registry.listener = self.enqueue

    def key(self, route: str, upstream: str) -> str:
        return f"{self.prefix}:breaker:{route}:{upstream}"

    # -- called synchronously from pybreaker listeners / admin -----------------------------------------
    def enqueue(self, breaker: Breaker) -> None:
        """Queue a local change for publishing; never blocks (drops when the queue is full)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(breaker)

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
    def _record(self, b: Breaker) -> dict[str, Any]:
        storage = b.storage
        opened_at = storage.opened_at.timestamp() if storage.opened_at else None
        updated = storage.changed_at or time.time()
        return {
            "state": b.cb.current_state,
            "forced": b.forced,
            "opened_at": opened_at,
            "updated": max(updated, b.forced_at),
            "replica": self.replica,
        }

    async def _push_loop(self) -> None:
        assert self._redis is not None
        while True:
            b = await self._queue.get()
            record = self._record(b)
            self._seen[(b.route, b.upstream)] = record["updated"]
            payload = orjson.dumps({"route": b.route, "upstream": b.upstream, **record})
            while True:
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.set(self.key(b.route, b.upstream), payload, ex=86400)
                        pipe.publish(self.channel, payload)
                        await pipe.execute()
                    self._recovered()
                    break
                except (aioredis.RedisError, OSError) as exc:
                    self._degraded(exc)
                    await asyncio.sleep(1.0)
                    if not self._queue.empty():
                        break  # a newer change supersedes this one once Redis is back

    # -- pull ----------------------------------------------------------------------------------------------
    def apply(self, raw: bytes | str) -> None:
        """Adopt another replica's record if it is newer than what this replica last saw."""
        try:
            rec = orjson.loads(raw)
            route, upstream = rec["route"], rec["upstream"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if rec.get("replica") == self.replica:
            return
        b = self.registry.find(route, upstream)
        if b is None:
            return
        key = (route, upstream)
        updated = float(rec.get("updated") or 0.0)
        if updated <= self._seen.get(key, 0.0):
            return
        if updated <= max(b.storage.changed_at, b.forced_at):
            return  # our own newer change wins; it is on its way to Redis
        self._seen[key] = updated
        opened_at = rec.get("opened_at")
        opened_ago = time.time() - opened_at if opened_at else None
        with b.storage.remote(updated):
            b.apply_remote(rec.get("state", "closed"), rec.get("forced"), opened_ago)
        b.forced_at = min(b.forced_at, updated)

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
                await asyncio.sleep(1.0)
