"""Shadow stats in Redis, shared by every gateway replica (redis.asyncio, pipelined writes).

Keys under ``{prefix}:shadow:``: ``routes`` (set of route names) and per route
``{route}:counts`` / ``:fields`` / ``:lat:primary`` / ``:lat:shadow`` (hashes, HINCRBY),
``:noise`` (set) and ``:examples`` (list, newest first, LTRIM to N).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis

from gateway.shadow.stats import EXAMPLES_KEPT, RouteStats

__all__ = ["RedisShadowStore"]


class RedisShadowStore:
    """:class:`~gateway.shadow.store.ShadowStore` on Redis; `prefix` namespaces the keys."""

    def __init__(self, url: str, *, prefix: str = "gateway", examples: int = EXAMPLES_KEPT) -> None:
        self.url = url
        self.prefix = prefix
        self.examples = examples
        self._redis: aioredis.Redis | None = None

    @classmethod
    def from_url(cls, url: str, *, examples: int = EXAMPLES_KEPT) -> RedisShadowStore:
        """Takes ``?prefix=`` off the URL (the rest goes to redis-py unchanged)."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "prefix"), "gateway")
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        return cls(urlunsplit(parts._replace(query=rest)), prefix=prefix, examples=examples)

    def __repr__(self) -> str:
        return f"<RedisShadowStore prefix={self.prefix!r}>"

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, "shadow", *parts))

    async def start(self) -> None:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self.url, socket_timeout=5, socket_connect_timeout=5
            )

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _require(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisShadowStore.start() was not awaited")
        return self._redis

    async def apply(self, deltas: Mapping[str, RouteStats]) -> None:
        pipe = self._require().pipeline(transaction=False)
        queued = False
        for route, d in deltas.items():
            if d.is_empty():
                continue
            queued = True
            pipe.sadd(self._key("routes"), route)
            for suffix, mapping in (
                ("counts", d.counts),
                ("fields", d.fields),
                ("lat:primary", d.primary_latency),
                ("lat:shadow", d.shadow_latency),
            ):
                key = self._key(route, suffix)
                for k, v in mapping.items():
                    pipe.hincrby(key, str(k), v)
            if d.noise_fields:
                pipe.sadd(self._key(route, "noise"), *sorted(d.noise_fields))
            if d.examples:
                key = self._key(route, "examples")
                pipe.lpush(key, *(orjson.dumps(e) for e in d.examples))
                pipe.ltrim(key, 0, self.examples - 1)
        if queued:
            await pipe.execute()

    async def _routes(self, route: str | None) -> list[str]:
        if route is not None:
            return [route]
        names = await self._require().smembers(self._key("routes"))  # type: ignore[misc]
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)

    async def load(self, route: str | None = None) -> list[RouteStats]:
        names = await self._routes(route)
        if not names:
            return []
        pipe = self._require().pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._key(name, "counts"))
            pipe.hgetall(self._key(name, "fields"))
            pipe.smembers(self._key(name, "noise"))
            pipe.hgetall(self._key(name, "lat:primary"))
            pipe.hgetall(self._key(name, "lat:shadow"))
            pipe.lrange(self._key(name, "examples"), 0, self.examples - 1)
        replies: list[Any] = await pipe.execute()
        out = []
        for i, name in enumerate(names):
            counts, fields, noise, lat_p, lat_s, examples = replies[i * 6 : i * 6 + 6]
            s = RouteStats(
                name,
                counts={_s(k): int(v) for k, v in counts.items()},
                fields={_s(k): int(v) for k, v in fields.items()},
                noise_fields={_s(k) for k in noise},
                primary_latency={int(k): int(v) for k, v in lat_p.items()},
                shadow_latency={int(k): int(v) for k, v in lat_s.items()},
                examples=[orjson.loads(e) for e in reversed(examples)],
            )
            if route is None or not s.is_empty():
                out.append(s)
        return out

    async def load_noise(self) -> dict[str, set[str]]:
        names = await self._routes(None)
        if not names:
            return {}
        pipe = self._require().pipeline(transaction=False)
        for name in names:
            pipe.smembers(self._key(name, "noise"))
        replies = await pipe.execute()
        return {n: {_s(k) for k in r} for n, r in zip(names, replies, strict=True) if r}

    async def reset(self, route: str | None = None) -> None:
        client = self._require()
        names = await self._routes(route)
        keys = [
            self._key(n, s)
            for n in names
            for s in ("counts", "fields", "noise", "lat:primary", "lat:shadow", "examples")
        ]
        if keys:
            await client.delete(*keys)
        if names:
            await client.srem(self._key("routes"), *names)  # type: ignore[misc]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
