"""In-memory fakes of the inventory's ports, for use-case tests without I/O."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from extracted.inventory.domain.backfill import Progress
from extracted.inventory.domain.model import DomainEvent, Item, ItemState


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


class FakeSyncState:
    """Progress rows in a dict, written at commit."""

    def __init__(self, rows: dict[str, Progress]) -> None:
        self.rows = rows
        self.pending: dict[str, Progress] = {}

    def get(self, name: str) -> Progress:
        return self.pending.get(name) or self.rows.get(name) or Progress()

    def save(self, name: str, progress: Progress, now: datetime) -> None:
        self.pending[name] = progress


class FakeUnitOfWork:
    """Commits copy the seen items back; each changed item's (version, events) is the 'outbox'."""

    def __init__(self, db: FakeDatabase, write: bool) -> None:
        self.db = db
        self.write = write
        self._items = FakeItemRepository(db.store)
        self._sync_state = FakeSyncState(db.progress)
        self.committed = False

    @property
    def items(self) -> FakeItemRepository:
        return self._items

    @property
    def sync_state(self) -> FakeSyncState:
        return self._sync_state

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
            if item.events:
                self.db.outbox.extend(item.events)
                self.db.versions.append((sku, item.version))
            item.events.clear()
            self.db.store[sku] = copy.deepcopy(item)
        self.db.progress.update(self._sync_state.pending)
        self.db.commits += 1
        self.committed = True

    def rollback(self) -> None:
        self._items.seen.clear()


class FakeDatabase:
    """The state behind the fake units of work, and a factory of them."""

    def __init__(self, *items: Item) -> None:
        self.store: dict[str, Item] = {i.sku: i for i in items}
        self.progress: dict[str, Progress] = {}
        self.outbox: list[DomainEvent] = []
        self.versions: list[tuple[str, int]] = []  # (sku, version) of each outbox row
        self.commits = 0

    def __call__(self, write: bool) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, write)


class FakeLegacy:
    """A legacy copy in memory; `fail_after` pages, it raises ConnectionError (an outage)."""

    def __init__(self, *items: ItemState, page_size: int = 2) -> None:
        self.by_sku = {i.sku: i for i in items}
        self.page_size = page_size
        self.orders_list: list[dict[str, Any]] = []
        self.pages_read: list[int] = []
        self.fail_after: int | None = None

    def item_page(self, offset: int) -> tuple[list[ItemState], int]:
        if self.fail_after is not None and len(self.pages_read) >= self.fail_after:
            raise ConnectionError("legacy down")
        self.pages_read.append(offset)
        skus = sorted(self.by_sku)
        return [self.by_sku[s] for s in skus[offset : offset + self.page_size]], len(skus)

    def items(self) -> Iterable[ItemState]:
        return [self.by_sku[s] for s in sorted(self.by_sku)]

    def orders(self) -> list[dict[str, Any]]:
        return list(self.orders_list)
