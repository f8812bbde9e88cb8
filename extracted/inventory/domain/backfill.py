"""The backfill rule (pure): items missing here are created from the legacy's copy, whole.

An item that exists here is never touched by the backfill: either this service is the stock
authority and owns it, or the legacy is and the event stream keeps it (by version).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from extracted.inventory.domain.model import Item, ItemState, Origin, Reservation


@dataclass(frozen=True)
class Progress:
    """Where a resumable job stands: the last sku done, how many items it read, done or not."""

    cursor: str | None = None
    position: int = 0
    complete: bool = False


@dataclass
class BackfillCounts:
    """What a backfill run did."""

    items_created: int = 0
    items_existing: int = 0
    reservations_created: int = 0

    def add(self, other: BackfillCounts) -> None:
        """Accumulate `other` into self."""
        self.items_created += other.items_created
        self.items_existing += other.items_existing
        self.reservations_created += other.reservations_created

    def summary(self) -> str:
        """One line for the CLI."""
        return (
            f"items: created={self.items_created} existing={self.items_existing}; "
            f"reservations: created={self.reservations_created}"
        )


def new_item(state: ItemState, now: datetime) -> Item:
    """An item we do not hold yet, copied whole from the legacy at an unknown version (0)."""
    item = Item(state.sku, state.name, state.price_cents, state.on_hand, Origin.LEGACY, now)
    for order_id, qty in sorted(state.reservations.items()):
        item.reservations[order_id] = Reservation(state.sku, order_id, qty, Origin.LEGACY, now)
    return item
