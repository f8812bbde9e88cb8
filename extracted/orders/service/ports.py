"""Ports: the small interfaces the use cases need; adapters and in-memory fakes implement them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ItemInfo:
    """What the orders service needs to know about an inventory item."""

    sku: str
    price_cents: int
    available: int


class InventoryPort(Protocol):
    """The inventory service, seen from orders.

    Failures of the dependency raise `DependencyUnavailable`; business refusals raise
    `InsufficientStock`, `UnknownSku` or `ReservationConflict`.
    """

    async def item(self, sku: str) -> ItemInfo | None:
        """The item `sku`, or None when inventory does not know it."""
        ...

    async def reserve(self, sku: str, order_id: int, qty: int) -> None:
        """Reserve `qty` of `sku` for `order_id` (idempotent for the same qty)."""
        ...

    async def release(self, sku: str, order_id: int) -> None:
        """Release the reservation of `sku` for `order_id` (no-op when there is none)."""
        ...


class CustomersPort(Protocol):
    """The monolith's customers, seen from orders."""

    async def exists(self, customer_id: int) -> bool:
        """Whether customer `customer_id` exists."""
        ...
