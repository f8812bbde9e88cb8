"""The one-shot backfill: copy the legacy's items that are missing here, page by page, resumably.

Progress (`sync_state` row "backfill": the last sku, the offset, the complete flag) is saved in
the transaction that writes the page, so a crash or an outage resumes at the first page not
written; re-running a page is harmless because existing items are never touched (see
extracted.inventory.domain.backfill). Nothing written here is published (no echo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from extracted.inventory.domain.backfill import BackfillCounts, Progress, new_item
from extracted.inventory.service.handlers import Clock, utc_now
from extracted.inventory.service.ports import LegacyInventory, UnitOfWorkFactory

JOB = "backfill"


@dataclass
class BackfillResult:
    """What the run did, and where the job stands now."""

    counts: BackfillCounts = field(default_factory=BackfillCounts)
    progress: Progress = field(default_factory=Progress)
    already_complete: bool = False


def backfill_progress(uow_factory: UnitOfWorkFactory) -> Progress:
    """Where the backfill stands."""
    with uow_factory(False) as uow:
        return uow.sync_state.get(JOB)


def backfill(
    legacy: LegacyInventory,
    uow_factory: UnitOfWorkFactory,
    clock: Clock = utc_now,
    on_page: Callable[[BackfillResult, int], None] | None = None,
) -> BackfillResult:
    """Run (or resume) the backfill to its end; raises what the legacy or the database raise.

    `on_page(result, total)` is called after each page is committed (progress logging).
    """
    result = BackfillResult(progress=backfill_progress(uow_factory))
    if result.progress.complete:
        result.already_complete = True
        return result
    while True:
        states, total = legacy.item_page(result.progress.position)
        last = result.progress.cursor
        page = BackfillCounts()
        with uow_factory(True) as uow:
            for state in states:
                # A page re-read after items were added before the cursor repeats a few skus.
                if last is not None and state.sku <= last:
                    continue
                if uow.items.get(state.sku) is not None:
                    page.items_existing += 1
                    continue
                uow.items.add(new_item(state, clock()))
                page.items_created += 1
                page.reservations_created += len(state.reservations)
            position = result.progress.position + len(states)
            progress = Progress(
                cursor=states[-1].sku if states else last,
                position=position,
                complete=not states or position >= total,
            )
            # Another backfill (serve's and sync --follow's may run at once) got further.
            saved = uow.sync_state.get(JOB)
            if saved.complete or saved.position > progress.position:
                progress = saved
            uow.sync_state.save(JOB, progress, clock())
            uow.commit()
        result.counts.add(page)
        result.progress = progress
        if on_page is not None:
            on_page(result, total)
        if progress.complete:
            return result
