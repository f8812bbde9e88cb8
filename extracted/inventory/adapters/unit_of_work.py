"""The SQLAlchemy unit of work: one transaction; events go to the outbox in it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import sqlalchemy as sa

from extracted.events import INVENTORY_CHANGED, add_to_outbox, new_event
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.repository import SqlAlchemyItemRepository
from extracted.inventory.domain.model import Origin
from extracted.inventory.service.ports import UnitOfWorkFactory
from extracted.inventory.service.views import inventory_changed_data


class SqlAlchemyUnitOfWork:
    """A transaction on the inventory database.

    `write=True` locks: `BEGIN IMMEDIATE` on SQLite (one writer at a time, across processes),
    `SELECT ... FOR UPDATE` on the item row on PostgreSQL. On commit, every item that recorded
    domain events gets one `inventory.changed` outbox row with its full state, in the same
    transaction as the change; changes without events (sync) publish nothing.
    """

    def __init__(self, db: Database, write: bool) -> None:
        self.db = db
        self.write = write
        self._conn: sa.Connection | None = None
        self.items: SqlAlchemyItemRepository

    def __enter__(self) -> Self:
        engine = self.db.write_engine if self.write else self.db.engine
        self._conn = engine.connect()
        self._conn.begin()
        self.items = SqlAlchemyItemRepository(self._conn, lock=self.write)
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
                event = new_event(
                    INVENTORY_CHANGED, inventory_changed_data(item), str(Origin.INVENTORY)
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
