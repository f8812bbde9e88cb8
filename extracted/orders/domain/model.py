"""Order entities and their status rules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class OrderStatus(StrEnum):
    """Lifecycle of an order; only `placed` and `cancelled` are visible through the API."""

    PENDING = "pending"  # saga in flight: stored, lines being reserved
    RELEASING = "releasing"  # saga failed or reconciled: reservations being released
    FAILED = "failed"  # saga gave up; nothing stays reserved
    PLACED = "placed"
    CANCELLED = "cancelled"


VISIBLE_STATUSES = (OrderStatus.PLACED, OrderStatus.CANCELLED)


class Origin(StrEnum):
    """Who wrote a record last; never exposed in JSON."""

    LEGACY = "legacy"
    ORDERS = "orders"


@dataclass(frozen=True)
class OrderLine:
    """One line of an order; `price_cents` is the item's price when the order was placed."""

    sku: str
    qty: int
    price_cents: int

    @property
    def subtotal_cents(self) -> int:
        """qty * price_cents."""
        return self.qty * self.price_cents


@dataclass(frozen=True)
class Order:
    """An order with its lines (in the order the customer gave them)."""

    id: int
    customer_id: int
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    placed_at: str  # "%Y-%m-%dT%H:%M:%SZ"
    origin: Origin = Origin.ORDERS
    created_at: float = field(default=0.0, compare=False)  # epoch seconds, for reconciliation

    @property
    def total_cents(self) -> int:
        """Sum of the lines' qty * price_cents."""
        return sum(line.subtotal_cents for line in self.lines)

    @property
    def visible(self) -> bool:
        """Whether the API shows this order (pending/failed orders are internal)."""
        return self.status in VISIBLE_STATUSES

    def cancelled(self) -> Order:
        """This order with status `cancelled`; cancelling a cancelled order changes nothing."""
        if self.status not in (OrderStatus.PLACED, OrderStatus.CANCELLED):
            raise ValueError(f"cannot cancel an order in status {self.status}")
        return replace(self, status=OrderStatus.CANCELLED, origin=Origin.ORDERS)

    def to_json(self) -> dict[str, Any]:
        """The order exactly as the HTTP contract shows it (key order matters)."""
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "status": str(self.status),
            "items": [
                {"sku": line.sku, "qty": line.qty, "price_cents": line.price_cents}
                for line in self.lines
            ],
            "total_cents": self.total_cents,
            "placed_at": self.placed_at,
        }


def order_from_json(doc: dict[str, Any], origin: Origin = Origin.LEGACY) -> Order:
    """Parse an order as the HTTP contract shows it (the legacy's copy, for sync)."""
    status = OrderStatus(doc["status"])
    if status not in VISIBLE_STATUSES:
        raise ValueError(f"unexpected status {status}")
    lines = tuple(
        OrderLine(sku=str(i["sku"]), qty=int(i["qty"]), price_cents=int(i["price_cents"]))
        for i in doc["items"]
    )
    return Order(
        id=int(doc["id"]),
        customer_id=int(doc["customer_id"]),
        status=status,
        lines=lines,
        placed_at=str(doc["placed_at"]),
        origin=origin,
    )


def same_content(a: Order, b: Order) -> bool:
    """Whether two copies of an order show the same JSON (origin and bookkeeping ignored)."""
    return a.to_json() == b.to_json()
