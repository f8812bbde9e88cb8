"""The SQLAlchemy unit of work: one connection and transaction per `with uow:`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Self

import sqlalchemy as sa

from extracted.events import add_to_outbox, order_event
from extracted.orders.adapters.orm import outbox
from extracted.orders.adapters.repository import (
    SqlIdempotencyStore,
    SqlOrderRepository,
    SqlSyncState,
)
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.events import OrderEvent

ORIGIN = "orders"
DATABASE = "database"
log = logging.getLogger(__name__)


class SqlUnitOfWork:
    """Reusable: each `with` block opens a fresh transaction, rolled back unless committed."""

    orders: SqlOrderRepository
    keys: SqlIdempotencyStore
    sync_state: SqlSyncState

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._conn: sa.Connection | None = None
        self._tx: sa.RootTransaction | None = None

    def __enter__(self) -> Self:
        try:
            self._conn = self.engine.connect()
            self._tx = self._conn.begin()
        except sa.exc.DBAPIError as exc:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise DependencyUnavailable(DATABASE) from exc
        self.orders = SqlOrderRepository(self._conn)
        self.keys = SqlIdempotencyStore(self._conn)
        self.sync_state = SqlSyncState(self._conn)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        except sa.exc.DBAPIError:
            log.warning("rollback failed", exc_info=True)
        finally:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._tx = None
        # A database that is down or locked is a dependency failure (503), not a bug (500).
        if isinstance(exc, sa.exc.DBAPIError) and not isinstance(exc, sa.exc.IntegrityError):
            raise DependencyUnavailable(DATABASE) from exc

    def commit(self) -> None:
        """Commit the open transaction."""
        assert self._tx is not None, "commit() outside `with uow:`"
        try:
            self._tx.commit()
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as exc:
            raise DependencyUnavailable(DATABASE) from exc

    def rollback(self) -> None:
        """Roll the open transaction back."""
        if self._tx is not None and self._tx.is_active:
            self._tx.rollback()

    def publish(self, events: Sequence[OrderEvent]) -> None:
        """Write each event to the outbox in this transaction, as a versioned envelope."""
        assert self._conn is not None, "publish() outside `with uow:`"
        for event in events:
            key = event.idempotency
            idempotency = (
                None
                if key is None
                else {"key": key.key, "request": key.request, "response": key.response}
            )
            envelope = order_event(event.order.to_json(), ORIGIN, idempotency=idempotency)
            add_to_outbox(self._conn, outbox, envelope)
