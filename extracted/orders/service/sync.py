"""Legacy -> new sync: plan the differences (pure), apply them, and the drift check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extracted.orders.domain.model import NEW_ID_BASE, Order, Origin, same_content
from extracted.orders.service.unit_of_work import UnitOfWork


@dataclass
class SyncPlan:
    """What a sync run writes: new and changed legacy orders; the rest is counted."""

    create: list[Order] = field(default_factory=list)
    update: list[Order] = field(default_factory=list)
    unchanged: int = 0
    skipped: int = 0  # ids of the new services, or last written by orders itself

    def summary(self) -> str:
        """One line of counts, as the CLI prints it."""
        return (
            f"created={len(self.create)} updated={len(self.update)} "
            f"unchanged={self.unchanged} skipped={self.skipped}"
        )


def plan_sync(legacy: Iterable[Order], ours: Mapping[int, Order]) -> SyncPlan:
    """Compare the legacy's orders with our copies of the legacy's id range.

    Never touches ids >= NEW_ID_BASE (ours), nor orders this service wrote last (e.g. a
    legacy order cancelled here: the legacy learns of it through the event, not the reverse).
    """
    plan = SyncPlan()
    for order in legacy:
        if order.id >= NEW_ID_BASE:
            plan.skipped += 1
            continue
        mine = ours.get(order.id)
        if mine is None:
            plan.create.append(order)
        elif mine.origin is not Origin.LEGACY:
            plan.skipped += 1
        elif same_content(mine, order):
            plan.unchanged += 1
        else:
            plan.update.append(order)
    return plan


async def load_legacy_range(uow: UnitOfWork) -> dict[int, Order]:
    """Our copies of orders in the legacy's id range."""

    def tx() -> dict[int, Order]:
        with uow:
            return uow.orders.below(NEW_ID_BASE)

    return await asyncio.to_thread(tx)


async def apply_sync(plan: SyncPlan, uow: UnitOfWork) -> None:
    """Write the plan in one transaction, with origin `legacy` and no outbox events."""
    if not plan.create and not plan.update:
        return

    def tx() -> None:
        with uow:
            for order in [*plan.create, *plan.update]:
                uow.orders.put(order)
            uow.commit()

    await asyncio.to_thread(tx)


@dataclass(frozen=True)
class Drift:
    """One order whose two copies differ (None: missing on that side)."""

    order_id: int
    legacy: dict[str, Any] | None
    ours: dict[str, Any] | None


def drift(legacy: Iterable[Order], ours: Iterable[Order]) -> list[Drift]:
    """Every order whose legacy copy and our copy show different JSON, by id."""
    a = {o.id: o.to_json() for o in legacy}
    b = {o.id: o.to_json() for o in ours}
    return [
        Drift(i, a.get(i), b.get(i)) for i in sorted(a.keys() | b.keys()) if a.get(i) != b.get(i)
    ]


async def load_visible(uow: UnitOfWork) -> list[Order]:
    """Every placed/cancelled order of ours."""

    def tx() -> list[Order]:
        with uow:
            return uow.orders.visible()

    return await asyncio.to_thread(tx)
