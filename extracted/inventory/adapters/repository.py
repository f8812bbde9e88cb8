"""SQLAlchemy Core repositories: Item aggregates (saved by diffing against what was loaded), and
the backfill's progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from extracted.inventory.adapters.orm import items, reservations, sync_state
from extracted.inventory.domain.backfill import Progress
from extracted.inventory.domain.model import Item, Reservation


@dataclass(frozen=True)
class _Snapshot:
    fields: tuple[object, ...] | None  # None: the item is new
    reservations: dict[int, tuple[int, str]]


def _fields(item: Item) -> tuple[object, ...]:
    return (item.name, item.price_cents, item.on_hand, item.origin, item.version, item.floor)


def _snapshot(item: Item, new: bool = False) -> _Snapshot:
    return _Snapshot(
        None if new else _fields(item),
        {} if new else {k: (r.qty, r.origin) for k, r in item.reservations.items()},
    )


class SqlAlchemyItemRepository:
    """Loads items (row-locked with `lock=True` on PostgreSQL) and writes back their changes."""

    def __init__(self, conn: sa.Connection, *, lock: bool) -> None:
        self.conn = conn
        self.lock = lock
        self.seen: dict[str, tuple[Item, _Snapshot]] = {}

    def get(self, sku: str) -> Item | None:
        """The item with its reservations, or None."""
        if sku in self.seen:
            return self.seen[sku][0]
        query = sa.select(items).where(items.c.sku == sku)
        if self.lock:
            query = query.with_for_update()  # ignored by SQLite, where BEGIN IMMEDIATE locks
        row = self.conn.execute(query).first()
        if row is None:
            return None
        (item,) = self._assemble([row])
        self.seen[sku] = (item, _snapshot(item))
        return item

    def add(self, item: Item) -> None:
        """Register a new item; inserted at `save_all`."""
        self.seen[item.sku] = (item, _snapshot(item, new=True))

    def page(self, limit: int, offset: int) -> tuple[list[Item], int]:
        """Items ordered by sku and the total count."""
        rows = self.conn.execute(
            sa.select(items).order_by(items.c.sku).limit(limit).offset(offset)
        ).all()
        total = self.conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one()
        return self._assemble(rows), int(total)

    def all(self) -> list[Item]:
        """Every item, ordered by sku."""
        return self._assemble(self.conn.execute(sa.select(items).order_by(items.c.sku)).all())

    def _assemble(self, rows: Sequence[sa.Row]) -> list[Item]:
        by_sku = {
            r.sku: Item(
                r.sku,
                r.name,
                int(r.price_cents),
                int(r.on_hand),
                r.origin,
                r.updated_at,
                int(r.version),
                int(r.floor),
            )
            for r in rows
        }
        if not by_sku:
            return []
        skus = list(by_sku)
        # One query for the reservations; `IN` only when the page is small, else read them all.
        res_q = sa.select(reservations)
        if len(skus) <= 500:
            res_q = res_q.where(reservations.c.sku.in_(skus))
        for r in self.conn.execute(res_q):
            item = by_sku.get(r.sku)
            if item is not None:
                item.reservations[int(r.order_id)] = Reservation(
                    r.sku, int(r.order_id), int(r.qty), r.origin, r.updated_at
                )
        return list(by_sku.values())

    def save_all(self) -> list[Item]:
        """Write every change made to the items handed out; returns the changed items."""
        changed: list[Item] = []
        for item, snap in self.seen.values():
            if self._save(item, snap):
                changed.append(item)
        return changed

    def _save(self, item: Item, snap: _Snapshot) -> bool:
        dirty = False
        values = {
            "name": item.name,
            "price_cents": item.price_cents,
            "on_hand": item.on_hand,
            "origin": str(item.origin),
            "updated_at": item.updated_at,
            "version": item.version,
            "floor": item.floor,
        }
        if snap.fields is None:
            self.conn.execute(items.insert().values(sku=item.sku, **values))
            dirty = True
        elif snap.fields != _fields(item):
            self.conn.execute(items.update().where(items.c.sku == item.sku).values(**values))
            dirty = True
        dirty |= self._save_reservations(item, snap)
        return dirty

    def _save_reservations(self, item: Item, snap: _Snapshot) -> bool:
        now_ids, old_ids = set(item.reservations), set(snap.reservations)
        gone = sorted(old_ids - now_ids)
        if gone:
            self.conn.execute(
                reservations.delete().where(
                    reservations.c.sku == item.sku, reservations.c.order_id.in_(gone)
                )
            )
        new_rows = [_reservation_row(item.reservations[k]) for k in sorted(now_ids - old_ids)]
        if new_rows:
            self.conn.execute(reservations.insert(), new_rows)
        kept = [item.reservations[k] for k in sorted(now_ids & old_ids)]
        updated = [r for r in kept if (r.qty, r.origin) != snap.reservations[r.order_id]]
        for r in updated:
            self.conn.execute(
                reservations.update()
                .where(reservations.c.sku == r.sku, reservations.c.order_id == r.order_id)
                .values(qty=r.qty, origin=str(r.origin), updated_at=r.updated_at)
            )
        return bool(gone or new_rows or updated)


def _reservation_row(r: Reservation) -> dict[str, object]:
    return {
        "sku": r.sku,
        "order_id": r.order_id,
        "qty": r.qty,
        "origin": str(r.origin),
        "updated_at": r.updated_at,
    }


class SqlAlchemySyncState:
    """The `sync_state` rows, written in the transaction of the work they record."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def get(self, name: str) -> Progress:
        """The job's progress (a fresh one when it never ran)."""
        row = self.conn.execute(sa.select(sync_state).where(sync_state.c.name == name)).first()
        if row is None:
            return Progress()
        return Progress(row.cursor, int(row.position), bool(row.complete))

    def save(self, name: str, progress: Progress, now: datetime) -> None:
        """Record the job's progress (upsert)."""
        values = {
            "cursor": progress.cursor,
            "position": progress.position,
            "complete": progress.complete,
            "updated_at": now,
        }
        # One statement: two backfills saving at once must not collide on the first insert.
        dialect = self.conn.dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(sync_state).values(name=name, **values)
        self.conn.execute(
            statement.on_conflict_do_update(index_elements=[sync_state.c.name], set_=values)
        )
