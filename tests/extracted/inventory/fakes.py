"""In-memory fakes of the inventory's ports, for use-case tests without I/O."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from extracted.inventory.domain.model import DomainEvent, Item
from extracted.inventory.domain.sync import LegacyItem


class FakeItemRepository:
    """Items in a dict; hands out copies so only a commit makes changes visible."""

    def __init__(self, store: dict[str, Item]) -> None:
        self.store = store
        self.seen: dict[str, Item] = {}

    def get(self, sku: str) -> Item | None:
        if sku not in self.seen:
            if sku not in self.store:
                return None
            self.seen[sku] = copy.deepcopy(self.store[sku])
        return self.seen[sku]

    def add(self, item: Item) -> None:
        self.seen[item.sku] = item

    def page(self, limit: int, offset: int) -> tuple[list[Item], int]:
        skus = sorted(self.store)
        return [copy.deepcopy(self.store[s]) for s in skus[offset : offset + limit]], len(skus)

    def all(self) -> list[Item]:
        return [copy.deepcopy(self.store[s]) for s in sorted(self.store)]


class FakeUnitOfWork:
    """Commits copy the seen items back and collect their events as the 'outbox'."""

    def __init__(self, store: dict[str, Item], outbox: list[DomainEvent], write: bool) -> None:
        self.store = store
        self.outbox = outbox
        self.write = write
        self._items = FakeItemRepository(store)
        self.committed = False

    @property
    def items(self) -> FakeItemRepository:
        return self._items

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def commit(self) -> None:
        assert self.write, "a read-only unit of work must not commit"
        for sku, item in self._items.seen.items():
            self.outbox.extend(item.events)
            item.events.clear()
            self.store[sku] = copy.deepcopy(item)
        self.committed = True

    def rollback(self) -> None:
        self._items.seen.clear()


class FakeDatabase:
    """The state behind the fake units of work, and a factory of them."""

    def __init__(self, *items: Item) -> None:
        self.store: dict[str, Item] = {i.sku: i for i in items}
        self.outbox: list[DomainEvent] = []
        self.commits = 0

    def __call__(self, write: bool) -> FakeUnitOfWork:
        db = self

        class Counting(FakeUnitOfWork):
            def commit(self) -> None:
                super().commit()
                db.commits += 1

        return Counting(self.store, self.outbox, write)


class FakeLegacy:
    """A legacy copy in memory."""

    def __init__(self, *items: LegacyItem) -> None:
        self.by_sku = {i.sku: i for i in items}

    def items(self) -> Iterable[LegacyItem]:
        return list(self.by_sku.values())
