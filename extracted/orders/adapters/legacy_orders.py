"""The legacy's orders over its HTTP API (implements LegacyOrdersPort): backfill, read-repair.

Never its database: the legacy's HTTP contract is the only interface between the two sides.
"""

from __future__ import annotations

from typing import Any

import httpx

from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.http import exchange
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import Order, Origin, order_from_json
from extracted.orders.service.ports import OrdersPage

NAME = "legacy"


class HttpLegacyOrders:
    """GET /api/orders?limit=&offset= and GET /api/orders/{id} on the legacy."""

    def __init__(self, client: httpx.AsyncClient, breaker: DependencyBreaker) -> None:
        self.client = client
        self.breaker = breaker

    async def page(self, offset: int, limit: int) -> OrdersPage:
        """One page of the legacy's orders by id, as copies with origin legacy."""
        resp = await exchange(
            self.client, self.breaker, "GET", f"/api/orders?limit={limit}&offset={offset}"
        )
        doc = _json(resp, 200)
        try:
            return OrdersPage(
                orders=[order_from_json(o, Origin.LEGACY) for o in doc["items"]],
                total=int(doc["total"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DependencyUnavailable(NAME) from exc

    async def get(self, order_id: int) -> Order | None:
        """The legacy's order `order_id`, or None on its 404."""
        resp = await exchange(self.client, self.breaker, "GET", f"/api/orders/{order_id}")
        if resp.status_code == 404:
            return None
        try:
            return order_from_json(_json(resp, 200), Origin.LEGACY)
        except (KeyError, TypeError, ValueError) as exc:
            raise DependencyUnavailable(NAME) from exc


def _json(resp: httpx.Response, status: int) -> Any:
    """The body of an expected answer; anything else means the legacy is not usable."""
    if resp.status_code != status:
        raise DependencyUnavailable(NAME)
    try:
        return resp.json()
    except ValueError as exc:
        raise DependencyUnavailable(NAME) from exc
