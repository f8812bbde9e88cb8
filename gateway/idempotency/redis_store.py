"""Idempotency records in Redis, shared by every gateway replica (redis.asyncio, Lua for atomicity).

One string key per client key, ``{prefix}:idempotency:{route}:{sha256 of the key}``, holding
``token \\n F|S \\n fingerprint \\n [answer]`` (see :mod:`gateway.idempotency.core`). The claim is
a SET NX PX done inside a script that returns the existing record when the key is taken, so
"claim or read" is one atomic step; completing and releasing check the claim's token first.
Redis expires in-flight claims after their hold and stored answers after the route's `ttl`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.idempotency.core import Answer, InFlight, Record, Stored, decode_record, encode_record
from gateway.idempotency.store import StoreUnavailable

__all__ = ["RedisStore"]

# KEYS[1] the key; ARGV[1] "token\n" of the claimant, ARGV[2] its in-flight record, ARGV[3] hold ms.
# A claim already ours (a retried call whose first try did run) counts as claimed.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then
  return v
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""
# KEYS[1] the key; ARGV[1] "token\nF\n" (our claim, still in flight), ARGV[2] new value, ARGV[3] ms.
_COMPLETE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

_ERRORS = (aioredis.RedisError, OSError, asyncio.TimeoutError, ValueError)


class RedisStore:
    """:class:`~gateway.idempotency.store.IdempotencyStore` on Redis; `prefix` namespaces keys.

    Short socket timeouts: a keyed request waits at most about `timeout` for an unreachable
    Redis before it is refused with 503 (never forwarded unguarded).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gateway",
        connect_timeout: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Takes ``?prefix=`` off the URL; default env ``GATEWAY_REDIS_PREFIX``, else ``gateway``."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        default = os.environ.get("GATEWAY_REDIS_PREFIX") or "gateway"
        prefix = next((v for k, v in query if k == "prefix"), default)
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        return cls(urlunsplit(parts._replace(query=rest)), prefix=prefix)

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.prefix!r}>"

    def key(self, key: str) -> str:
        return f"{self.prefix}:idempotency:{key}"

    async def start(self) -> None:
        if self._redis is None:
            # One quick retry on a fresh connection (a pooled one Redis closed), no backoff.
            self._redis = aioredis.Redis.from_url(
                self.url,
                socket_connect_timeout=self.connect_timeout,
                socket_timeout=self.timeout,
                retry=Retry(NoBackoff(), 1),
            )
            self._scripts = {
                name: self._redis.register_script(text)
                for name, text in (
                    ("claim", _CLAIM),
                    ("complete", _COMPLETE),
                    ("release", _RELEASE),
                )
            }

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def _call(self, script: str, key: str, *args: Any) -> Any:
        if self._redis is None:
            raise StoreUnavailable("idempotency store is not started")
        try:
            return await self._scripts[script](keys=[self.key(key)], args=list(args))
        except _ERRORS as exc:
            raise StoreUnavailable(f"Redis idempotency store: {exc}") from exc

    async def claim(self, key: str, fingerprint: str, token: str, hold: float) -> Record | None:
        value = encode_record(token, InFlight(fingerprint))
        raw = await self._call("claim", key, token + "\n", value, _ms(hold))
        if raw is None:
            return None
        try:
            return decode_record(raw)[1]
        except (ValueError, KeyError) as exc:
            raise StoreUnavailable(f"Redis idempotency store: unreadable record: {exc}") from exc

    async def complete(
        self, key: str, token: str, fingerprint: str, answer: Answer, ttl: float
    ) -> bool:
        value = encode_record(token, Stored(fingerprint, answer))
        done = await self._call("complete", key, token + "\nF\n", value, _ms(ttl))
        return bool(done)

    async def release(self, key: str, token: str) -> bool:
        return bool(await self._call("release", key, token + "\nF\n"))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
