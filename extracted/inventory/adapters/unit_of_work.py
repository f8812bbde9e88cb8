"""The SQLAlchemy unit of work: one transaction; the authority's events go to the outbox in it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import sqlalchemy as sa

from extracted.events import add_to_outbox, inventory_changed
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.repository import SqlAlchemyItemRepository, SqlAlchemySyncState
from extracted.inventory.domain.model import Origin
from extracted.inventory.service.ports import UnitOfWorkFactory
from extracted.inventory.service.views import item_json, reservation_json


class SqlAlchemyUnitOfWork:
    """A transaction on the inventory database.

    `write=True` locks: `BEGIN IMMEDIATE` on SQLite (one writer at a time, across processes),
    `SELECT ... FOR UPDATE` on the item row on PostgreSQL. On commit, every item that recorded
    domain events (a change made as the stock authority, which bumped its version) gets ONE
    `inventory.changed` outbox row with its full state at that version, in the same transaction
    as the change. Changes without events (backfill, the read copy) publish nothing.
    """

    def __init__(self, db: Database, write: bool) -> None:
        self.db = db
        self.write = write
        self._conn: sa.Connection | None = None
        self.items: SqlAlchemyItemRepository
        self.sync_state: SqlAlchemySyncState

    def __enter__(self) -> Self:
        engine = self.db.write_engine if self.write else self.db.engine
        self._conn = engine.connect()
        self._conn.begin()
        self.items = SqlAlchemyItemRepository(self._conn, lock=self.write)
        self.sync_state = SqlAlchemySyncState(self._conn)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        try:
            if self._conn.in_transaction():
                self._conn.rollback()
        finally:
            self._conn.close()
            self._conn = None

    def commit(self) -> None:
        """Write the items' changes and their outbox events, then commit."""
        assert self._conn is not None
        self.items.save_all()
        for item, _snap in self.items.seen.values():
            if item.events:
                event = inventory_changed(
                    item_json(item),
                    [reservation_json(r) for r in item.sorted_reservations()],
                    str(Origin.INVENTORY),
                    item.version,
                )
                add_to_outbox(self._conn, outbox, event)
        self._conn.commit()
        for item, _snap in self.items.seen.values():
            item.events.clear()

    def rollback(self) -> None:
        """Discard the transaction."""
        if self._conn is not None and self._conn.in_transaction():
            self._conn.rollback()


def uow_factory(db: Database) -> UnitOfWorkFactory:
    """`factory(write)` -> a fresh SqlAlchemyUnitOfWork on `db`."""

    def make(write: bool) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(db, write)

    return make
