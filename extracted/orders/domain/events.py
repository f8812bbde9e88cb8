"""Domain events (past tense): ours go out through the outbox, the legacy's come in from the bus."""

from __future__ import annotations

from dataclasses import dataclass

from extracted.orders.domain.idempotency import KeyRecord
from extracted.orders.domain.model import Order

ORDER_PLACED = "order.placed"
ORDER_CANCELLED = "order.cancelled"


@dataclass(frozen=True)
class OrderPlaced:
    """An order was placed (its stock is reserved); `idempotency` when placed under a key."""

    order: Order
    idempotency: KeyRecord | None = None
    type: str = ORDER_PLACED


@dataclass(frozen=True)
class OrderCancelled:
    """An order was cancelled (its stock is released); `idempotency` when placed under a key."""

    order: Order
    idempotency: KeyRecord | None = None
    type: str = ORDER_CANCELLED


OrderEvent = OrderPlaced | OrderCancelled


@dataclass(frozen=True)
class OrderChangedElsewhere:
    """The other side placed or cancelled an order: its copy, to merge by the lattice.

    `occurred_at` is epoch seconds; `idempotency` is the key it was placed under, if any.
    """

    order: Order
    idempotency: KeyRecord | None = None
    occurred_at: float = 0.0
