"""SQLAlchemy Core repository of Item aggregates; saves by diffing against what it loaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from extracted.inventory.adapters.orm import items, released_reservations, reservations
from extracted.inventory.domain.model import Item, Origin, Reservation


@dataclass(frozen=True)
class _Snapshot:
    fields: tuple[object, ...] | None  # None: the item is new
    reservations: dict[int, tuple[int, str]]
    released: frozenset[int]


def _fields(item: Item) -> tuple[object, ...]:
    return (item.name, item.price_cents, item.on_hand, item.origin)


def _snapshot(item: Item, new: bool = False) -> _Snapshot:
    return _Snapshot(
        None if new else _fields(item),
        {} if new else {k: (r.qty, r.origin) for k, r in item.reservations.items()},
        frozenset() if new else frozenset(item.released),
    )


class SqlAlchemyItemRepository:
    """Loads items (row-locked with `lock=True` on PostgreSQL) and writes back their changes."""

    def __init__(self, conn: sa.Connection, *, lock: bool) -> None:
        self.conn = conn
        self.lock = lock
        self.seen: dict[str, tuple[Item, _Snapshot]] = {}

    def get(self, sku: str) -> Item | None:
        """The item with its reservations and tombstones, or None."""
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
            r.sku: Item(r.sku, r.name, int(r.price_cents), int(r.on_hand), r.origin, r.updated_at)
            for r in rows
        }
        if not by_sku:
            return []
        skus = list(by_sku)
        # One query per child table; `IN` only when the page is small, else read them all.
        res_q = sa.select(reservations)
        tomb_q = sa.select(released_reservations)
        if len(skus) <= 500:
            res_q = res_q.where(reservations.c.sku.in_(skus))
            tomb_q = tomb_q.where(released_reservations.c.sku.in_(skus))
        for r in self.conn.execute(res_q):
            item = by_sku.get(r.sku)
            if item is not None:
                item.reservations[int(r.order_id)] = Reservation(
                    r.sku, int(r.order_id), int(r.qty), r.origin, r.updated_at
                )
        for t in self.conn.execute(tomb_q):
            item = by_sku.get(t.sku)
            if item is not None:
                item.released[int(t.order_id)] = t.released_at
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
        }
        if snap.fields is None:
            self.conn.execute(items.insert().values(sku=item.sku, **values))
            dirty = True
        elif snap.fields != _fields(item):
            self.conn.execute(items.update().where(items.c.sku == item.sku).values(**values))
            dirty = True
        dirty |= self._save_reservations(item, snap)
        dirty |= self._save_released(item, snap)
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

    def _save_released(self, item: Item, snap: _Snapshot) -> bool:
        now_ids, old_ids = set(item.released), set(snap.released)
        gone, added = sorted(old_ids - now_ids), sorted(now_ids - old_ids)
        if gone:
            self.conn.execute(
                released_reservations.delete().where(
                    released_reservations.c.sku == item.sku,
                    released_reservations.c.order_id.in_(gone),
                )
            )
        if added:
            self.conn.execute(
                released_reservations.insert(),
                [
                    {
                        "sku": item.sku,
                        "order_id": k,
                        "released_at": item.released[k],
                        "origin": str(Origin.INVENTORY),
                    }
                    for k in added
                ],
            )
        return bool(gone or added)


def _reservation_row(r: Reservation) -> dict[str, object]:
    return {
        "sku": r.sku,
        "order_id": r.order_id,
        "qty": r.qty,
        "origin": str(r.origin),
        "updated_at": r.updated_at,
    }
