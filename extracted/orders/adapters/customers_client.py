"""The monolith's customers API over HTTP (implements CustomersPort)."""

from __future__ import annotations

import httpx

from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.http import exchange
from extracted.orders.domain.errors import DependencyUnavailable

NAME = "customers"


class HttpCustomers:
    """GET /api/customers/{id}: 200 -> exists, 404 -> does not."""

    def __init__(self, client: httpx.AsyncClient, breaker: DependencyBreaker) -> None:
        self.client = client
        self.breaker = breaker

    async def exists(self, customer_id: int) -> bool:
        """Whether the monolith knows customer `customer_id`."""
        resp = await exchange(self.client, self.breaker, "GET", f"/api/customers/{customer_id}")
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise DependencyUnavailable(NAME)
