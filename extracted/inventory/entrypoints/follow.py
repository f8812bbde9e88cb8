"""`sync --follow`: keep the read copy in step by consuming the event bus (group "inventory").

Order of start-up: the consumer group first (nothing published meanwhile is missed), then the
backfill if it is not complete, then the stream. Reads block on the bus, so an idle follower
costs ~0 CPU and never asks the legacy's API. Each event is applied in one transaction and
acked only after it committed; outages (database, bus) are retried with backoff, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from extracted.events import Delivery, EventBus, RedisStreamBus
from extracted.inventory.service.handlers import Clock, utc_now
from extracted.inventory.service.ports import UnitOfWorkFactory
from extracted.inventory.service.read_copy import handle_event
from extracted.stock_authority import Authority

log = logging.getLogger("extracted.inventory.follow")

GROUP = "inventory"
DEFAULT_CONSUMER = "inventory-sync"
# Below RedisStreamBus's 5 s socket_connect_timeout, which redis-py also applies to reads: a
# longer blocking read would time out on an idle stream and look like an outage.
BLOCK_MS = 2000
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class Backoff:
    """Doubling delays between retries, reset after a success."""

    def __init__(self, first: float = MIN_BACKOFF_S, most: float = MAX_BACKOFF_S) -> None:
        self.first, self.most = first, most
        self.delay = first

    def next(self) -> float:
        """The delay to wait now; the next one doubles (up to `most`)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.most)
        return delay

    def reset(self) -> None:
        """Back to the first delay."""
        self.delay = self.first


class Follower:
    """Reads the bus as one consumer of the group and applies each event (see module doc)."""

    def __init__(
        self,
        bus: EventBus,
        uow_factory: UnitOfWorkFactory,
        authority: Authority,
        *,
        consumer: str = DEFAULT_CONSUMER,
        block_ms: int = BLOCK_MS,
        prepare: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
    ) -> None:
        self.bus = bus
        self.uow_factory = uow_factory
        self.authority = authority
        self.consumer = consumer
        self.block_ms = block_ms
        self.prepare = prepare
        self.clock = clock
        self.applied = 0  # events that changed the copy (for tests and logs)

    async def ensure_group(self) -> None:
        """Create the consumer group now, so that events published from here on wait for us.

        The SQLite log creates a group at its first read, from the log's first entry.
        """
        if isinstance(self.bus, RedisStreamBus):
            await self.bus.ensure_group(GROUP)

    async def run(self) -> None:
        """Consume until cancelled."""
        backoff = Backoff()
        while True:
            try:
                deliveries = await self.bus.read(
                    GROUP, self.consumer, count=100, block_ms=self.block_ms
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning("event bus read failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            for delivery in deliveries:
                await self._apply(delivery)

    async def _apply(self, delivery: Delivery) -> None:
        """Apply one delivery until it commits, then ack it (a failed ack only redelivers)."""
        backoff = Backoff()
        while True:
            try:
                outcome = await asyncio.to_thread(self._handle, delivery)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning(
                    "could not apply event %s (%s); retrying in %.1fs",
                    delivery.event.event_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        if outcome in ("applied", "inserted"):
            self.applied += 1
        log.debug("%s v%d: %s", delivery.event.aggregate, delivery.event.aggregate_version, outcome)
        try:
            await self.bus.ack(GROUP, [delivery.id])
        except Exception as exc:  # applied already; a redelivery is stale by its version
            log.warning("ack of %s failed (%s); it will be redelivered", delivery.id, exc)

    def _handle(self, delivery: Delivery) -> str:
        self.prepare()
        return handle_event(delivery.event, self.authority, self.uow_factory, self.clock)
