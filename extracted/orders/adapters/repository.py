"""SQLAlchemy Core implementations of the order repository and the idempotency store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import orjson
import sqlalchemy as sa

from extracted.orders.adapters.orm import idempotency_keys, order_lines, orders
from extracted.orders.domain.model import (
    NEW_ID_BASE,
    VISIBLE_STATUSES,
    Order,
    OrderLine,
    OrderStatus,
    Origin,
)
from extracted.orders.service.unit_of_work import KeyAlreadyStored, StoredAnswer

# Any constant works: it names the lock that serialises id allocation on PostgreSQL.
_ID_LOCK = 0x0D3E5


class SqlOrderRepository:
    """Orders over one open connection (the unit of work's transaction)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def next_id(self) -> int:
        """A fresh id >= NEW_ID_BASE; ids in the legacy's range are never considered."""
        if self.conn.dialect.name == "postgresql":
            # Held to the end of the transaction, so concurrent placers never pick the same id.
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ID_LOCK})
        top = self.conn.execute(
            sa.select(sa.func.max(orders.c.id)).where(orders.c.id >= NEW_ID_BASE)
        ).scalar()
        return NEW_ID_BASE if top is None else int(top) + 1

    def add(self, order: Order) -> None:
        """Insert a new order with its lines."""
        self.conn.execute(orders.insert().values(**_row(order)))
        self._insert_lines(order)

    def put(self, order: Order) -> None:
        """Insert or overwrite an order and its lines."""
        exists = self.conn.execute(sa.select(orders.c.id).where(orders.c.id == order.id)).first()
        if exists is None:
            self.add(order)
            return
        self.conn.execute(orders.update().where(orders.c.id == order.id).values(**_row(order)))
        self.conn.execute(order_lines.delete().where(order_lines.c.order_id == order.id))
        self._insert_lines(order)

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

    def below(self, bound: int) -> dict[int, Order]:
        """Every order with id < bound, by id."""
        return {o.id: o for o in self._load(sa.select(orders).where(orders.c.id < bound))}

    def visible(self) -> list[Order]:
        """Every placed/cancelled order by id."""
        return self._load(
            sa.select(orders)
            .where(orders.c.status.in_([str(s) for s in VISIBLE_STATUSES]))
            .order_by(orders.c.id)
        )

    def _insert_lines(self, order: Order) -> None:
        if order.lines:
            self.conn.execute(
                order_lines.insert(),
                [
                    {
                        "order_id": order.id,
                        "line_no": n,
                        "sku": line.sku,
                        "qty": line.qty,
                        "price_cents": line.price_cents,
                    }
                    for n, line in enumerate(order.lines)
                ],
            )

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
        return StoredAnswer(
            key=row.key,
            request=orjson.loads(row.request),
            response=orjson.loads(row.response),
            created_at=float(row.created_at),
        )

    def store(self, answer: StoredAnswer) -> None:
        """Store the answer; KeyAlreadyStored when another transaction stored the key first."""
        # A savepoint keeps the surrounding transaction usable on PostgreSQL after a conflict.
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    idempotency_keys.insert().values(
                        key=answer.key,
                        request=orjson.dumps(answer.request).decode(),
                        response=orjson.dumps(answer.response).decode(),
                        created_at=answer.created_at,
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise KeyAlreadyStored(answer.key) from exc

    def purge(self, created_before: float) -> int:
        """Delete keys older than `created_before`; returns how many."""
        result = self.conn.execute(
            idempotency_keys.delete().where(idempotency_keys.c.created_at < created_before)
        )
        return int(result.rowcount)


__all__: Sequence[str] = ["SqlIdempotencyStore", "SqlOrderRepository"]
