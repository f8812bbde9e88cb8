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


class EventParking:
    """Entries that cannot be applied by this schema version (malformed, or an unknown `version`).

    They are parked: logged and counted once, and left UNACKED on the bus, so they stay in the
    group's pending list for a consumer that understands them (nothing is applied or dropped).
    A claim of idle entries may hand them out again; they are recognised and skipped.
    """

    def __init__(self) -> None:
        self.parked_count = 0
        self._parked: set[str] = set()

    def parse(self, entry_id: str, raw: bytes | str | None) -> Event | None:
        """The entry's event, or None when it is parked."""
        if entry_id in self._parked:
            return None
        if raw is None:
            self._park(entry_id, "no event payload", "")
            return None
        try:
            return Event.from_json(raw)
        except ValueError as exc:
            preview = raw[:200] if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
            self._park(entry_id, str(exc), preview)
            return None

    def _park(self, entry_id: str, reason: str, preview: str) -> None:
        self._parked.add(entry_id)
        self.parked_count += 1
        log.error("parked event bus entry %s (%s), left unacked: %r", entry_id, reason, preview)
