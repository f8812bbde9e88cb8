"""Reads one side's stock through the inventory HTTP API (both sides serve the same paths).

For `sync --check` only: every item, and every reservation of every item, paged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.http import exchange, segment
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.service.ports import Stock

PAGE = 500
# Concurrent reservation requests per side: a pass stays short without flooding the server.
_PARALLEL = 8


class HttpStock:
    """GET /api/inventory and /api/inventory/{sku}/reservations on `client`'s server."""

    def __init__(self, client: httpx.AsyncClient, breaker: DependencyBreaker) -> None:
        self.client = client
        self.breaker = breaker

    async def snapshot(self) -> Stock:
        """Every item's on_hand and every sku's reservations `{order_id: qty}`."""
        items = await self._all("/api/inventory")
        try:
            on_hand = {str(i["sku"]): int(i["on_hand"]) for i in items}
        except (KeyError, TypeError, ValueError) as exc:
            raise DependencyUnavailable(self.breaker.name) from exc
        gate = asyncio.Semaphore(_PARALLEL)

        async def held(sku: str) -> tuple[str, dict[int, int]]:
            async with gate:
                rows = await self._all(f"/api/inventory/{segment(sku)}/reservations")
            try:
                return sku, {int(r["order_id"]): int(r["qty"]) for r in rows}
            except (KeyError, TypeError, ValueError) as exc:
                raise DependencyUnavailable(self.breaker.name) from exc

        try:
            async with asyncio.TaskGroup() as reads:  # the first failure cancels the rest
                tasks = [reads.create_task(held(sku)) for sku in on_hand]
        except* DependencyUnavailable as failed:
            raise failed.exceptions[0] from None
        pairs = [t.result() for t in tasks]
        return Stock(on_hand=on_hand, reservations={s: r for s, r in pairs if r})

    async def _all(self, path: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            resp = await exchange(
                self.client, self.breaker, "GET", f"{path}?limit={PAGE}&offset={len(found)}"
            )
            if resp.status_code != 200:
                raise DependencyUnavailable(self.breaker.name)
            try:
                doc = resp.json()
                page, total = list(doc["items"]), int(doc["total"])
            except (KeyError, TypeError, ValueError) as exc:
                raise DependencyUnavailable(self.breaker.name) from exc
            found.extend(page)
            if not page or len(found) >= total:
                return found
