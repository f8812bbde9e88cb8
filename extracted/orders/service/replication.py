"""Apply the other side's order changes (consumed from the event bus) by the lattice.

Nothing here publishes: a change learned from the other side is never sent back (no echo),
and nothing here touches stock: the side that placed or cancelled the order already reserved
or released it through the stock authority.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from extracted.orders.domain.events import OrderChangedElsewhere
from extracted.orders.service.unit_of_work import StoredAnswer, UnitOfWork


@dataclass(frozen=True)
class Applied:
    """What applying a batch of changes did."""

    changed: int = 0
    unchanged: int = 0
    keys_learned: int = 0


def apply_changes_now(changes: Sequence[OrderChangedElsewhere], uow: UnitOfWork) -> Applied:
    """Merge every change and learn its Idempotency-Key, in ONE transaction (blocking)."""
    if not changes:
        return Applied()
    with uow:
        changed = uow.orders.merge([c.order for c in changes])
        learned = 0
        for change in changes:
            key = change.idempotency
            if key is None:
                continue
            stored_at = change.occurred_at or time.time()
            answer = StoredAnswer(key.key, key.request, key.response, stored_at, change.order.id)
            learned += uow.keys.learn(answer)
        uow.commit()
    return Applied(len(changed), len(changes) - len(changed), learned)


async def apply_changes(changes: Sequence[OrderChangedElsewhere], uow: UnitOfWork) -> Applied:
    """`apply_changes_now` in a worker thread."""
    return await asyncio.to_thread(apply_changes_now, changes, uow)
