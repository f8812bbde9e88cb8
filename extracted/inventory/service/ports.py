"""Ports: what the use cases need from the outside world (adapters and fakes implement them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from extracted.inventory.domain.backfill import Progress
from extracted.inventory.domain.model import Item, ItemState


class ItemRepository(Protocol):
    """Items with their reservations; `get` locks the item in a writing unit of work."""

    def get(self, sku: str) -> Item | None:
        """The item, or None when no item has this sku."""
        ...

    def add(self, item: Item) -> None:
        """Store a new item."""
        ...

    def page(self, limit: int, offset: int) -> tuple[list[Item], int]:
        """Items ordered by sku, and how many items there are in all."""
        ...

    def all(self) -> list[Item]:
        """Every item (for the checks)."""
        ...


class SyncStateRepository(Protocol):
    """Progress of resumable jobs, saved in the transaction of the work it records."""

    def get(self, name: str) -> Progress:
        """The job's progress (a fresh one when it never ran)."""
        ...

    def save(self, name: str, progress: Progress, now: datetime) -> None:
        """Record the job's progress."""
        ...


class UnitOfWork(Protocol):
    """One transaction; `commit` persists what the repository handed out, events included."""

    @property
    def items(self) -> ItemRepository:
        """The items of this transaction."""
        ...

    @property
    def sync_state(self) -> SyncStateRepository:
        """The jobs' progress in this transaction."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Persist every change and the events recorded by the items it handed out."""
        ...

    def rollback(self) -> None:
        """Discard everything."""
        ...


# A factory: write=True opens a transaction that locks what it reads (writes, backfill, copy).
UnitOfWorkFactory = Callable[[bool], UnitOfWork]


class LegacyInventory(Protocol):
    """The legacy's copy of the inventory, read through its HTTP API (never its database)."""

    def item_page(self, offset: int) -> tuple[list[ItemState], int]:
        """One page of items by sku from `offset` (each with all its reservations), and the
        legacy's total number of items."""
        ...

    def items(self) -> Iterable[ItemState]:
        """Every legacy item with its reservations."""
        ...

    def orders(self) -> list[dict[str, Any]]:
        """Every order the legacy holds, as its API renders them."""
        ...


@dataclass(frozen=True)
class StockAnswer:
    """The answer of a stock write: HTTP status, JSON body (None: no body), the item's version.

    The version goes out as `X-Stock-Version`; None when the authority did not send one.
    """

    status: int
    body: bytes | None
    version: int | None


class StockPort(Protocol):
    """The stock writes of the contract, made where the stock authority is (branch by
    abstraction: our own tables, or the legacy's HTTP API while it is the authority)."""

    async def reserve(self, sku: str, order_id: int, qty: int) -> StockAnswer:
        """POST /api/inventory/{sku}/reservations."""
        ...

    async def release(self, sku: str, order_id: int) -> StockAnswer:
        """DELETE /api/inventory/{sku}/reservations/{order_id}."""
        ...

    async def restock(self, sku: str, qty: int) -> StockAnswer:
        """POST /api/inventory/{sku}/restock."""
        ...
