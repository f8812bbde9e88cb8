"""The inventory service over HTTP (implements InventoryPort)."""

from __future__ import annotations

import httpx

from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.http import error_code, exchange, segment
from extracted.orders.domain.errors import (
    DependencyUnavailable,
    InsufficientStock,
    ReservationConflict,
    UnknownSku,
)
from extracted.orders.service.ports import ItemInfo

NAME = "inventory"


class HttpInventory:
    """Maps inventory's statuses to the orders domain: 404 -> unknown sku, 409 -> refusals."""

    def __init__(self, client: httpx.AsyncClient, breaker: DependencyBreaker) -> None:
        self.client = client
        self.breaker = breaker

    async def item(self, sku: str) -> ItemInfo | None:
        """GET /api/inventory/{sku}: the item's price and availability, None on 404."""
        resp = await exchange(self.client, self.breaker, "GET", f"/api/inventory/{segment(sku)}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise DependencyUnavailable(NAME)
        try:
            doc = resp.json()
            return ItemInfo(
                sku=sku, price_cents=int(doc["price_cents"]), available=int(doc["available"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DependencyUnavailable(NAME) from exc

    async def reserve(self, sku: str, order_id: int, qty: int) -> None:
        """POST a reservation; 200 (already held, same qty) and 201 both succeed."""
        resp = await exchange(
            self.client,
            self.breaker,
            "POST",
            f"/api/inventory/{segment(sku)}/reservations",
            json={"order_id": order_id, "qty": qty},
        )
        if resp.status_code in (200, 201):
            return
        if resp.status_code == 404:
            raise UnknownSku(sku)
        if resp.status_code == 409:
            code = error_code(resp)
            if code == "insufficient_stock":
                raise InsufficientStock(sku, qty)
            if code == "reservation_conflict":
                raise ReservationConflict(sku, order_id)
        raise DependencyUnavailable(NAME)

    async def release(self, sku: str, order_id: int) -> None:
        """DELETE the reservation; an unknown sku has nothing to release."""
        resp = await exchange(
            self.client,
            self.breaker,
            "DELETE",
            f"/api/inventory/{segment(sku)}/reservations/{order_id}",
        )
        if resp.status_code in (200, 204, 404):
            return
        raise DependencyUnavailable(NAME)
