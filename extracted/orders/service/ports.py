"""Ports: the small interfaces the use cases need; adapters and in-memory fakes implement them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from extracted.orders.domain.model import Order


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


@dataclass(frozen=True)
class OrdersPage:
    """One page of the legacy's orders (by id) and how many it holds in all."""

    orders: list[Order]
    total: int


class LegacyOrdersPort(Protocol):
    """The legacy's orders, read through its HTTP API (never its database).

    Failures raise `DependencyUnavailable` (named "legacy").
    """

    async def page(self, offset: int, limit: int) -> OrdersPage:
        """Orders `offset` .. `offset + limit` by id (copies with origin legacy)."""
        ...

    async def get(self, order_id: int) -> Order | None:
        """The order `order_id` as the legacy shows it, or None when it does not exist."""
        ...


@dataclass(frozen=True)
class Stock:
    """One side's stock as its HTTP API shows it: on_hand and reservations by sku."""

    on_hand: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, dict[int, int]] = field(default_factory=dict)


class StockPort(Protocol):
    """Read-only view of one side's stock (for the drift check)."""

    async def snapshot(self) -> Stock:
        """Every item's on_hand and every sku's reservations."""
        ...
