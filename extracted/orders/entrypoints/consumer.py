"""The orders consumer (`sync --follow`): apply the legacy's order events from the bus.

Group "orders" on the shared stream. Each batch read is applied in one database transaction
(lattice merge + learned Idempotency-Keys) and acked only after it committed: a crash before
the ack means a redelivery, which the lattice absorbs. Other types and our own events are
acked and skipped. Bus and database outages are retried with backoff; the process never
exits on its own. Entries the bus cannot parse are parked by the bus itself (left unacked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from extracted.events import Delivery, EventBus
from extracted.orders.adapters.events import order_change
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.events import OrderChangedElsewhere
from extracted.orders.service.replication import apply_changes
from extracted.orders.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

GROUP = "orders"
# Below 5 s on purpose: redis-py 8 applies socket_connect_timeout (5 s in RedisStreamBus) as the
# read timeout too, so a 5 s XREADGROUP BLOCK on an idle stream fails with a timeout.
BLOCK_MS = 2000
BACKOFF_START = 0.2
BACKOFF_MAX = 10.0


def default_consumer_name() -> str:
    """`<hostname>-<pid>`: a restarted process is a new consumer; the bus hands the dead
    one's pending entries over once they have been idle long enough."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class ConsumerStats:
    """Events by outcome since start."""

    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    poison: int = 0
    keys_learned: int = 0


class OrdersConsumer:
    """Reads deliveries for one consumer of group "orders" and applies them."""

    def __init__(
        self,
        bus: EventBus,
        uow: Callable[[], UnitOfWork],
        *,
        consumer: str | None = None,
        group: str = GROUP,
        batch: int = 100,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.bus = bus
        self.uow = uow
        self.consumer = consumer or default_consumer_name()
        self.group = group
        self.batch = batch
        self.block_ms = block_ms
        self.stats = ConsumerStats()
        self.stopping = asyncio.Event()

    async def ensure_group(self) -> None:
        """Create the group before anything else, so nothing published meanwhile is missed."""
        ensure = getattr(self.bus, "ensure_group", None)
        if ensure is not None:  # the SQLite log creates groups at the start of the log itself
            await ensure(self.group)

    async def run(self) -> None:
        """Consume until `stopping` is set; outages are retried with backoff."""
        delay = BACKOFF_START
        while not self.stopping.is_set():
            try:
                deliveries = await self._read_unless_stopped()
            except Exception as exc:  # the bus is down or restarting
                log.warning("event bus unavailable (%s); retrying in %.1fs", exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_START
            if deliveries:
                await self.process(deliveries)

    async def _read_unless_stopped(self) -> list[Delivery]:
        """One blocking read, abandoned when told to stop (what it took stays pending)."""
        read = asyncio.ensure_future(
            self.bus.read(self.group, self.consumer, count=self.batch, block_ms=self.block_ms)
        )
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not read.done():
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read
            return []
        return read.result()

    async def drain(self, block_ms: int = 200) -> ConsumerStats:
        """Consume until a read comes back empty (tests, one-shot tools)."""
        while True:
            deliveries = await self.bus.read(
                self.group, self.consumer, count=self.batch, block_ms=block_ms
            )
            if not deliveries:
                return self.stats
            await self.process(deliveries)

    async def process(self, deliveries: list[Delivery]) -> bool:
        """Apply a batch and ack it after the commit; False when stopped before applying."""
        changes: list[OrderChangedElsewhere] = []
        for delivery in deliveries:
            try:
                change = order_change(delivery.event)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("poison event %s: %r; acking it", delivery.event.event_id, exc)
                self.stats.poison += 1
                continue
            if change is None:
                self.stats.skipped += 1
            else:
                changes.append(change)
        if not await self._apply(changes):
            return False
        await self._ack([d.id for d in deliveries])
        return True

    async def _apply(self, changes: list[OrderChangedElsewhere]) -> bool:
        delay = BACKOFF_START
        while True:
            try:
                applied = await apply_changes(changes, self.uow())
            except DependencyUnavailable as exc:  # the database is down or locked
                if self.stopping.is_set():
                    return False  # left pending: redelivered to whoever reads next
                log.warning("%s; retrying the batch in %.1fs", exc.detail, delay)
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception:
                if len(changes) > 1:
                    # A bug or bad data in one event: apply one at a time to find it.
                    log.exception("batch failed; applying its events one by one")
                    for change in changes:
                        if not await self._apply([change]):
                            return False
                    return True
                log.exception("cannot apply order %s; acking it as poison", changes[0].order.id)
                self.stats.poison += 1
                return True
            self.stats.changed += applied.changed
            self.stats.unchanged += applied.unchanged
            self.stats.keys_learned += applied.keys_learned
            if applied.changed:
                log.info("applied %d order changes from the legacy", applied.changed)
            return True

    async def _ack(self, ids: list[str]) -> None:
        try:
            await self.bus.ack(self.group, ids)
        except Exception as exc:  # a lost ack only means a redelivery, which the lattice absorbs
            log.warning("ack failed (%s); the entries will be redelivered", exc)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
