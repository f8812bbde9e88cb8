"""Domain events (past tense); published through the outbox as versioned envelopes."""

from __future__ import annotations

from dataclasses import dataclass

from extracted.orders.domain.model import Order

ORDER_PLACED = "order.placed"
ORDER_CANCELLED = "order.cancelled"


@dataclass(frozen=True)
class OrderPlaced:
    """An order was placed (its stock is reserved)."""

    order: Order
    type: str = ORDER_PLACED


@dataclass(frozen=True)
class OrderCancelled:
    """An order was cancelled (its stock is released)."""

    order: Order
    type: str = ORDER_CANCELLED


OrderEvent = OrderPlaced | OrderCancelled
