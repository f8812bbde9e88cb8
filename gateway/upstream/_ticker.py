"""A coarse deadline checker shared by a pool's connections."""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["TICK", "Ticker"]

# Timeouts fire at most this late. Good enough for seconds-long upstream timeouts.
TICK = 0.05


class Timed(Protocol):
    deadline: float

    def on_deadline(self) -> None: ...


class Ticker:
    """Calls `on_deadline()` on watched items once their `deadline` (loop time) has passed.

    One periodic callback, running only while something is watched, instead of a TimerHandle
    per request: call_at + cancel costs ~5 us under uvloop, a set add/discard ~0.1 us.
    """

    __slots__ = ("watched", "_handle")

    def __init__(self) -> None:
        self.watched: set[Timed] = set()
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, item: Timed, loop: asyncio.AbstractEventLoop) -> None:
        """Start checking `item.deadline`; unwatch it when the wait ends."""
        self.watched.add(item)
        if self._handle is None:
            self._handle = loop.call_later(TICK, self._tick, loop)

    def unwatch(self, item: Timed) -> None:
        """Stop checking `item` (no-op if it already fired or was never watched)."""
        self.watched.discard(item)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        watched = self.watched
        expired = [item for item in watched if item.deadline <= now]
        for item in expired:
            watched.discard(item)
            item.on_deadline()
        self._handle = loop.call_later(TICK, self._tick, loop) if watched else None
