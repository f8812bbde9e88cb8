"""The event-bus port: what a bus does (`EventBus`) and what a reader gets back (`Delivery`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from extracted.events.schema import Event

log = logging.getLogger("extracted.events")


@dataclass(frozen=True)
class Delivery:
    """One message handed to a consumer: ack `id` once `event` has been processed."""

    id: str
    event: Event


@runtime_checkable
class EventBus(Protocol):
    """An append-only stream read through consumer groups, delivering each entry at least once."""

    async def publish(self, event: Event) -> str:
        """Append `event`; returns the bus message id."""
        ...

    async def read(
        self, group: str, consumer: str, *, count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        """Up to `count` deliveries for `consumer` in `group`, waiting up to `block_ms` for one."""
        ...

    async def ack(self, group: str, delivery_ids: list[str]) -> None:
        """Mark deliveries processed so they are never delivered to `group` again."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class PoisonCounter:
    """Shared bookkeeping for entries that cannot be parsed: logged, acked by the bus, counted."""

    def __init__(self) -> None:
        self.poison_count = 0

    def parse(self, entry_id: str, raw: bytes | str | None) -> Event | None:
        """The entry's event, or None (logged and counted) when it is poison."""
        if raw is None:
            self.poison_count += 1
            log.error("event bus entry %s has no event payload; acking and skipping it", entry_id)
            return None
        try:
            return Event.from_json(raw)
        except ValueError as exc:
            self.poison_count += 1
            preview = raw[:200] if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
            log.error("skipping poison event %s (%s): %r", entry_id, exc, preview)
            return None
