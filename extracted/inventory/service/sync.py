"""Use cases of the legacy -> new copy: apply a legacy snapshot, and compare both copies."""

from __future__ import annotations

from extracted.inventory.domain.sync import (
    Drift,
    SyncCounts,
    find_drift,
    merge_legacy_item,
    new_item_from_legacy,
)
from extracted.inventory.service.handlers import Clock, utc_now
from extracted.inventory.service.ports import LegacyInventory, UnitOfWorkFactory


def sync_once(
    legacy: LegacyInventory, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now
) -> SyncCounts:
    """Copy the legacy's items and reservations in (rules: extracted.inventory.domain.sync).

    One locking transaction per item, so a concurrent reservation through the API is never
    lost; writes record no domain events, so nothing is published (no echo).
    """
    total = SyncCounts()
    for theirs in legacy.items():
        with uow_factory(True) as uow:
            item = uow.items.get(theirs.sku)
            if item is None:
                item, counts = new_item_from_legacy(theirs, clock())
                uow.items.add(item)
            else:
                counts = merge_legacy_item(item, theirs, clock())
            uow.commit()
        total.add(counts)
    return total


def check_drift(legacy: LegacyInventory, uow_factory: UnitOfWorkFactory) -> list[Drift]:
    """Every record that differs between the legacy's copy and ours."""
    theirs = {item.sku: item for item in legacy.items()}
    with uow_factory(False) as uow:
        ours = {item.sku: item for item in uow.items.all()}
    return find_drift(ours, theirs)
