"""SQLAlchemy Core implementations of the order repository and the idempotency store."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.orders.adapters.orm import (
    cancel_requests,
    idempotency_keys,
    order_lines,
    orders,
    sync_state,
)
from extracted.orders.domain.lattice import merged
from extracted.orders.domain.model import (
    VISIBLE_STATUSES,
    Order,
    OrderLine,
    OrderStatus,
    Origin,
)
from extracted.orders.service.unit_of_work import KeyAlreadyStored, StoredAnswer, SyncProgress

# Any constant works: it names the lock that serialises id allocation on PostgreSQL.
_ID_LOCK = 0x0D3E5


class SqlOrderRepository:
    """Orders over one open connection (the unit of work's transaction)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def next_id(self) -> int:
        """A fresh id >= NEW_SERVICES_ID_FLOOR; ids in the legacy's range are never considered."""
        if self.conn.dialect.name == "postgresql":
            # Held to the end of the transaction, so concurrent placers never pick the same id.
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ID_LOCK})
        top = self.conn.execute(
            sa.select(sa.func.max(orders.c.id)).where(orders.c.id >= NEW_SERVICES_ID_FLOOR)
        ).scalar()
        return NEW_SERVICES_ID_FLOOR if top is None else int(top) + 1

    def add(self, order: Order) -> None:
        """Insert a new order with its lines."""
        self.conn.execute(orders.insert().values(**_row(order)))
        self._insert_lines([order])

    def get(self, order_id: int) -> Order | None:
        """The order in any status, or None."""
        found = self._load(sa.select(orders).where(orders.c.id == order_id))
        return found[0] if found else None

    def list_visible(
        self, customer_id: int | None, limit: int, offset: int
    ) -> tuple[list[Order], int]:
        """One page of placed/cancelled orders by id, and their total count."""
        cond: sa.ColumnElement[bool] = orders.c.status.in_([str(s) for s in VISIBLE_STATUSES])
        if customer_id is not None:
            cond = sa.and_(cond, orders.c.customer_id == customer_id)
        total = self.conn.execute(sa.select(sa.func.count()).select_from(orders).where(cond))
        page = self._load(
            sa.select(orders).where(cond).order_by(orders.c.id).limit(limit).offset(offset)
        )
        return page, int(total.scalar_one())

    def set_status(
        self, order_id: int, expected: Iterable[OrderStatus], status: OrderStatus, origin: Origin
    ) -> bool:
        """Conditional status change; False when the order was not in an expected status."""
        result = self.conn.execute(
            orders.update()
            .where(orders.c.id == order_id, orders.c.status.in_([str(s) for s in expected]))
            .values(status=str(status), origin=str(origin))
        )
        return result.rowcount == 1

    def stale(self, statuses: Iterable[OrderStatus], created_before: float) -> list[Order]:
        """Orders in `statuses` created before `created_before` (epoch seconds)."""
        return self._load(
            sa.select(orders)
            .where(
                orders.c.status.in_([str(s) for s in statuses]),
                orders.c.created_at < created_before,
            )
            .order_by(orders.c.id)
        )

    def visible(self) -> list[Order]:
        """Every placed/cancelled order by id."""
        return self._load(
            sa.select(orders)
            .where(orders.c.status.in_([str(s) for s in VISIBLE_STATUSES]))
            .order_by(orders.c.id)
        )

    def ids_in(self, statuses: Iterable[OrderStatus]) -> set[int]:
        """Ids of the orders in `statuses`."""
        query = sa.select(orders.c.id).where(orders.c.status.in_([str(s) for s in statuses]))
        return {int(i) for i in self.conn.execute(query).scalars()}

    def merge(self, copies: Sequence[Order]) -> list[Order]:
        """Merge the other side's copies by the lattice (`domain.lattice.merged`), in order.

        Inserts are `ON CONFLICT DO NOTHING` and the only update is the conditional
        `placed -> cancelled`, so concurrent mergers (consumer, backfill, read-repair, the
        API's own cancel) never lose or regress anything. Returns the orders that changed.
        """
        known = {o.id: o for o in self._load_ids([c.id for c in copies])}
        changed: list[Order] = []
        new_lines: list[Order] = []
        for theirs in copies:
            ours = known.get(theirs.id)
            if ours is None:
                if self._insert_if_missing(theirs):
                    known[theirs.id] = theirs
                    new_lines.append(theirs)
                    changed.append(theirs)
                    continue
                # Inserted meanwhile by a concurrent merger (committed: the insert waited).
                ours = self.get(theirs.id)
                if ours is None:  # pragma: no cover - orders are never deleted
                    continue
            after = merged(ours, theirs)
            if after is None:
                known[theirs.id] = ours
                continue
            done = self.set_status(theirs.id, [ours.status], after.status, after.origin)
            known[theirs.id] = after if done else (self.get(theirs.id) or ours)
            if done:
                changed.append(after)
        self._insert_lines(new_lines)
        return changed

    def request_cancel(self, order_id: int, at: float) -> None:
        """Record that a cancel of `order_id` started (kept if already recorded)."""
        self.conn.execute(
            _insert(self.conn, cancel_requests)
            .values(order_id=order_id, requested_at=at)
            .on_conflict_do_nothing(index_elements=["order_id"])
        )

    def drop_cancel_request(self, order_id: int) -> None:
        """Forget the cancel request of `order_id`."""
        self.conn.execute(cancel_requests.delete().where(cancel_requests.c.order_id == order_id))

    def cancel_requests(self, before: float) -> list[int]:
        """Order ids of cancel requests recorded before the epoch time `before`."""
        query = (
            sa.select(cancel_requests.c.order_id)
            .where(cancel_requests.c.requested_at < before)
            .order_by(cancel_requests.c.order_id)
        )
        return [int(i) for i in self.conn.execute(query).scalars()]

    def _insert_if_missing(self, order: Order) -> bool:
        stmt = (
            _insert(self.conn, orders)
            .values(**_row(order))
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(orders.c.id)  # rowcount is not reliable for INSERT on every driver
        )
        return self.conn.execute(stmt).first() is not None

    def _insert_lines(self, batch: Sequence[Order]) -> None:
        rows = [
            {
                "order_id": order.id,
                "line_no": n,
                "sku": line.sku,
                "qty": line.qty,
                "price_cents": line.price_cents,
            }
            for order in batch
            for n, line in enumerate(order.lines)
        ]
        if rows:
            self.conn.execute(order_lines.insert(), rows)

    def _load_ids(self, ids: Sequence[int]) -> list[Order]:
        found: list[Order] = []
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):  # under bind-parameter limits
            chunk = unique[start : start + 500]
            found.extend(self._load(sa.select(orders).where(orders.c.id.in_(chunk))))
        return found

    def _load(self, query: sa.Select) -> list[Order]:
        rows = self.conn.execute(query.order_by(orders.c.id)).all()
        if not rows:
            return []
        lines: dict[int, list[OrderLine]] = defaultdict(list)
        ids = [r.id for r in rows]
        # Chunked so a sync of thousands of orders stays under bind-parameter limits.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for ln in self.conn.execute(
                sa.select(order_lines)
                .where(order_lines.c.order_id.in_(chunk))
                .order_by(order_lines.c.order_id, order_lines.c.line_no)
            ):
                lines[ln.order_id].append(OrderLine(ln.sku, ln.qty, ln.price_cents))
        return [
            Order(
                id=int(r.id),
                customer_id=int(r.customer_id),
                status=OrderStatus(r.status),
                lines=tuple(lines[r.id]),
                placed_at=r.placed_at,
                origin=Origin(r.origin),
                created_at=float(r.created_at),
            )
            for r in rows
        ]


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_nothing` (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _row(order: Order) -> dict[str, object]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": str(order.status),
        "placed_at": order.placed_at,
        "created_at": order.created_at,
        "origin": str(order.origin),
    }


class SqlIdempotencyStore:
    """Idempotency-Keys with their first 201 answer."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def find(self, key: str) -> StoredAnswer | None:
        """The stored answer for `key`, or None."""
        row = self.conn.execute(
            sa.select(idempotency_keys).where(idempotency_keys.c.key == key)
        ).first()
        if row is None:
            return None
        return _answer(row)

    def store(self, answer: StoredAnswer) -> None:
        """Store the answer; KeyAlreadyStored when another transaction stored the key first."""
        # A savepoint keeps the surrounding transaction usable on PostgreSQL after a conflict.
        try:
            with self.conn.begin_nested():
                self.conn.execute(idempotency_keys.insert().values(**_key_row(answer)))
        except sa.exc.IntegrityError as exc:
            raise KeyAlreadyStored(answer.key) from exc

    def learn(self, answer: StoredAnswer) -> bool:
        """Store a key the other side answered, unless the key is known; True if stored."""
        stmt = (
            _insert(self.conn, idempotency_keys)
            .values(**_key_row(answer))
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(idempotency_keys.c.key)
        )
        return self.conn.execute(stmt).first() is not None

    def for_order(self, order_id: int) -> StoredAnswer | None:
        """The key order `order_id` was placed under, or None."""
        row = self.conn.execute(
            sa.select(idempotency_keys).where(idempotency_keys.c.order_id == order_id).limit(1)
        ).first()
        return None if row is None else _answer(row)

    def purge(self, created_before: float) -> int:
        """Delete keys older than `created_before`; returns how many."""
        result = self.conn.execute(
            idempotency_keys.delete().where(idempotency_keys.c.created_at < created_before)
        )
        return int(result.rowcount)


def _key_row(answer: StoredAnswer) -> dict[str, object]:
    return {
        "key": answer.key,
        "request": orjson.dumps(answer.request).decode(),
        "response": orjson.dumps(answer.response).decode(),
        "created_at": answer.created_at,
        "order_id": answer.order_id,
    }


def _answer(row: sa.Row) -> StoredAnswer:
    return StoredAnswer(
        key=row.key,
        request=orjson.loads(row.request),
        response=orjson.loads(row.response),
        created_at=float(row.created_at),
        order_id=None if row.order_id is None else int(row.order_id),
    )


class SqlSyncState:
    """Backfill progress rows (`sync_state`)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def get(self, name: str) -> SyncProgress:
        """The job's progress (zero when it never ran)."""
        row = self.conn.execute(sa.select(sync_state).where(sync_state.c.name == name)).first()
        if row is None:
            return SyncProgress()
        return SyncProgress(cursor=int(row.cursor), complete=bool(row.complete))

    def advance(self, name: str, cursor: int, complete: bool) -> None:
        """Record progress; never moves the cursor back nor un-completes (concurrent runs)."""
        now = time.time()
        self.conn.execute(
            _insert(self.conn, sync_state)
            .values(name=name, cursor=0, complete=False, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        c = sync_state.c
        self.conn.execute(
            sync_state.update()
            .where(c.name == name)
            .values(
                cursor=sa.case((c.cursor < cursor, cursor), else_=c.cursor),
                complete=sa.or_(c.complete, sa.literal(complete)),
                updated_at=now,
            )
        )

    def reset(self, name: str) -> None:
        """Start the job over."""
        self.conn.execute(sync_state.delete().where(sync_state.c.name == name))


__all__: Sequence[str] = ["SqlIdempotencyStore", "SqlOrderRepository", "SqlSyncState"]
