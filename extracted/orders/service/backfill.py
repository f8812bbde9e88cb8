"""The backfill: copy the legacy's existing orders through its HTTP API, paged and resumable.

Each page is merged (lattice) and the cursor advanced in ONE transaction, so an interrupted
run resumes at the first page it did not commit, and a rerun changes nothing. Once the last
page is in, the job is marked complete; from then on the event consumer keeps the copy in
step, at a cost per change rather than per table size.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import Order
from extracted.orders.service.ports import LegacyOrdersPort
from extracted.orders.service.unit_of_work import SyncProgress, UnitOfWork

log = logging.getLogger(__name__)

#: The `sync_state` row of this job.
JOB = "legacy-orders"
PAGE_SIZE = 500
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0


@dataclass(frozen=True)
class BackfillReport:
    """What a run did: where it started, orders read and changed, and the legacy's total."""

    started_at: int
    read: int
    changed: int
    total: int
    complete: bool
    already_complete: bool = False

    def summary(self) -> str:
        """One line, as the CLI prints it."""
        if self.already_complete:
            return "backfill already complete"
        return (
            f"backfill complete: read={self.read} changed={self.changed} "
            f"total={self.total} resumed_at={self.started_at}"
        )


async def progress(uow: UnitOfWork) -> SyncProgress:
    """The backfill's recorded progress."""

    def tx() -> SyncProgress:
        with uow:
            return uow.sync_state.get(JOB)

    return await asyncio.to_thread(tx)


async def restart(uow: UnitOfWork) -> None:
    """Forget the backfill's progress, so the next run reads every page again (harmless)."""

    def tx() -> None:
        with uow:
            uow.sync_state.reset(JOB)
            uow.commit()

    await asyncio.to_thread(tx)


async def backfill(
    uow: UnitOfWork, legacy: LegacyOrdersPort, *, page_size: int = PAGE_SIZE
) -> BackfillReport:
    """Run the backfill from its cursor to the end. Raises DependencyUnavailable when the
    legacy or the database fails; the pages committed so far are kept."""
    start = await progress(uow)
    if start.complete:
        return BackfillReport(start.cursor, 0, 0, start.cursor, True, already_complete=True)
    cursor, read, changed = start.cursor, 0, 0
    while True:
        page = await legacy.page(cursor, page_size)
        end = cursor + len(page.orders)
        complete = not page.orders or end >= page.total
        changed += await asyncio.to_thread(_commit_page, uow, page.orders, end, complete)
        read += len(page.orders)
        cursor = end
        log.info("backfill: %d of %d legacy orders", min(cursor, page.total), page.total)
        if complete:
            return BackfillReport(start.cursor, read, changed, page.total, True)


def _commit_page(uow: UnitOfWork, orders: list[Order], cursor: int, complete: bool) -> int:
    with uow:
        changed = uow.orders.merge(orders)
        uow.sync_state.advance(JOB, cursor, complete)
        uow.commit()
    return len(changed)


async def backfill_until_complete(
    uow: UnitOfWork,
    legacy: LegacyOrdersPort,
    *,
    page_size: int = PAGE_SIZE,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> BackfillReport:
    """`backfill`, retried with backoff while the legacy or the database is down."""
    delay = BACKOFF_START
    while True:
        try:
            return await backfill(uow, legacy, page_size=page_size)
        except DependencyUnavailable as exc:
            log.warning("backfill: %s; retrying in %.1fs", exc.detail, delay)
        await sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)
