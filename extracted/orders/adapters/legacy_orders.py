"""Reads the legacy's orders through its HTTP API (never its database), for sync."""

from __future__ import annotations

import httpx

from extracted.orders.domain.model import Order, Origin, order_from_json

PAGE = 500


class LegacyUnavailable(Exception):
    """The legacy did not answer usably."""


async def fetch_legacy_orders(client: httpx.AsyncClient, *, page_size: int = PAGE) -> list[Order]:
    """Every order the legacy shows, paginating GET /api/orders by `limit`/`offset`."""
    found: list[Order] = []
    offset = 0
    while True:
        try:
            resp = await client.get("/api/orders", params={"limit": page_size, "offset": offset})
        except httpx.HTTPError as exc:
            raise LegacyUnavailable(f"GET /api/orders: {exc!r}") from exc
        if resp.status_code != 200:
            raise LegacyUnavailable(f"GET /api/orders answered {resp.status_code}")
        try:
            doc = resp.json()
            page = [order_from_json(o, Origin.LEGACY) for o in doc["items"]]
            total = int(doc["total"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LegacyUnavailable(f"unexpected orders page: {exc!r}") from exc
        found.extend(page)
        offset += len(page)
        if not page or offset >= total:
            return found
