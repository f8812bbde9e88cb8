"""Ports: what the use cases need from the outside world (adapters and fakes implement them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Protocol, Self

from extracted.inventory.domain.model import Item
from extracted.inventory.domain.sync import LegacyItem


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
        """Every item (for the drift check)."""
        ...


class UnitOfWork(Protocol):
    """One transaction; `commit` persists what the repository handed out, events included."""

    @property
    def items(self) -> ItemRepository:
        """The items of this transaction."""
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


# A factory: write=True opens a transaction that locks what it reads (reserve, restock, sync).
UnitOfWorkFactory = Callable[[bool], UnitOfWork]


class LegacyInventory(Protocol):
    """The legacy's copy of the inventory, read through its HTTP API."""

    def items(self) -> Iterable[LegacyItem]:
        """Every legacy item with its reservations."""
        ...
