"""Use cases of the stock authority (reserve, release, restock) and the reads; each runs in one
unit of work and reports the item's version after it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from extracted.inventory.domain.commands import Release, Reserve, Restock
from extracted.inventory.domain.errors import ItemNotFound
from extracted.inventory.domain.model import Item, Reservation
from extracted.inventory.service.ports import UnitOfWorkFactory

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now as a naive UTC datetime at second precision (how timestamps are stored)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class ReserveResult:
    """The reservation, whether this call created it (201) or repeated it (200), and the item's
    version after the call."""

    reservation: Reservation
    created: bool
    version: int


@dataclass(frozen=True)
class ReleaseResult:
    """Whether a reservation was released, and the item's version after the call."""

    released: bool
    version: int


def reserve(cmd: Reserve, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now) -> ReserveResult:
    """Reserve stock; raises ItemNotFound, ReservationConflict or InsufficientStock."""
    with uow_factory(True) as uow:
        item = _existing(uow.items.get(cmd.sku), cmd.sku)
        reservation, created = item.reserve(cmd.order_id, cmd.qty, clock())
        if created:
            uow.commit()
        return ReserveResult(reservation, created, item.version)


def release(cmd: Release, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now) -> ReleaseResult:
    """Release a reservation (released=False when none existed); raises ItemNotFound."""
    with uow_factory(True) as uow:
        item = _existing(uow.items.get(cmd.sku), cmd.sku)
        released = item.release(cmd.order_id, clock())
        if released:
            uow.commit()
        return ReleaseResult(released, item.version)


def restock(cmd: Restock, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now) -> Item:
    """Add stock and return the item (at its new version); raises ItemNotFound."""
    with uow_factory(True) as uow:
        item = _existing(uow.items.get(cmd.sku), cmd.sku)
        item.restock(cmd.qty, clock())
        uow.commit()
        return item


def get_item(sku: str, uow_factory: UnitOfWorkFactory) -> Item:
    """One item; raises ItemNotFound."""
    with uow_factory(False) as uow:
        return _existing(uow.items.get(sku), sku)


def list_items(limit: int, offset: int, uow_factory: UnitOfWorkFactory) -> tuple[list[Item], int]:
    """A page of items ordered by sku, and the total count."""
    with uow_factory(False) as uow:
        return uow.items.page(limit, offset)


def list_reservations(
    sku: str, limit: int, offset: int, uow_factory: UnitOfWorkFactory
) -> tuple[list[Reservation], int]:
    """A page of the item's reservations ordered by order_id, and their count."""
    with uow_factory(False) as uow:
        item = _existing(uow.items.get(sku), sku)
        ordered = item.sorted_reservations()
        return ordered[offset : offset + limit], len(ordered)


def _existing(item: Item | None, sku: str) -> Item:
    if item is None:
        raise ItemNotFound(sku)
    return item
