"""`RedisStreamBus`: the event bus as a Redis stream read through consumer groups.

Delivery order for one `read`: first the consumer's own pending (delivered, never acked) entries,
which is what a restarted consumer with the same name must finish; then entries idle longer than
`claim_idle_ms` in any consumer's pending list (XAUTOCLAIM: the consumer that had them died);
then new entries, blocking up to `block_ms`.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from extracted.events.base import Delivery, EventBus, EventParking, log
from extracted.events.schema import Event

DEFAULT_STREAM = "shop.events"
DEFAULT_CLAIM_IDLE_MS = 30_000
# The longest blocking read the bus allows (a longer `block_ms` is capped to it).
MAX_BLOCK_MS = 20_000

_Entry = tuple[bytes | str, dict[bytes, bytes] | None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[_Entry]:
    """Flatten an XREADGROUP reply (RESP2 list or RESP3 dict) for a single stream."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [e for entries in reply.values() for e in (entries[0] if entries else [])]
    return [e for _stream, entries in reply for e in entries]


class _ReaderState:
    """Per (group, consumer) progress: whether own pending entries are drained, claim cursor."""

    def __init__(self) -> None:
        self.backlog_cursor: str | None = "0"  # None once the consumer's own backlog is drained
        self.claim_cursor = "0-0"
        self.next_claim_at = 0.0


class RedisStreamBus(EventParking, EventBus):
    """An `EventBus` on a Redis stream (XADD, XREADGROUP, XACK, XAUTOCLAIM)."""

    def __init__(
        self,
        url: str,
        stream: str = DEFAULT_STREAM,
        *,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
        maxlen: int | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.stream = stream
        self.claim_idle_ms = claim_idle_ms
        # approximate trimming keeps memory bounded when set; None keeps the whole history
        self.maxlen = maxlen
        # An explicit read timeout well above any block a consumer asks for: redis-py 8 falls back
        # to socket_connect_timeout for reads, which cut an idle 5 s XREADGROUP short.
        self._redis = aioredis.from_url(
            url,
            socket_connect_timeout=5,
            socket_timeout=MAX_BLOCK_MS / 1000 + 10,
            health_check_interval=30,
        )
        self._groups: set[str] = set()
        self._readers: dict[tuple[str, str], _ReaderState] = {}

    async def publish(self, event: Event) -> str:
        """XADD the event's JSON under field `event`; returns the stream entry id."""
        entry_id = await self._redis.xadd(
            self.stream,
            {"event": event.to_json(), "type": event.type},
            maxlen=self.maxlen,
            approximate=True,
        )
        return _text(entry_id)

    async def ensure_group(self, group: str) -> None:
        """Create `group` reading from the start of the stream (MKSTREAM); no-op if it exists."""
        try:
            await self._redis.xgroup_create(self.stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(group)

    async def read(
        self, group: str, consumer: str, *, count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        """Own pending first, then entries claimed from dead consumers, then new entries."""
        if group not in self._groups:
            await self.ensure_group(group)
        try:
            return await self._read(group, consumer, count, block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the stream or group was deleted under us: recreate it and start over
            self._groups.discard(group)
            self._readers.pop((group, consumer), None)
            await self.ensure_group(group)
            return await self._read(group, consumer, count, block_ms)

    async def _read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        state = self._readers.setdefault((group, consumer), _ReaderState())
        if state.backlog_cursor is not None:
            reply = await self._redis.xreadgroup(
                group, consumer, {self.stream: state.backlog_cursor}, count=count
            )
            entries = _entries(reply)
            if entries:
                state.backlog_cursor = _text(entries[-1][0])
                return await self._deliver(group, entries)
            state.backlog_cursor = None
        now = time.monotonic()
        if now >= state.next_claim_at:
            deliveries = await self._claim(group, consumer, count, state)
            if deliveries:
                return deliveries
            state.next_claim_at = now + min(self.claim_idle_ms / 2000, 5.0)
        reply = await self._redis.xreadgroup(
            group,
            consumer,
            {self.stream: ">"},
            count=count,
            block=min(max(block_ms, 0), MAX_BLOCK_MS) or None,
        )
        return await self._deliver(group, _entries(reply))

    async def _claim(
        self, group: str, consumer: str, count: int, state: _ReaderState
    ) -> list[Delivery]:
        reply = await self._redis.xautoclaim(
            self.stream, group, consumer, self.claim_idle_ms, state.claim_cursor, count=count
        )
        next_cursor, entries = _text(reply[0]), reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            # trimmed away while pending: nothing left to deliver, so drop them from the PEL
            await self._redis.xack(self.stream, group, *deleted)
        state.claim_cursor = next_cursor
        if entries:
            log.warning(
                "consumer %s claimed %d idle entries in group %s", consumer, len(entries), group
            )
        return await self._deliver(group, entries)

    async def _deliver(self, group: str, entries: list[_Entry]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            raw = fields.get(b"event") if fields else None
            event = self.parse(entry_id, raw)
            if event is not None:  # parked entries stay pending, unacked
                deliveries.append(Delivery(entry_id, event))
        return deliveries

    async def ack(self, group: str, delivery_ids: list[str]) -> None:
        """XACK the given entry ids."""
        if delivery_ids:
            await self._redis.xack(self.stream, group, *delivery_ids)

    async def pending_count(self, group: str) -> int:
        """How many entries of `group` are delivered but not acked (for tests and health)."""
        info = await self._redis.xpending(self.stream, group)
        return int(info["pending"])

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
